"""The conversations' root fields, composed into Query and Mutation by `schema.schema`."""

from __future__ import annotations

import strawberry

from resolvers import conversations as resolve
from schema.conversation_types import ConversationType, MessageType
from schema.directives import AccessPolicy, guarded
from schema.directory_types import UserType

READ = guarded(AccessPolicy.READ_CONVERSATION)
DESIGNATE = guarded(AccessPolicy.DESIGNATE_PARTICIPANTS)


@strawberry.type
class ConversationQuery:
    conversation: ConversationType | None = strawberry.field(
        resolver=resolve.conversation,
        description="A conversation the viewer may read; null when absent or not readable.",
        **READ,
    )
    conversations: resolve.ConversationConnection = strawberry.field(
        resolver=resolve.conversations,
        description="The inbox: readable conversations by last activity, newest first.",
        **READ,
    )
    eligible_participants: list[UserType] = strawberry.field(
        resolver=resolve.eligible_participants,
        description="Exactly the users the viewer may designate for such a conversation "
        "(at most 200, by name; narrow with `search` on name or email).",
        **DESIGNATE,
    )


@strawberry.type
class ConversationMutation:
    create_conversation: ConversationType = strawberry.mutation(
        resolver=resolve.create_conversation,
        description="Send a new message: creates the conversation and its first message.",
        **DESIGNATE,
    )
    send_message: MessageType = strawberry.mutation(
        resolver=resolve.send_message,
        description="Reply to a readable conversation.",
        **READ,
    )
    mark_conversation_read: ConversationType = strawberry.mutation(
        resolver=resolve.mark_conversation_read, **READ
    )
