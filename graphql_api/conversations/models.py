"""The conversation documents: their typed records, and the one place new documents are built.

`conversations {_id, firm_id, type, company_id, subject, participant_ids, created_by, created_at,
last_activity_ms, last_message_id, client_activity_ms, client_last_message_id, message_count,
staff_count, client_count, skipped_seqs, skipped_staff, skipped_client, reconciled_seq,
reconciled_staff, reconciled_client, client_visible, client_visible_by, status, assignee_id,
archived_by_staff, archived_by_clients, muted_by, client_message_id}` and `messages {_id, firm_id,
conversation_id, seq, kind, event, staff_n, client_n, author_id, body, body_text, attachment_ids,
created_at, created_ms, client_message_id, fanout, recipients, revisions, edited_ms, deleted_ms,
deleted_by, version}`, and `retained_messages` (what a deletion took off a message, for the admin
export only: `retained_doc`).

- Two audiences see a conversation's activity differently (SPEC §13, docs/notes.md): STAFF
  (practitioners) see messages and notes, CLIENT (clients) messages only; timeline events are
  activity for nobody. Each audience has its counter (`staff_count`, `client_count`), its last
  activity and last message (`last_activity_ms` / `last_message_id` for staff,
  `client_activity_ms` / `client_last_message_id` for clients), and every message stores the
  counters as its write left them (`staff_n`, `client_n`: its own ordinal when its kind counts
  for that audience). Unread = audience count - the mark's ordinal - skipped ordinals after it.
- Per-viewer state lives on the conversation as arrays (`archived_by_staff`,
  `archived_by_clients`, `muted_by`): a new message clears the archived arrays of the audiences
  that may read it, in the same update that numbers it.
- `client_visible_by`: the clients who made a COMPANY conversation client-visible (they had the
  company in their favorites when designated); `client_visible` is true while one remains.

- Times that updates change are stored as integer epoch milliseconds (`last_activity_ms`): the
  embedded server stores a date given to `$set` as text (docs/embedded.md).
- `seq` numbers a conversation's messages 1, 2, 3... in the order the conversation's counter
  (`message_count`) handed them out; it orders history and is its cursor. A number taken by a
  reply that was never stored is listed in `skipped_seqs`, by the reply itself when its write
  failed or by the crash recovery (`recovery.py`), which keeps in `reconciled_seq` how far it
  got.
- Edits and deletions (SPEC §14) rewrite a message in place: `revisions` holds its earlier
  versions, oldest first, each `{body, body_text, written_ms}` (a whole array is `$set`: the
  embedded server stores a document given to `$push` as text); `version` counts the rewrites, so
  that two concurrent ones cannot both apply to the same version. A deleted message keeps its
  place with an empty body and no attachments; its content moves to `retained_messages`.
- `fanout: "pending"` with `recipients` is the message's notification outbox, cleared once every
  recipient's notification is stored (`notifications.service`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from graphql_api import clock
from graphql_api.database import Document


class MessageKind(enum.StrEnum):
    MESSAGE = "MESSAGE"
    NOTE = "NOTE"
    EVENT = "EVENT"


class ConversationStatus(enum.StrEnum):
    OPEN = "OPEN"
    WAITING = "WAITING"
    RESOLVED = "RESOLVED"


class Audience(enum.StrEnum):
    """Who sees a conversation's activity the same way: practitioners, or clients."""

    STAFF = "STAFF"
    CLIENT = "CLIENT"


def counts_for(kind: MessageKind, audience: Audience) -> bool:
    """Whether a message of `kind` is activity (ordered, unread) for `audience`."""
    if kind is MessageKind.EVENT:
        return False
    return audience is Audience.STAFF or kind is MessageKind.MESSAGE


class ConversationType(enum.StrEnum):
    COMPANY = "COMPANY"
    CONFIDENTIAL = "CONFIDENTIAL"
    PRIVATE = "PRIVATE"


COMPANY_KINDS = (ConversationType.COMPANY, ConversationType.CONFIDENTIAL)

MessageRef = tuple[str, str]
"""(conversation id, message id): how messages are looked up, shard key first."""


