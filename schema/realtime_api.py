"""The notification fields and the subscriptions, composed into the schema by `schema.schema`."""

from __future__ import annotations

import strawberry

from resolvers import notifications as notify
from resolvers import realtime
from schema.conversation_types import ConversationType, MessageType
from schema.directives import AccessPolicy, guarded
from schema.notification_types import NotificationType

READ = guarded(AccessPolicy.READ_CONVERSATION)


@strawberry.type
class NotificationQuery:
    notifications: notify.NotificationConnection = strawberry.field(
        resolver=notify.notifications,
        description="The viewer's notifications: unread first, then newest first.",
        **READ,
    )


@strawberry.type
class NotificationMutation:
    mark_notifications_read: int = strawberry.mutation(
        resolver=notify.mark_notifications_read,
        description="Mark the viewer's notifications read (all of them without ids); "
        "answers how many changed.",
        **guarded(AccessPolicy.AUTHENTICATED),
    )


@strawberry.type
class Subscription:
    message_added: MessageType = strawberry.subscription(
        resolver=realtime.message_added,
        description="New messages of a readable conversation; with `after` (a message cursor) "
        "first the messages after it, then live, with no gap and no duplicate.",
        **READ,
    )
    notification_added: NotificationType = strawberry.subscription(
        resolver=realtime.notification_added,
        description="The viewer's new notifications.",
        **READ,
    )
    inbox_updated: ConversationType = strawberry.subscription(
        resolver=realtime.inbox_updated,
        description="Readable conversations as they are created or get a message.",
        **READ,
    )
