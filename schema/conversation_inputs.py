"""The contract's inputs for creating conversations and sending messages (SPEC §9)."""

from __future__ import annotations

import strawberry

from schema.enums import ConversationType


@strawberry.input
class CreateConversationInput:
    type: ConversationType
    company_id: strawberry.ID | None = None
    participant_ids: list[strawberry.ID]
    subject: str
    body: str
    attachment_ids: list[strawberry.ID] | None = None
    client_message_id: str | None = strawberry.field(
        default=None,
        description="A client-chosen idempotency key: the same key from the same user answers "
        "the conversation already created.",
    )


@strawberry.input
class SendMessageInput:
    conversation_id: strawberry.ID
    body: str
    attachment_ids: list[strawberry.ID] | None = None
    client_message_id: str | None = strawberry.field(
        default=None,
        description="A client-chosen idempotency key: the same key from the same user answers "
        "the message already sent.",
    )
    internal: bool | None = strawberry.field(
        default=False,
        description="An internal note: read by the firm's practitioners only, never by a "
        "client; only a practitioner may post one.",
    )
