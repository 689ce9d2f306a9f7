"""What each subscription delivers, as async iterators the subscription resolvers only consume.

- `listening`: a hub subscription for the life of one GraphQL subscription, within the
  per-connection cap, closing a consumer too slow to keep up (1013) so it neither slows the
  others nor grows memory.
- `conversation_messages`: the messages of one conversation for one viewer: first those after a
  cursor (the replay), then live ones, in `seq` order, with no gap and no duplicate. Messages can
  arrive out of `seq` order (two senders take 5 and 6, 6 is stored first): early ones are held
  up to `GAP_WAIT_SECONDS`, and only a gap that does not close by itself is read from the
  database (one query per subscriber per gap would swamp it under load). Access is re-checked on
  every event with the viewer as stored now, and on every change of the conversation
  (`ConversationChanged`: a participant removed, client visibility lost) with the conversation
  as changed: losing it ends the stream with NOT_FOUND at once. Each message passes the policy's
  per-message rule: a client's stream skips internal notes, live and in replay, as if they did
  not exist (their numbers are gaps, like a reply never stored).
- `readable_notifications`, `readable_inbox_changes`: the viewer's events that the policy lets
  it read, checked with the conversation the event carries (as stored with the message) and
  handed on with it, so that showing them reads nothing again.
- `readable_message_updates`, `conversation_changes` (SPEC §14): edits and deletions of a
  conversation's messages, and the conversation as its shared state or receipts change, checked
  the same way (losing the conversation ends them with NOT_FOUND).

The per-connection cap is ours, not Strawberry's `max_subscriptions_per_connection`: that one
counts queries and mutations in flight too and answers an error without `extensions.code`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from graphql_api.conversations.models import Conversation, Message
from graphql_api.conversations.service import Conversations
from graphql_api.directory.models import User
from graphql_api.errors import BadUserInput, NotFound
from graphql_api.metrics import observe_delivery, subscription_running
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
    viewer_inbox_topics,
)
from graphql_api.realtime.hub import (
    SLOW_CONSUMER_CLOSE_CODE,
    SLOW_CONSUMER_REASON,
    EventHub,
    Subscriber,
)

REPLAY_BATCH = 100
GAP_WAIT_SECONDS = 1.0
MAX_PENDING = 100
MAX_SUBSCRIPTIONS_PER_CONNECTION = 20

CurrentViewer = Callable[[], Awaitable[User]]
"""The viewer as stored now (UNAUTHENTICATED once its user is deleted)."""
LoadConversation = Callable[[str], Awaitable[Conversation | None]]


class SubscriptionSlots:
    """The subscriptions running on one WebSocket connection."""

    def __init__(self) -> None:
        self.active = 0


@contextlib.asynccontextmanager
async def listening(
    hub: EventHub,
    topics: Iterable[Topic],
    slots: SubscriptionSlots,
    websocket: web.StreamResponse | None,
    field: str,
) -> AsyncIterator[Subscriber]:
    """A hub subscription for the life of one GraphQL subscription (`field`, for metrics)."""

    def close_slow_consumer() -> None:
        if isinstance(websocket, web.WebSocketResponse) and not websocket.closed:
            asyncio.get_running_loop().create_task(
                websocket.close(
                    code=SLOW_CONSUMER_CLOSE_CODE, message=SLOW_CONSUMER_REASON.encode()
                )
            )

    if slots.active >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
        raise BadUserInput(
            f"a connection may run at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions"
        )
    subscriber = hub.subscribe(topics, on_overflow=close_slow_consumer)
    slots.active += 1
    try:
        with subscription_running(field):
            yield subscriber
    finally:
        slots.active -= 1
        hub.unsubscribe(subscriber)


async def conversation_messages(
    subscriber: Subscriber,
    conversations: Conversations,
    viewer: CurrentViewer,
    conversation: Conversation,
    after_seq: int | None,
) -> AsyncIterator[Message]:
    """Replay after `after_seq` (None: from now on), then live; see the module docstring.

    `subscriber` must be subscribed before this starts: whatever is written from then on is
    queued, so the replay and the live events overlap instead of leaving a gap, and `seq`
    removes the overlap."""
    stream = _MessageStream(conversations, viewer, conversation)
    if after_seq is None:
        current = await conversations.get(await viewer(), conversation.id)
        stream.last_seq = current.message_count
    else:
        stream.last_seq = after_seq
        async for message in stream.stored_after():
            yield message
    async for message in stream.live(subscriber):
        yield message


class _MessageStream:
    def __init__(
        self, conversations: Conversations, viewer: CurrentViewer, conversation: Conversation
    ) -> None:
        self.conversations = conversations
        self.viewer = viewer
        self.conversation = conversation
        self.last_seq = 0
        self.pending: dict[int, Message] = {}

    async def reader(self) -> User:
        """The viewer as stored now; NOT_FOUND once it may no longer read the conversation."""
        viewer = await self.viewer()
        if not can_read(viewer, self.conversation):
            raise NotFound("conversation not found")
        return viewer

    async def stored_after(self, until: int | None = None) -> AsyncIterator[Message]:
        """Stored messages with `seq` in (last_seq, until), oldest first, access re-checked
        per batch."""
        while True:
            viewer = await self.reader()
            page = await self.conversations.messages_after(
                viewer, self.conversation.id, self.last_seq, REPLAY_BATCH, until=until
            )
            for message in page:
                self.last_seq = message.seq
                if can_read_message(viewer, self.conversation, message):
                    yield message
            if len(page) < REPLAY_BATCH:
                return

    async def live(self, subscriber: Subscriber) -> AsyncIterator[Message]:
        while True:
            event = await self._next(subscriber)
            if isinstance(event, ConversationChanged | MessageAdded) and event.conversation:
                self.conversation = _newer(self.conversation, event.conversation)
            if isinstance(event, UserChanged | ConversationChanged):
                # A participant removed, client visibility lost: told at once, as NOT_FOUND.
                await self.reader()
                continue
            if isinstance(event, Resync):  # events were lost: read what was stored meanwhile
                async for message in self.stored_after():
                    yield message
                self._drop_delivered()
                continue
            if isinstance(event, MessageAdded) and event.message.seq > self.last_seq:
                self.pending[event.message.seq] = event.message
            if not self.pending:
                continue
            if self.last_seq + 1 not in self.pending and (
                event is None or len(self.pending) > MAX_PENDING
            ):
                # A gap that did not close by itself: read it, then skip what was never stored.
                first_held = min(self.pending)
                async for message in self.stored_after(until=first_held):
                    yield message
                self.last_seq = max(self.last_seq, first_held - 1)
                self._drop_delivered()
            viewer = await self.reader()
            while self.last_seq + 1 in self.pending:
                message = self.pending.pop(self.last_seq + 1)
                self.last_seq = message.seq
                if can_read_message(viewer, self.conversation, message):
                    observe_delivery(message.created_at)  # live, not replayed: its lag counts
                    yield message

    async def _next(self, subscriber: Subscriber) -> object:
        """The next event, or None when held messages waited long enough for a gap."""
        if not self.pending:
            return await subscriber.next()
        try:
            async with asyncio.timeout(GAP_WAIT_SECONDS):
                return await subscriber.next()
        except TimeoutError:
            return None

    def _drop_delivered(self) -> None:
        self.pending = {seq: m for seq, m in self.pending.items() if seq > self.last_seq}


def _newer(current: Conversation, candidate: Conversation) -> Conversation:
    """The later of two states of one conversation: every change numbers a message."""
    return candidate if candidate.message_count >= current.message_count else current


async def readable_notifications(
    subscriber: Subscriber, viewer: CurrentViewer, load: LoadConversation
) -> AsyncIterator[NotificationAdded]:
    """The viewer's new notifications, of conversations it may read, each with its conversation
    (and message, when the event carries it) as checked."""
    while True:
        event = await subscriber.next()
        current = await viewer()  # UNAUTHENTICATED once deleted
        if not isinstance(event, NotificationAdded):
            continue
        conversation = event.conversation or await load(event.notification.conversation_id)
        if conversation is not None and can_read(current, conversation):
            yield NotificationAdded(event.notification, event.message, conversation)


@dataclass(frozen=True, slots=True)
class InboxChange:
    """A conversation of the viewer's inbox as it changed, with the message that changed it
    (None for a creation)."""

    conversation: Conversation
    message: Message | None


async def readable_inbox_changes(
    hub: EventHub, subscriber: Subscriber, viewer: CurrentViewer, load: LoadConversation
) -> AsyncIterator[InboxChange]:
    """Conversations the viewer may read, as they are created or get a message. The subscriber
    follows the viewer's favorites (`events.viewer_inbox_topics`): a company added to them
    brings its conversations' activity from the next event on."""
    while True:
        event = await subscriber.next()
        current = await viewer()  # UNAUTHENTICATED once deleted
        topics = viewer_inbox_topics(current)
        if topics != subscriber.topics:
            hub.retopic(subscriber, topics)
        change: InboxChange | None = None
        if isinstance(event, ConversationCreated):
            change = InboxChange(event.conversation, None)
        elif isinstance(event, MessageAdded) and event.message.seq > 1:
            conversation = event.conversation or await load(event.message.conversation_id)
            if conversation is not None:
                change = InboxChange(conversation, event.message)
        if change is None or not can_read(current, change.conversation):
            continue
        if change.message is not None and not can_read_message(
            current, change.conversation, change.message
        ):
            continue  # a note, for a client: nothing happened
        yield change


