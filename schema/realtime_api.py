"""The notification fields and the subscriptions, composed into the schema by `schema.schema`."""

from __future__ import annotations

import strawberry

from resolvers import notifications as notify
from resolvers import realtime
from schema.conversation_types import Conversation, Message
from schema.notification_types import Notification, NotificationConnection
from schema.permissions import (
    Authenticated,
    ReadableConversations,
    ReadConversationStream,
    guarded,
)


@strawberry.type
class NotificationQuery:
    notifications: NotificationConnection = strawberry.field(
        resolver=notify.notifications,
        description="The viewer's notifications: unread first, then newest first.",
        **guarded(ReadableConversations),
    )


@strawberry.type
class NotificationMutation:
    mark_notifications_read: int = strawberry.mutation(
        resolver=notify.mark_notifications_read,
        description="Mark the viewer's notifications read (all of them without ids); "
        "answers how many changed.",
        **guarded(Authenticated),
    )


@strawberry.type
class Subscription:
    message_added: Message = strawberry.subscription(
        resolver=realtime.message_added,
        description="New messages of a readable conversation; with `after` (a message cursor) "
        "first the messages after it, then live, with no gap and no duplicate.",
        **guarded(ReadConversationStream),
    )
    notification_added: Notification = strawberry.subscription(
        resolver=realtime.notification_added,
        description="The viewer's new notifications, of conversations it may read.",
        **guarded(ReadableConversations),
    )
    inbox_updated: Conversation = strawberry.subscription(
        resolver=realtime.inbox_updated,
        description="Readable conversations as they are created or get a message.",
        **guarded(ReadableConversations),
    )
    message_updated: Message = strawberry.subscription(
        resolver=realtime.message_updated,
        description="Edits and deletions of a readable conversation's messages, as they happen "
        "(a deleted message arrives empty, with `deletedAt`).",
        **guarded(ReadConversationStream),
    )
    conversation_updated: Conversation = strawberry.subscription(
        resolver=realtime.conversation_updated,
        description="A readable conversation as it changes: subject, participants, status, "
        "assignee and read receipts (`readStates`, `seenBy`).",
        **guarded(ReadConversationStream),
    )
