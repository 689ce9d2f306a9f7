"""The contract's enums (SPEC §9): the domain's enums, registered as they are.

One way to map an enum: the GraphQL enum *is* the domain enum (`strawberry.enum` on the domain
class), so resolvers pass values through unchanged and names read the same on both sides.
"""

from __future__ import annotations

import strawberry

from graphql_api.conversations import models as conversation_models
from graphql_api.directory import models as directory_models

UserKind = strawberry.enum(directory_models.UserKind, name="UserKind")
ConversationType = strawberry.enum(conversation_models.ConversationType, name="ConversationType")
MessageKind = strawberry.enum(conversation_models.MessageKind, name="MessageKind")
ConversationStatus = strawberry.enum(
    conversation_models.ConversationStatus, name="ConversationStatus"
)
