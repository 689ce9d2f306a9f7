"""`Notification` as the contract shapes it (SPEC §9), with its connection.

A notification is shown only while the viewer may read its conversation (the resolver filters
the list with the policy's bulk form); its fields load the conversation and message again
through the operation's loaders.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.context import Info
from graphql_api.errors import NotFound
from graphql_api.notifications import models
from graphql_api.policy import can_read_message
from schema.conversation_types import Conversation, Message
from schema.pagination import Connection


@strawberry.type
class Notification:
    record: strawberry.Private[models.Notification]
    id: strawberry.ID
    created_at: datetime
    read_at: datetime | None

    def __init__(self, record: models.Notification) -> None:
        # Plain fields are attributes, read by graphql-core without a resolver call (issue 16).
        self.record = record
        self.id = strawberry.ID(record.id)
        self.created_at = record.created_at
        self.read_at = record.read_at

    @strawberry.field
    async def conversation(self, info: Info) -> Conversation:
        conversation = await info.context.readable_conversation(self.record.conversation_id)
        if conversation is None:
            raise NotFound("conversation not found")
        return Conversation(record=conversation)

    @strawberry.field
    async def message(self, info: Info) -> Message:
        conversation = await self.conversation(info)
        message = await info.context.loaders.messages.load(
            (self.record.conversation_id, self.record.message_id)
        )
        if message is None or not can_read_message(
            info.context.viewer, conversation.record, message
        ):
            raise NotFound("message not found")
        return Message(record=message)


NotificationConnection = Connection[Notification]