ARCHIVED_FIELDS = {Audience.STAFF: "archived_by_staff", Audience.CLIENT: "archived_by_clients"}
"""Per audience: the conversation's field listing the viewers who archived it."""


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    firm_id: str
    type: ConversationType
    company_id: str | None
    subject: str
    participant_ids: tuple[str, ...]
    created_by: str
    created_at: datetime
    last_activity_ms: int
    last_message_id: str | None
    message_count: int
    client_visible: bool
    skipped_seqs: tuple[int, ...] = ()
    """Numbers taken by a reply whose write then failed: no message has them (read as a set:
    the recovery of two processes may list a number twice)."""
    staff_count: int = 0
    client_count: int = 0
    client_activity_ms: int = 0
    client_last_message_id: str | None = None
    skipped_staff: tuple[int, ...] = ()
    skipped_client: tuple[int, ...] = ()
    client_visible_by: tuple[str, ...] = ()
    status: ConversationStatus = ConversationStatus.OPEN
    assignee_id: str | None = None
    archived_by_staff: tuple[str, ...] = ()
    archived_by_clients: tuple[str, ...] = ()
    muted_by: tuple[str, ...] = ()
    counted: bool = True
    """Whether the document has the audiences' counters (False: stored before notes)."""

    def activity_ms(self, audience: Audience) -> int:
        return self.last_activity_ms if audience is Audience.STAFF else self.client_activity_ms

    def last_message_id_for(self, audience: Audience) -> str | None:
        if audience is Audience.STAFF:
            return self.last_message_id
        return self.client_last_message_id

    def last_message_at(self, audience: Audience) -> datetime:
        return datetime.fromtimestamp(self.activity_ms(audience) / 1000, tz=UTC)

    def count(self, audience: Audience) -> int:
        return self.staff_count if audience is Audience.STAFF else self.client_count

    def skipped(self, audience: Audience) -> tuple[int, ...]:
        return self.skipped_staff if audience is Audience.STAFF else self.skipped_client

    def archived_by(self, audience: Audience) -> tuple[str, ...]:
        if audience is Audience.STAFF:
            return self.archived_by_staff
        return self.archived_by_clients

    @classmethod
    def from_doc(cls, doc: Document) -> Conversation:
        # Before notes, every skipped number was skipped for everyone; since, each audience
        # lists its own (a lost note or event skips no client ordinal).
        legacy_skipped = () if "staff_count" in doc else doc.get("skipped_seqs", ())
        return cls(
            id=doc["_id"],
            firm_id=doc["firm_id"],
            type=ConversationType(doc["type"]),
            company_id=doc.get("company_id"),
            subject=doc["subject"],
            participant_ids=tuple(doc["participant_ids"]),
            created_by=doc["created_by"],
            created_at=doc["created_at"],
            last_activity_ms=int(doc["last_activity_ms"]),
            last_message_id=doc.get("last_message_id"),
            message_count=int(doc.get("message_count", 0)),
            client_visible=bool(doc.get("client_visible", False)),
            skipped_seqs=tuple(sorted({int(s) for s in doc.get("skipped_seqs", ())})),
            # Documents written before notes and events: every message counted for everyone.
            staff_count=int(doc.get("staff_count", doc.get("message_count", 0))),
            client_count=int(doc.get("client_count", doc.get("message_count", 0))),
            client_activity_ms=int(doc.get("client_activity_ms", doc["last_activity_ms"])),
            client_last_message_id=doc.get("client_last_message_id", doc.get("last_message_id")),
            skipped_staff=_ordinals(doc.get("skipped_staff", legacy_skipped)),
            skipped_client=_ordinals(doc.get("skipped_client", legacy_skipped)),
            client_visible_by=tuple(doc.get("client_visible_by", ())),
            status=ConversationStatus(doc.get("status") or ConversationStatus.OPEN.value),
            assignee_id=doc.get("assignee_id"),
            archived_by_staff=tuple(doc.get("archived_by_staff", ())),
            archived_by_clients=tuple(doc.get("archived_by_clients", ())),
            muted_by=tuple(doc.get("muted_by", ())),
            counted="staff_count" in doc,
        )


