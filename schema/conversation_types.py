"""`Conversation`, `Message` and `Attachment` as the contract shapes them (SPEC §9), with their
connections.

A `Conversation` is only ever built from a conversation the policy let the viewer read; the
fields that reach further (history, last message, unread count) are guarded again by
`@access(policy: READ_CONVERSATION)`. Domain records are `models.*` and `store.Attachment`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

import strawberry

from graphql_api.attachments import store
from graphql_api.context import Info
from graphql_api.conversations import models
from graphql_api.conversations.history import HistoryRequest
from graphql_api.conversations.read_marks import ReadMark
from graphql_api.directory.models import former_user
from graphql_api.errors import NotFound
from graphql_api.pagination import message_cursor
from graphql_api.policy import (
    audience_of,
    can_read_message,
    can_see_receipt_on,
    visible_read_states,
)
from schema.directory_types import Company, User
from schema.enums import ConversationStatus, ConversationType, MessageKind
from schema.pagination import Connection, connection
from schema.permissions import ReadThisConversation, guarded


async def _company(info: Info, company_id: str) -> Company | None:
    company = await info.context.loaders.companies.load(company_id)
    return Company(record=company) if company else None


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


@strawberry.type(description="What a timeline event (a message of kind EVENT) records.")
class ConversationEvent:
    record: strawberry.Private[models.ConversationEvent]
    firm_id: strawberry.Private[str]

    @strawberry.field
    async def actor(self, info: Info) -> User:
        (actor,) = await _load_users(info, [self.record.actor_id], self.firm_id)
        return actor

    @strawberry.field
    async def added_users(self, info: Info) -> list[User]:
        return await _load_users(info, list(self.record.added_user_ids), self.firm_id)

    @strawberry.field
    async def removed_users(self, info: Info) -> list[User]:
        return await _load_users(info, list(self.record.removed_user_ids), self.firm_id)

    @strawberry.field
    def old_subject(self) -> str | None:
        return self.record.old_subject

    @strawberry.field
    def new_subject(self) -> str | None:
        return self.record.new_subject

    @strawberry.field(description="The status set, when the event set one.")
    def status(self) -> ConversationStatus | None:
        return self.record.status

    @strawberry.field(description="The assignee set (null: cleared, or not an assignment).")
    async def assignee(self, info: Info) -> User | None:
        if self.record.assignee_id is None:
            return None
        (assignee,) = await _load_users(info, [self.record.assignee_id], self.firm_id)
        return assignee


@strawberry.type
class Message:
    record: strawberry.Private[models.Message]
    id: strawberry.ID
    kind: MessageKind = strawberry.field(
        description="MESSAGE, NOTE (internal: practitioners only) or EVENT (a timeline event)."
    )
    body: str = strawberry.field(description="Sanitized HTML (SPEC §6).")
    body_text: str = strawberry.field(
        description="Plain text of the body, for previews and notifications."
    )
    created_at: datetime
    edited_at: datetime | None = strawberry.field(
        description="When the body was last edited; null if never (SPEC §14)."
    )
    deleted_at: datetime | None = strawberry.field(
        description="When the message was deleted; a deleted message has an empty body and "
        "no attachments."
    )

    preloaded_author: strawberry.Private[User | None]
    """The author, when the page read it in bulk (a history page, `schema.inbox_rows`); None:
    load it."""

    def __init__(self, record: models.Message, author: User | None = None) -> None:
        # Plain fields are attributes, read by graphql-core without a resolver call (issue 16).
        self.record = record
        self.preloaded_author = author
        self.id = strawberry.ID(record.id)
        self.kind = record.kind
        self.body = record.body
        self.body_text = record.body_text
        self.created_at = record.created_at
        self.edited_at = record.edited_at
        self.deleted_at = record.deleted_at

    @property
    def share_key(self) -> str:
        """Names this message's event for `schema.shared_events`: a message changes only by
        a rewrite (an edit, the deletion), which bumps its version."""
        return f"message:{self.record.id}@{self.record.version}"

    @strawberry.field(
        description="This message's cursor in `Conversation.messages`: pass it as `after` to "
        "`messages` or `messageAdded` to resume from this message (a client that reconnects "
        "passes the cursor of the last message it received)."
    )
    def cursor(self) -> str:
        return message_cursor(self.record.seq)

    @strawberry.field(description="What changed, for a message of kind EVENT.")
    def event(self) -> ConversationEvent | None:
        if self.record.event is None:
            return None
        return ConversationEvent(record=self.record.event, firm_id=self.record.firm_id)

    @strawberry.field
    async def conversation(self, info: Info) -> Conversation:
        conversation = await info.context.loaders.conversations.load(self.record.conversation_id)
        if conversation is None:
            raise NotFound("conversation not found")
        return Conversation(record=conversation)

    @strawberry.field
    def author(self, info: Info) -> User:
        # A page hands its authors over, loaded in one batch: graphql-core then completes the
        # page without an awaitable per message (issue 16). Alone, a message loads its author,
        # and graphql-core awaits what this returns.
        if self.preloaded_author is not None:
            return self.preloaded_author
        return self._load_author(info)  # type: ignore[return-value]

    async def _load_author(self, info: Info) -> User:
        (author,) = await _load_users(info, [self.record.author_id], self.record.firm_id)
        return author

    @strawberry.field
    async def attachments(self, info: Info) -> list[Attachment]:
        found = await info.context.loaders.attachments.load_many(list(self.record.attachment_ids))
        return [Attachment(record=a) for a in found if a is not None]

    @strawberry.field(
        description="The earlier versions of an edited message, oldest first (empty once deleted)."
    )
    def revisions(self) -> list[MessageRevision]:
        return [MessageRevision(record=r) for r in self.record.revisions]

    @strawberry.field(description="Who deleted the message (its author or a practitioner).")
    async def deleted_by(self, info: Info) -> User | None:
        if self.record.deleted_by is None:
            return None
        (user,) = await _load_users(info, [self.record.deleted_by], self.record.firm_id)
        return user

    @strawberry.field(
        description="Participants other than the author whose read mark is at or after this "
        "message, among those whose receipts the viewer may see."
    )
    async def seen_by(self, info: Info) -> list[User]:
        context = info.context
        conversation = await context.loaders.conversations.load(self.record.conversation_id)
        if conversation is None:
            return []
        marks = await context.loaders.read_marks.load(conversation)
        reader_ids = [
            user_id
            for user_id in conversation.participant_ids
            if user_id != self.record.author_id
            and user_id in marks
            and marks[user_id].seq >= self.record.seq
        ]
        readers = await context.loaders.users.load_many(reader_ids)
        visible = visible_read_states(
            context.viewer, conversation, [r for r in readers if r is not None]
        )
        return [
            User(record=r) for r in visible if can_see_receipt_on(context.viewer, r, self.record)
        ]


@strawberry.type
class MessageRevision:
    record: strawberry.Private[models.MessageRevision]

    @strawberry.field(description="Sanitized HTML of this version.")
    def body(self) -> str:
        return self.record.body

    @strawberry.field
    def body_text(self) -> str:
        return self.record.body_text

    @strawberry.field(description="When this version was written (sent, or edited to it).")
    def edited_at(self) -> datetime:
        return self.record.written_at


@strawberry.type
class ReadState:
    """How far a participant has read a conversation (a read receipt)."""

    user: User
    mark: strawberry.Private[ReadMark | None]

    @strawberry.field(
        description="The newest message the viewer may read at or before the participant's "
        "read mark; null when it has read nothing."
    )
    async def last_read_message(self, info: Info) -> Message | None:
        if self.mark is None:
            return None
        found = await info.context.loaders.last_readable.load(
            (self.mark.conversation_id, self.mark.seq)
        )
        return Message(record=found) if found else None

    @strawberry.field(description="When the participant's read mark last moved.")
    def last_read_at(self) -> datetime | None:
        return None if self.mark is None else self.mark.read_at


MessageConnection = Connection[Message]


class NotRead(enum.Enum):
    NOT_READ = "not read"


NOT_READ = NotRead.NOT_READ


@dataclass(frozen=True, slots=True)
class Preloaded:
    """Fields of one conversation that its page read in bulk (`schema.inbox_rows`);
    `NOT_READ` for those it did not read, which the field then loads itself."""

    company: Company | NotRead | None = NOT_READ
    participants: list[User] | NotRead = NOT_READ
    created_by: User | NotRead = NOT_READ
    last_message: Message | NotRead | None = NOT_READ
    unread_count: int | NotRead = NOT_READ


NOTHING_PRELOADED = Preloaded()


@strawberry.type
class Conversation:
    """Its fields that read something else are synchronous: they answer what the page
    preloaded (`Preloaded`) as a plain value, and otherwise hand graphql-core an awaitable that
    loads it through the operation's loaders. A field answered as a value costs no task."""

    record: strawberry.Private[models.Conversation]
    preloaded: strawberry.Private[Preloaded]
    id: strawberry.ID
    type: ConversationType
    subject: str
    created_at: datetime
    status: ConversationStatus
    client_visible: bool = strawberry.field(
        description="Whether clients with the company in their favorites may read it "
        "(COMPANY conversations; decided when participants are designated)."
    )

    def __init__(
        self, record: models.Conversation, preloaded: Preloaded = NOTHING_PRELOADED
    ) -> None:
        # Plain fields are attributes, read by graphql-core without a resolver call (issue 16).
        self.record = record
        self.preloaded = preloaded
        self.id = strawberry.ID(record.id)
        self.type = record.type
        self.subject = record.subject
        self.created_at = record.created_at
        self.status = record.status
        self.client_visible = record.client_visible

    @strawberry.field
    def company(self, info: Info) -> Company | None:
        if self.preloaded.company is not NOT_READ:
            return self.preloaded.company
        if self.record.company_id is None:
            return None
        return _company(info, self.record.company_id)  # type: ignore[return-value]

    @strawberry.field
    def participants(self, info: Info) -> list[User]:
        if self.preloaded.participants is not NOT_READ:
            return self.preloaded.participants
        ids = list(self.record.participant_ids)
        return _load_users(info, ids, self.record.firm_id)  # type: ignore[return-value]

    @strawberry.field
    def created_by(self, info: Info) -> User:
        if self.preloaded.created_by is not NOT_READ:
            return self.preloaded.created_by
        return self._load_creator(info)  # type: ignore[return-value]

    async def _load_creator(self, info: Info) -> User:
        (creator,) = await _load_users(info, [self.record.created_by], self.record.firm_id)
        return creator

    @strawberry.field(description="The time of the newest message the viewer may read.")
    def last_message_at(self, info: Info) -> datetime:
        return self.record.last_message_at(audience_of(info.context.viewer))

    @strawberry.field(description="The practitioner in charge, a participant.")
    async def assignee(self, info: Info) -> User | None:
        if self.record.assignee_id is None:
            return None
        (assignee,) = await _load_users(info, [self.record.assignee_id], self.record.firm_id)
        return assignee

    @strawberry.field(description="Whether the viewer archived it (out of its default inbox).")
    def archived(self, info: Info) -> bool:
        viewer = info.context.viewer
        return viewer.id in self.record.archived_by(audience_of(viewer))

    @strawberry.field(description="Whether the viewer muted it (no notifications).")
    def muted(self, info: Info) -> bool:
        return info.context.viewer.id in self.record.muted_by

    @strawberry.field(**guarded(ReadThisConversation))
    def last_message(self, info: Info) -> Message | None:
        if self.preloaded.last_message is not NOT_READ:
            return self.preloaded.last_message
        return self._load_last_message(info)  # type: ignore[return-value]

    async def _load_last_message(self, info: Info) -> Message | None:
        last_id = self.record.last_message_id_for(audience_of(info.context.viewer))
        if last_id is None:
            return None
        message = await info.context.loaders.messages.load((self.record.id, last_id))
        if message is None or not can_read_message(info.context.viewer, self.record, message):
            return None
        return Message(record=message)

    @strawberry.field(
        description="Messages after the viewer's read mark that the viewer did not write.",
        **guarded(ReadThisConversation),
    )
    def unread_count(self, info: Info) -> int:
        if self.preloaded.unread_count is not NOT_READ:
            return self.preloaded.unread_count
        return info.context.loaders.unread_counts.load(self.record)  # type: ignore[return-value]

    @strawberry.field(
        description="Read receipts of the participants whose receipts the viewer may see "
        "(SPEC §14).",
        **guarded(ReadThisConversation),
    )
    async def read_states(self, info: Info) -> list[ReadState]:
        context = info.context
        marks = await context.loaders.read_marks.load(self.record)
        users = await context.loaders.users.load_many(list(self.record.participant_ids))
        visible = visible_read_states(
            context.viewer, self.record, [u for u in users if u is not None]
        )
        return [ReadState(user=User(record=u), mark=marks.get(u.id)) for u in visible]

    @strawberry.field(
        description="History, oldest first; without arguments the newest 50 messages.",
        **guarded(ReadThisConversation),
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
            HistoryRequest(
                self.record,
                info.context.viewer,
                first=first,
                after=after,
                last=last,
                before=before,
            )
        )
        authors = await _load_users(
            info, sorted({m.author_id for m in page.items}), self.record.firm_id
        )
        author_of = {user.record.id: user for user in authors}
        return connection(
            page,
            cursor=lambda m: message_cursor(m.seq),
            node=lambda m: Message(record=m, author=author_of.get(m.author_id)),
        )


ConversationConnection = Connection[Conversation]


@strawberry.type(description="The viewer's badges (SPEC §14).")
class UnreadSummary:
    conversations: int = strawberry.field(
        description="Readable conversations with at least one unread message."
    )
    messages: int = strawberry.field(description="Unread messages over every readable one.")
    notifications: int = strawberry.field(description="Unread notifications.")
