"""`Notification` as the contract shapes it (SPEC §9)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.context import Info
from graphql_api.errors import NotFound
from graphql_api.notifications import models
from graphql_api.policy import can_read
from schema.conversation_types import ConversationType, MessageType


@strawberry.type(name="Notification")
class NotificationType:
    record: strawberry.Private[models.Notification]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.record.id)

    @strawberry.field
    async def conversation(self, info: Info) -> ConversationType:
        conversation = await info.context.loaders.conversations.load(self.record.conversation_id)
        if conversation is None or not can_read(info.context.viewer, conversation):
            raise NotFound("conversation not found")
        return ConversationType(record=conversation)

    @strawberry.field
    async def message(self, info: Info) -> MessageType:
        await self.conversation(info)  # the message is readable exactly when its conversation is
        message = await info.context.loaders.messages.load(
            (self.record.conversation_id, self.record.message_id)
        )
        if message is None:
            raise NotFound("message not found")
        return MessageType(record=message)

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def read_at(self) -> datetime | None:
        return self.record.read_at
