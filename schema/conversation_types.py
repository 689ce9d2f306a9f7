"""`Conversation`, `Message` and `Attachment` as the contract shapes them (SPEC §9), with their
connections.

A `Conversation` is only ever built from a conversation the policy let the viewer read; the
fields that reach further (history, last message, unread count) are guarded again by
`@access(policy: READ_CONVERSATION)`. Domain records are `models.*` and `store.Attachment`.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.attachments import store
from graphql_api.context import Info
from graphql_api.conversations import models
from graphql_api.conversations.history import HistoryRequest
from graphql_api.directory.models import former_user
from graphql_api.errors import NotFound
from graphql_api.pagination import message_cursor
from schema.directory_types import Company, User
from schema.enums import ConversationType
from schema.pagination import Connection, connection
from schema.permissions import ReadConversation, guarded


async def _load_users(info: Info, ids: list[str], firm_id: str) -> list[User]:
    found = await info.context.loaders.users.load_many(ids)
    return [
        User(record=user or former_user(user_id, firm_id))
        for user_id, user in zip(ids, found, strict=True)
    ]


@strawberry.type
class Attachment:
    record: strawberry.Private[store.Attachment]
    id: strawberry.ID
    filename: str = strawberry.field(
        description="Sanitized: no path parts, control or bidi characters."
    )
    content_type: str = strawberry.field(
        description="Sniffed from the bytes, not taken from the uploader."
    )
    size: int = strawberry.field(description="Bytes.")

    def __init__(self, record: store.Attachment) -> None:
        # Plain fields are attributes, read by graphql-core without a resolver call (issue 16).
        self.record = record
        self.id = strawberry.ID(record.id)
        self.filename = record.filename
        self.content_type = record.content_type
        self.size = record.size

    @strawberry.field(
        description="A signed download link for the viewer, valid 15 minutes, usable as a plain "
        "browser link."
    )
    def url(self, info: Info) -> str:
        context = info.context
        return context.services.url_signer.sign(context.base_url, self.record.id, context.viewer.id)


@strawberry.type
class Message:
    record: strawberry.Private[models.Message]
    id: strawberry.ID
    body: str = strawberry.field(description="Sanitized HTML (SPEC §6).")
    body_text: str = strawberry.field(
        description="Plain text of the body, for previews and notifications."
    )
    created_at: datetime

    def __init__(self, record: models.Message) -> None:
        # Plain fields are attributes, read by graphql-core without a resolver call (issue 16).
        self.record = record
        self.id = strawberry.ID(record.id)
        self.body = record.body
        self.body_text = record.body_text
        self.created_at = record.created_at

    @property
    def share_key(self) -> str:
        """Names this message's event for `schema.shared_events` (messages never change)."""
        return f"message:{self.record.id}"

    @strawberry.field(
        description="This message's cursor in `Conversation.messages`: pass it as `after` to "
        "`messages` or `messageAdded` to resume from this message (a client that reconnects "
        "passes the cursor of the last message it received)."
    )
    def cursor(self) -> str:
        return message_cursor(self.record.seq)

    @strawberry.field
    async def conversation(self, info: Info) -> Conversation:
        conversation = await info.context.loaders.conversations.load(self.record.conversation_id)
        if conversation is None:
            raise NotFound("conversation not found")
        return Conversation(record=conversation)

    @strawberry.field
    async def author(self, info: Info) -> User:
        (author,) = await _load_users(info, [self.record.author_id], self.record.firm_id)
        return author

    @strawberry.field
    async def attachments(self, info: Info) -> list[Attachment]:
        found = await info.context.loaders.attachments.load_many(list(self.record.attachment_ids))
        return [Attachment(record=a) for a in found if a is not None]


MessageConnection = Connection[Message]


@strawberry.type
class Conversation:
    record: strawberry.Private[models.Conversation]
    id: strawberry.ID
    type: ConversationType
    subject: str
    created_at: datetime
    last_message_at: datetime
    client_visible: bool = strawberry.field(
        description="Whether clients with the company in their favorites may read it "
        "(COMPANY conversations; decided when participants are designated)."
    )

    def __init__(self, record: models.Conversation) -> None:
        # Plain fields are attributes, read by graphql-core without a resolver call (issue 16).
        self.record = record
        self.id = strawberry.ID(record.id)
        self.type = record.type
        self.subject = record.subject
        self.created_at = record.created_at
        self.last_message_at = record.last_message_at
        self.client_visible = record.client_visible

    @strawberry.field
    async def company(self, info: Info) -> Company | None:
        if self.record.company_id is None:
            return None
        company = await info.context.loaders.companies.load(self.record.company_id)
        return Company(record=company) if company else None

    @strawberry.field
    async def participants(self, info: Info) -> list[User]:
        return await _load_users(info, list(self.record.participant_ids), self.record.firm_id)

    @strawberry.field
    async def created_by(self, info: Info) -> User:
        (creator,) = await _load_users(info, [self.record.created_by], self.record.firm_id)
        return creator

    @strawberry.field(**guarded(ReadConversation))
    async def last_message(self, info: Info) -> Message | None:
        if self.record.last_message_id is None:
            return None
        message = await info.context.loaders.messages.load(
            (self.record.id, self.record.last_message_id)
        )
        return Message(record=message) if message else None

    @strawberry.field(
        description="Messages after the viewer's read mark that the viewer did not write.",
        **guarded(ReadConversation),
    )
    async def unread_count(self, info: Info) -> int:
        return await info.context.loaders.unread_counts.load(self.record)

    @strawberry.field(
        description="History, oldest first; without arguments the newest 50 messages.",
        **guarded(ReadConversation),
    )
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> MessageConnection:
        page = await info.context.loaders.history_pages.load(
            HistoryRequest(self.record, first=first, after=after, last=last, before=before)
        )
        return connection(
            page, cursor=lambda m: message_cursor(m.seq), node=lambda m: Message(record=m)
        )


ConversationConnection = Connection[Conversation]