async def readable_message_updates(
    subscriber: Subscriber, viewer: CurrentViewer, conversation: Conversation
) -> AsyncIterator[Message]:
    """Edits and deletions of the conversation's messages, each checked with the per-message rule
    for the viewer as stored now."""
    while True:
        event = await subscriber.next()
        if isinstance(event, ConversationChanged):
            conversation = _newer(conversation, event.conversation)
        elif not isinstance(event, MessageUpdated | UserChanged):
            continue
        current = await viewer()
        if not can_read(current, conversation):
            raise NotFound("conversation not found")
        if isinstance(event, MessageUpdated) and can_read_message(
            current, conversation, event.message
        ):
            yield event.message


async def conversation_changes(
    subscriber: Subscriber,
    viewer: CurrentViewer,
    conversation: Conversation,
    load: LoadConversation,
) -> AsyncIterator[Conversation]:
    """The conversation as its subject, participants, status, assignee (SPEC §13) or read
    receipts (a participant's read mark moved) change."""
    while True:
        event = await subscriber.next()
        changed = False
        if isinstance(event, ConversationChanged):
            conversation, changed = _newer(conversation, event.conversation), True
        elif isinstance(event, ReadStateChanged | Resync):
            loaded = await load(conversation.id)
            if loaded is None:
                raise NotFound("conversation not found")
            conversation, changed = loaded, True
        elif not isinstance(event, UserChanged):
            continue
        if not can_read(await viewer(), conversation):
            raise NotFound("conversation not found")
        if changed:
            yield conversation
