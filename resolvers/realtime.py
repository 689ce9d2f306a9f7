"""Subscription resolvers (SPEC §8, §14): `messageAdded`, `notificationAdded`, `inboxUpdated`,
`messageUpdated`, `conversationUpdated`.

Access is checked when subscribing (NOT_FOUND for an unreadable conversation) and again for every
event, with the viewer as stored now: it is re-read through the user cache (no query on a warm
process; a change to the user evicts it and arrives as an event on the viewer's own topic, from
this process or through the change stream). When that event takes away the conversation of a
`messageAdded`, it ends at once with NOT_FOUND, as when a message finds it unreadable; once the
viewer's user is deleted, every subscription ends with UNAUTHENTICATED (the socket stays open
and its operations answer UNAUTHENTICATED, like HTTP requests with that token). Each event is
resolved with fresh dataloaders (the context of a WebSocket lives as long as the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable

import strawberry
from aiohttp import web

from graphql_api.context import Context, Info
from graphql_api.conversations.models import Conversation, Message
from graphql_api.errors import BadUserInput, NotFound
from graphql_api.metrics import observe_delivery
from graphql_api.pagination import parse_message_cursor
from graphql_api.policy import can_read, can_read_message
from graphql_api.realtime.events import (
    ConversationChanged,
    ConversationCreated,
    MessageAdded,
    MessageUpdated,
    NotificationAdded,
    ReadStateChanged,
    Resync,
    Topic,
    UserChanged,
    conversation_topic,
    firm_topic,
    user_topic,
)
from graphql_api.realtime.hub import SLOW_CONSUMER_CLOSE_CODE, SLOW_CONSUMER_REASON, Subscriber
from schema.conversation_types import Conversation as ConversationNode
from schema.conversation_types import Message as MessageNode
from schema.notification_types import Notification as NotificationNode

REPLAY_BATCH = 100
GAP_WAIT_SECONDS = 1.0
MAX_PENDING = 100
MAX_SUBSCRIPTIONS_PER_CONNECTION = 20


@contextlib.asynccontextmanager
async def _listening(context: Context, topics: Iterable[Topic]) -> AsyncIterator[Subscriber]:
    """A hub subscription for the life of one GraphQL subscription."""
    hub = context.services.hub
    websocket = context.response if isinstance(context.response, web.WebSocketResponse) else None

    def close_slow_consumer() -> None:
        if websocket is not None and not websocket.closed:
            asyncio.get_running_loop().create_task(
                websocket.close(
                    code=SLOW_CONSUMER_CLOSE_CODE, message=SLOW_CONSUMER_REASON.encode()
                )
            )

    if context.active_subscriptions >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
        raise BadUserInput(
            f"a connection may run at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions"
        )
    subscriber = hub.subscribe(topics, on_overflow=close_slow_consumer)
    context.active_subscriptions += 1
    try:
        yield subscriber
    finally:
        context.active_subscriptions -= 1
        hub.unsubscribe(subscriber)


async def message_added(
    info: Info, conversation_id: strawberry.ID, after: str | None = None
) -> AsyncGenerator[MessageNode, None]:
    context = info.context
    service = context.services.conversations
    conversation = await service.get(context.viewer, conversation_id)
    last_seq = parse_message_cursor(after, "after") if after is not None else None
    topics = [conversation_topic(conversation.id), user_topic(context.viewer.id)]
    async with _listening(context, topics) as subscriber:
        # Subscribed before reading: whatever is written from here on is queued, so the replay
        # and the live events overlap instead of leaving a gap; `seq` removes the overlap.
        if last_seq is None:
            last_seq = (await service.get(context.viewer, conversation.id)).message_count
        else:
            async for message in _messages_after(context, conversation, last_seq):
                last_seq = message.seq
                yield _message_for(context, message)
        # Messages may arrive out of `seq` order (two senders take seq 5 and 6, 6 is stored
        # first): hold the early ones briefly; only a gap that does not close by itself is read
        # from the database (one query per subscriber per gap would swamp it under load).
        pending: dict[int, Message] = {}
        while True:
            event: object = None
            try:
                if pending:
                    async with asyncio.timeout(GAP_WAIT_SECONDS):
                        event = await subscriber.next()
                else:
                    event = await subscriber.next()
            except TimeoutError:
                pass
            if isinstance(event, UserChanged):
                if not can_read(await context.current_viewer(), conversation):
                    raise NotFound("conversation not found")
                continue
            if isinstance(event, Resync):
                # Events were lost: read what was stored meanwhile (access is checked first).
                await context.current_viewer()
                async for message in _messages_after(context, conversation, last_seq):
                    last_seq = message.seq
                    yield _message_for(context, message)
                pending = {seq: m for seq, m in pending.items() if seq > last_seq}
                continue
            if isinstance(event, MessageAdded) and event.message.seq > last_seq:
                pending[event.message.seq] = event.message
            if not pending:
                continue
            if not can_read(await context.current_viewer(), conversation):
                raise NotFound("conversation not found")
            if last_seq + 1 not in pending and (event is None or len(pending) > MAX_PENDING):
                async for message in _messages_after(
                    context, conversation, last_seq, until=min(pending)
                ):
                    last_seq = message.seq
                    yield _message_for(context, message)
                last_seq = max(last_seq, min(pending) - 1)  # a seq never stored stays a gap
                pending = {seq: m for seq, m in pending.items() if seq > last_seq}
            while last_seq + 1 in pending:
                message = pending.pop(last_seq + 1)
                last_seq = message.seq
                observe_delivery(message.created_at)  # live, not replayed: its lag counts
                yield _message_for(context, message)


async def _messages_after(
    context: Context, conversation: Conversation, seq: int, until: int | None = None
) -> AsyncIterator[Message]:
    """Stored messages with `seq` in (seq, until), oldest first, re-checking access per batch."""
    service = context.services.conversations
    while True:
        if not can_read(await context.current_viewer(), conversation):
            raise NotFound("conversation not found")
        page = await service.messages_after(conversation.id, seq, REPLAY_BATCH, until=until)
        for message in page:
            yield message
            seq = message.seq
        if len(page) < REPLAY_BATCH:
            return


def _message_for(context: Context, message: Message) -> MessageNode:
    context.fresh_loaders()
    return MessageNode(record=message)


async def notification_added(info: Info) -> AsyncGenerator[NotificationNode, None]:
    context = info.context
    viewer = context.viewer
    async with _listening(context, [user_topic(viewer.id)]) as subscriber:
        while True:
            event = await subscriber.next()
            viewer = await context.current_viewer()  # UNAUTHENTICATED once deleted
            if isinstance(event, NotificationAdded):
                loaders = context.fresh_loaders()
                conversation = await loaders.conversations.load(event.notification.conversation_id)
                if conversation is not None and can_read(viewer, conversation):
                    yield NotificationNode(record=event.notification)


async def inbox_updated(info: Info) -> AsyncGenerator[ConversationNode, None]:
    context = info.context
    viewer = context.viewer
    topics = [firm_topic(viewer.firm_id), user_topic(viewer.id)]
    async with _listening(context, topics) as subscriber:
        while True:
            event = await subscriber.next()
            viewer = await context.current_viewer()  # UNAUTHENTICATED once deleted
            conversation: Conversation | None = None
            if isinstance(event, ConversationCreated):
                conversation = event.conversation
            elif isinstance(event, MessageAdded) and event.message.seq > 1:
                conversation = (
                    event.conversation
                    or await context.fresh_loaders().conversations.load(
                        event.message.conversation_id
                    )
                )
            if conversation is not None and can_read(viewer, conversation):
                context.fresh_loaders()
                yield ConversationNode(record=conversation)


async def message_updated(
    info: Info, conversation_id: strawberry.ID
) -> AsyncGenerator[MessageNode, None]:
    """Edits and deletions of a readable conversation's messages, each checked with the
    per-message rule for the viewer as stored now."""
    context = info.context
    conversation = await context.services.conversations.get(context.viewer, conversation_id)
    topics = [conversation_topic(conversation.id), user_topic(context.viewer.id)]
    async with _listening(context, topics) as subscriber:
        while True:
            event = await subscriber.next()
            if isinstance(event, ConversationChanged):
                conversation = event.conversation  # participants may have changed
            elif not isinstance(event, MessageUpdated | UserChanged):
                continue
            viewer = await context.current_viewer()
            if not can_read(viewer, conversation):
                raise NotFound("conversation not found")
            if isinstance(event, MessageUpdated) and can_read_message(
                viewer, conversation, event.message
            ):
                yield _message_for(context, event.message)


async def conversation_updated(
    info: Info, conversation_id: strawberry.ID
) -> AsyncGenerator[ConversationNode, None]:
    """A readable conversation as it changes: its subject, participants, status or assignee
    (SPEC §13), and its read receipts (a participant's read mark moved)."""
    context = info.context
    service = context.services.conversations
    conversation = await service.get(context.viewer, conversation_id)
    topics = [conversation_topic(conversation.id), user_topic(context.viewer.id)]
    async with _listening(context, topics) as subscriber:
        while True:
            event = await subscriber.next()
            changed = False
            if isinstance(event, ConversationChanged):
                conversation, changed = event.conversation, True
            elif isinstance(event, ReadStateChanged | Resync):
                loaded = await context.fresh_loaders().conversations.load(conversation.id)
                if loaded is None:
                    raise NotFound("conversation not found")
                conversation, changed = loaded, True
            elif not isinstance(event, UserChanged):
                continue
            if not can_read(await context.current_viewer(), conversation):
                raise NotFound("conversation not found")
            if changed:
                context.fresh_loaders()
                yield ConversationNode(record=conversation)
