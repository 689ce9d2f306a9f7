"""Subscription resolvers (SPEC §8, §14): `messageAdded`, `notificationAdded`, `inboxUpdated`,
`messageUpdated`, `conversationUpdated`.

Each one subscribes to its topics and consumes an iterator of `graphql_api.realtime.streams`,
which owns ordering, replay and the per-event access checks; the resolver only maps records to
schema types, with fresh dataloaders per event (the context of a WebSocket lives as long as the
connection). The field's guard (`schema.permissions`) checked the conversation when subscribing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager

import strawberry

from graphql_api.context import Context, Info
from graphql_api.conversations import models
from graphql_api.errors import NotFound
from graphql_api.pagination import parse_message_cursor
from graphql_api.realtime.events import (
    Topic,
    conversation_topic,
    user_topic,
    viewer_inbox_topics,
)
from graphql_api.realtime.hub import Subscriber
from graphql_api.realtime.streams import (
    conversation_changes,
    conversation_messages,
    listening,
    readable_inbox_changes,
    readable_message_updates,
    readable_notifications,
)
from schema.conversation_types import Conversation, Message
from schema.notification_types import Notification


def _listening(
    context: Context, topics: list[Topic], field: str
) -> AbstractAsyncContextManager[Subscriber]:
    return listening(context.services.hub, topics, context.subscriptions, context.response, field)


async def _load_conversation(context: Context, conversation_id: str) -> models.Conversation | None:
    return await context.fresh_loaders().conversations.load(conversation_id)


def _fresh_loaders_with(
    context: Context, conversation: models.Conversation, message: models.Message | None
) -> None:
    """Fresh loaders for one event, holding the records the event carries (as stored with the
    message): showing them reads nothing again."""
    loaders = context.fresh_loaders()
    loaders.conversations.prime(conversation.id, conversation)
    if message is not None:
        loaders.messages.prime((message.conversation_id, message.id), message)


async def message_added(
    info: Info, conversation_id: strawberry.ID, after: str | None = None
) -> AsyncGenerator[Message, None]:
    context = info.context
    conversation = await _readable(context, conversation_id)
    after_seq = parse_message_cursor(after, "after") if after is not None else None
    topics = [conversation_topic(conversation.id), user_topic(context.viewer.id)]
    async with _listening(context, topics, "messageAdded") as subscriber:
        async for message in conversation_messages(
            subscriber,
            context.services.conversations,
            context.current_viewer,
            conversation,
            after_seq,
        ):
            context.fresh_loaders()
            yield Message(record=message)


async def notification_added(info: Info) -> AsyncGenerator[Notification, None]:
    context = info.context
    async with _listening(
        context, [user_topic(context.viewer.id)], "notificationAdded"
    ) as subscriber:
        async for event in readable_notifications(
            subscriber, context.current_viewer, lambda i: _load_conversation(context, i)
        ):
            if event.conversation is not None:
                _fresh_loaders_with(context, event.conversation, event.message)
            yield Notification(record=event.notification)


async def inbox_updated(info: Info) -> AsyncGenerator[Conversation, None]:
    context = info.context
    topics = list(viewer_inbox_topics(context.viewer))
    async with _listening(context, topics, "inboxUpdated") as subscriber:
        async for change in readable_inbox_changes(
            context.services.hub,
            subscriber,
            context.current_viewer,
            lambda i: _load_conversation(context, i),
        ):
            _fresh_loaders_with(context, change.conversation, change.message)
            yield Conversation(record=change.conversation)


async def _readable(context: Context, conversation_id: strawberry.ID) -> models.Conversation:
    conversation = await context.readable_conversation(conversation_id)
    if conversation is None:
        raise NotFound("conversation not found")
    return conversation


async def message_updated(
    info: Info, conversation_id: strawberry.ID
) -> AsyncGenerator[Message, None]:
    context = info.context
    conversation = await _readable(context, conversation_id)
    topics = [conversation_topic(conversation.id), user_topic(context.viewer.id)]
    async with _listening(context, topics, "messageUpdated") as subscriber:
        async for message in readable_message_updates(
            subscriber, context.current_viewer, conversation
        ):
            context.fresh_loaders()
            yield Message(record=message)


async def conversation_updated(
    info: Info, conversation_id: strawberry.ID
) -> AsyncGenerator[Conversation, None]:
    context = info.context
    conversation = await _readable(context, conversation_id)
    topics = [conversation_topic(conversation.id), user_topic(context.viewer.id)]
    async with _listening(context, topics, "conversationUpdated") as subscriber:
        async for changed in conversation_changes(
            subscriber,
            context.current_viewer,
            conversation,
            lambda i: _load_conversation(context, i),
        ):
            context.fresh_loaders()
            yield Conversation(record=changed)