def _ordinals(values: object) -> tuple[int, ...]:
    return tuple(sorted({int(v) for v in values}))  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """What a timeline event records: who did it, and what changed."""

    actor_id: str
    added_user_ids: tuple[str, ...] = ()
    removed_user_ids: tuple[str, ...] = ()
    old_subject: str | None = None
    new_subject: str | None = None
    status: ConversationStatus | None = None
    assignee_id: str | None = None
    assignee_changed: bool = False

    def to_doc(self) -> Document:
        return {
            "actor_id": self.actor_id,
            "added_user_ids": list(self.added_user_ids),
            "removed_user_ids": list(self.removed_user_ids),
            "old_subject": self.old_subject,
            "new_subject": self.new_subject,
            "status": self.status.value if self.status is not None else None,
            "assignee_id": self.assignee_id,
            "assignee_changed": self.assignee_changed,
        }

    @classmethod
    def from_doc(cls, doc: Document) -> ConversationEvent:
        status = doc.get("status")
        return cls(
            actor_id=doc["actor_id"],
            added_user_ids=tuple(doc.get("added_user_ids", ())),
            removed_user_ids=tuple(doc.get("removed_user_ids", ())),
            old_subject=doc.get("old_subject"),
            new_subject=doc.get("new_subject"),
            status=ConversationStatus(status) if status else None,
            assignee_id=doc.get("assignee_id"),
            assignee_changed=bool(doc.get("assignee_changed", False)),
        )


@dataclass(frozen=True, slots=True)
class MessageRevision:
    """An earlier version of an edited message, and when it was written."""

    body: str
    body_text: str
    written_ms: int

    @property
    def written_at(self) -> datetime:
        return _from_ms(self.written_ms)

    def doc(self) -> Document:
        return {"body": self.body, "body_text": self.body_text, "written_ms": self.written_ms}


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    firm_id: str
    conversation_id: str
    seq: int
    author_id: str
    body: str
    body_text: str
    attachment_ids: tuple[str, ...]
    created_at: datetime
    kind: MessageKind = MessageKind.MESSAGE
    event: ConversationEvent | None = None
    staff_n: int = 0
    client_n: int = 0
    revisions: tuple[MessageRevision, ...] = ()
    edited_ms: int | None = None
    deleted_ms: int | None = None
    deleted_by: str | None = None
    version: int = 0
    """How many times it was rewritten (edits and the deletion): the guard of the next rewrite."""

    @property
    def edited_at(self) -> datetime | None:
        return None if self.edited_ms is None else _from_ms(self.edited_ms)

    @property
    def deleted_at(self) -> datetime | None:
        return None if self.deleted_ms is None else _from_ms(self.deleted_ms)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_ms is not None

    @classmethod
    def from_doc(cls, doc: Document) -> Message:
        seq = int(doc["seq"])
        event = doc.get("event")
        return cls(
            id=doc["_id"],
            firm_id=doc["firm_id"],
            conversation_id=doc["conversation_id"],
            seq=int(doc["seq"]),
            author_id=doc["author_id"],
            body=doc["body"],
            body_text=doc["body_text"],
            attachment_ids=tuple(doc.get("attachment_ids", ())),
            created_at=doc["created_at"],
            kind=MessageKind(doc.get("kind") or MessageKind.MESSAGE.value),
            event=ConversationEvent.from_doc(event) if isinstance(event, dict) else None,
            staff_n=int(doc.get("staff_n", seq)),
            client_n=int(doc.get("client_n", seq)),
            revisions=tuple(
                MessageRevision(r["body"], r["body_text"], int(r["written_ms"]))
                for r in doc.get("revisions", ())
            ),
            edited_ms=_optional_int(doc.get("edited_ms")),
            deleted_ms=_optional_int(doc.get("deleted_ms")),
            deleted_by=doc.get("deleted_by"),
            version=int(doc.get("version", 0)),
        )


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def new_conversation_doc(
    *,
    conversation_id: str,
    firm_id: str,
    kind: ConversationType,
    company_id: str | None,
    subject: str,
    participant_ids: list[str],
    created_by: str,
    created_at: datetime,
    first_message_id: str,
    client_visible_by: list[str],
    client_message_id: str | None,
) -> Document:
    """A new conversation whose first message (seq 1, a MESSAGE) is `first_message_id`."""
    doc: Document = {
        "_id": conversation_id,
        "firm_id": firm_id,
        "type": kind.value,
        "company_id": company_id,
        "subject": subject,
        "participant_ids": participant_ids,
        "created_by": created_by,
        "created_at": created_at,
        "last_activity_ms": clock.millis(created_at),
        "last_message_id": first_message_id,
        "client_activity_ms": clock.millis(created_at),
        "client_last_message_id": first_message_id,
        "message_count": 1,
        "staff_count": 1,
        "client_count": 1,
        # The first message is stored before the conversation: nothing to reconcile.
        "reconciled_seq": 1,
        "reconciled_staff": 1,
        "reconciled_client": 1,
        "client_visible": bool(client_visible_by),
        "client_visible_by": client_visible_by,
        "status": ConversationStatus.OPEN.value,
        "assignee_id": None,
        # Arrays exist from the start: the embedded server ignores `$addToSet` on a missing one.
        "archived_by_staff": [],
        "archived_by_clients": [],
        "muted_by": [],
    }
    if client_message_id is not None:
        doc["client_message_id"] = client_message_id
    return doc


