"""The conversation documents: their typed records, and the one place new documents are built.

`conversations {_id, firm_id, type, company_id, subject, participant_ids, created_by, created_at,
last_activity_ms, last_message_id, message_count, skipped_seqs, reconciled_seq, client_visible,
client_message_id}` and `messages {_id, firm_id, conversation_id, seq, author_id, body,
body_text, attachment_ids, created_at, created_ms, client_message_id, fanout, recipients}`.

- Times that updates change are stored as integer epoch milliseconds (`last_activity_ms`): the
  embedded server stores a date given to `$set` as text (docs/embedded.md).
- `seq` numbers a conversation's messages 1, 2, 3... in the order the conversation's counter
  (`message_count`) handed them out; it orders history and is its cursor. A number taken by a
  reply that was never stored is listed in `skipped_seqs`, by the reply itself when its write
  failed or by the crash recovery (`recovery.py`), which keeps in `reconciled_seq` how far it
  got.
- `fanout: "pending"` with `recipients` is the message's notification outbox, cleared once every
  recipient's notification is stored (`notifications.service`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from graphql_api import clock
from graphql_api.database import Document


class ConversationType(enum.StrEnum):
    COMPANY = "COMPANY"
    CONFIDENTIAL = "CONFIDENTIAL"
    PRIVATE = "PRIVATE"


COMPANY_KINDS = (ConversationType.COMPANY, ConversationType.CONFIDENTIAL)

MessageRef = tuple[str, str]
"""(conversation id, message id): how messages are looked up, shard key first."""


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

    @property
    def last_message_at(self) -> datetime:
        return datetime.fromtimestamp(self.last_activity_ms / 1000, tz=UTC)

    @classmethod
    def from_doc(cls, doc: Document) -> Conversation:
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
        )


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

    @classmethod
    def from_doc(cls, doc: Document) -> Message:
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
        )


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
    client_visible: bool,
    client_message_id: str | None,
) -> Document:
    """A new conversation whose first message (seq 1) is `first_message_id`."""
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
        "message_count": 1,
        "reconciled_seq": 1,  # stored before the conversation: nothing to reconcile
        "client_visible": client_visible,
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
) -> Document:
    """A new message with its notification outbox still pending for `recipients`."""
    doc: Document = {
        "_id": message_id,
        "firm_id": firm_id,
        "conversation_id": conversation_id,
        "seq": seq,
        "author_id": author_id,
        "body": html,
        "body_text": text,
        "attachment_ids": attachment_ids,
        "created_at": created_at,
        "created_ms": clock.millis(created_at),
        "fanout": "pending",
        "recipients": recipients,
    }
    if client_message_id is not None:
        doc["client_message_id"] = client_message_id
    return doc
