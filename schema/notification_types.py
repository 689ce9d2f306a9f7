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

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.record.id)

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

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def read_at(self) -> datetime | None:
        return self.record.read_at


NotificationConnection = Connection[Notification]