def new_message_doc(
    *,
    message_id: str,
    firm_id: str,
    conversation_id: str,
    seq: int,
    author_id: str,
    html: str,
    text: str,
    attachment_ids: list[str],
    created_at: datetime,
    recipients: list[str],
    client_message_id: str | None,
    kind: MessageKind = MessageKind.MESSAGE,
    staff_n: int | None = None,
    client_n: int | None = None,
    event: ConversationEvent | None = None,
) -> Document:
    """A new message with its notification outbox still pending for `recipients`; `staff_n` and
    `client_n` are the audiences' counters as numbering it left them (`seq` by default: a first
    message)."""
    doc: Document = {
        "_id": message_id,
        "firm_id": firm_id,
        "conversation_id": conversation_id,
        "seq": seq,
        "kind": kind.value,
        "staff_n": seq if staff_n is None else staff_n,
        "client_n": seq if client_n is None else client_n,
        "author_id": author_id,
        "body": html,
        "body_text": text,
        "attachment_ids": attachment_ids,
        "created_at": created_at,
        "created_ms": clock.millis(created_at),
        "fanout": "pending",
        "recipients": recipients,
    }
    if event is not None:
        doc["event"] = event.to_doc()
    if client_message_id is not None:
        doc["client_message_id"] = client_message_id
    return doc


def edited_fields(message: Message, html: str, text: str, now_ms: int) -> Document:
    """The `$set` of an edit: the new body, and the current one kept as the newest revision
    (written when the message was sent, or at its last edit)."""
    written_ms = message.edited_ms or clock.millis(message.created_at)
    revisions = [*message.revisions, MessageRevision(message.body, message.body_text, written_ms)]
    return {
        "body": html,
        "body_text": text,
        "revisions": [r.doc() for r in revisions],
        "edited_ms": now_ms,
        "version": message.version + 1,
    }


def deleted_fields(message: Message, deleted_by: str, now_ms: int) -> Document:
    """The `$set` of a deletion: who and when, with the content emptied."""
    return {
        "body": "",
        "body_text": "",
        "attachment_ids": [],
        "revisions": [],
        "deleted_ms": now_ms,
        "deleted_by": deleted_by,
        "version": message.version + 1,
    }


def retained_doc(message: Message, deleted_by: str, now_ms: int) -> Document:
    """What a deletion takes off `message`, kept for the firm's legal duties (SPEC §17): only
    the admin export reads `retained_messages`."""
    return {
        "_id": message.id,
        "firm_id": message.firm_id,
        "conversation_id": message.conversation_id,
        "author_id": message.author_id,
        "seq": message.seq,
        "created_at": message.created_at,
        "body": message.body,
        "body_text": message.body_text,
        "attachment_ids": list(message.attachment_ids),
        "revisions": [r.doc() for r in message.revisions],
        "edited_ms": message.edited_ms,
        "deleted_ms": now_ms,
        "deleted_by": deleted_by,
    }
