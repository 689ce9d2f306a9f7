"""The audit log (SPEC §17): one append-only record per audited action, written with the action.

Audited actions: conversation creation, participant, subject, status and assignee changes,
edits and deletions of messages, attachment downloads, exports, purges and erasures. A record
says who (`actor_id`, None for the system or the command line), when, what (`action`, the
conversation and company, `details`) and from which address.

"Written with the action": MongoDB transactions are not available everywhere the service runs,
so an action that writes a document puts its audit entry inside that same write
(`pending_fields`: the entry under `pending_audit.<id>`, and the document marked with
`audit_pending_ms`). The entry is then chained into the log (`chain.append`, idempotent by its
id) and removed from the document (`clear_pending`). An action that fails writes neither; an
action that succeeded holds its entry until it is in the log, and the crash recovery completes
entries a dead process left (`complete_pending`). Reads that are audited (downloads, exports)
write their record before the first byte is served: a read whose record cannot be written is
refused.

Nothing in the API changes or deletes a record; `graphql_api.compliance.chain` makes a change
behind its back visible.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphql_api import clock
from graphql_api.compliance import chain
from graphql_api.database import Db, Document
from graphql_api.directory.models import User
from graphql_api.ids import new_id

PENDING = "pending_audit"
PENDING_SINCE = "audit_pending_ms"
PENDING_MARK = "audit_pending_mark"

# Collections whose documents may carry pending entries, with the fields of their shard key
# (every write names it: `graphql_api/sharding.py`).
PENDING_COLLECTIONS: dict[str, tuple[str, ...]] = {
    "conversations": ("firm_id", "created_by"),
    "messages": ("conversation_id",),
    "users": (),
}
MAX_PENDING_PER_RUN = 1000


CLIENT_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar(
    "client_address", default="unknown"
)
"""The address of the client whose request is being served (set by the HTTP middleware)."""


class AuditAction(enum.StrEnum):
    CONVERSATION_CREATED = "conversation.created"
    PARTICIPANTS_ADDED = "conversation.participants_added"
    PARTICIPANT_REMOVED = "conversation.participant_removed"
    SUBJECT_CHANGED = "conversation.subject_changed"
    STATUS_CHANGED = "conversation.status_changed"
    ASSIGNEE_CHANGED = "conversation.assignee_changed"
    MESSAGE_EDITED = "message.edited"
    MESSAGE_DELETED = "message.deleted"
    ATTACHMENT_DOWNLOADED = "attachment.downloaded"
    COMPANY_EXPORTED = "company.exported"
    CONVERSATION_PURGED = "conversation.purged"
    USER_ERASED = "user.erased"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts and from where: a user and its client address, or the command line."""

    user_id: str | None
    address: str

    @classmethod
    def of(cls, user: User) -> Actor:
        """The user of the request being served, from its client address."""
        return cls(user.id, CLIENT_ADDRESS.get())

    @classmethod
    def command_line(cls) -> Actor:
        return cls(None, "command line")

    @classmethod
    def system(cls) -> Actor:
        return cls(None, "system")


def new_entry(
    firm_id: str,
    actor: Actor,
    action: AuditAction,
    *,
    conversation_id: str | None = None,
    company_id: str | None = None,
    details: dict[str, Any] | None = None,
    entry_id: str | None = None,
    at: datetime | None = None,
) -> Document:
    """An entry to record (not yet chained): the chain adds `seq`, `prev_hash` and `hash`."""
    return {
        "_id": entry_id or new_id(),
        "firm_id": firm_id,
        "at_ms": clock.millis(at or clock.now()),
        "actor_id": actor.user_id,
        "action": action.value,
        "conversation_id": conversation_id,
        "company_id": company_id,
        "details": chain.canonical_details(details),
        "address": actor.address[:200],
    }


def pending_fields(entry: Document) -> Document:
    """The fields that carry `entry` inside the action's own write: add them to a new
    document, or `$set` them in the action's update."""
    return {
        f"{PENDING}.{entry['_id']}": entry,
        PENDING_SINCE: entry["at_ms"],
        PENDING_MARK: entry["_id"],
    }


def pending_document_fields(entry: Document) -> Document:
    """`pending_fields` for a document being inserted (a nested map, not a dotted path)."""
    return {
        PENDING: {entry["_id"]: entry},
        PENDING_SINCE: entry["at_ms"],
        PENDING_MARK: entry["_id"],
    }


async def record(db: Db, entry: Document) -> Document:
    """Chain an entry that no document carries (downloads, exports): the action waits for it."""
    return await chain.append(db, entry, fresh=True)


async def record_download(db: Db, viewer: User, attachment: Any, byte_range: str | None) -> None:
    """Record that `viewer` downloads a conversation's file (`attachments.store.Attachment`)."""
    conversation = await db.conversations.find_one(
        {"_id": attachment.conversation_id, "firm_id": {"$eq": viewer.firm_id}}, {"company_id": 1}
    )
    details: dict[str, Any] = {"attachmentId": attachment.id, "filename": attachment.filename}
    if byte_range:
        details["range"] = byte_range[:100]
    entry = new_entry(
        viewer.firm_id,
        Actor.of(viewer),
        AuditAction.ATTACHMENT_DOWNLOADED,
        conversation_id=attachment.conversation_id,
        company_id=(conversation or {}).get("company_id"),
        details=details,
    )
    await record(db, entry)


async def commit(db: Db, collection: str, key: Document, entry: Document) -> None:
    """Chain an entry the action's write carried, then take it off the document (`key`: the
    document's `_id` and shard key)."""
    await chain.append(db, entry, fresh=True)
    await clear_pending(db, collection, key, entry["_id"])


async def clear_pending(db: Db, collection: str, key: Document, entry_id: str) -> None:
    """Remove a chained entry from its document; the mark goes too unless a newer entry came."""
    entry_path = f"{PENDING}.{entry_id}"
    result = await db[collection].update_one(
        {**key, PENDING_MARK: {"$eq": entry_id}},
        {"$unset": {entry_path: "", PENDING_SINCE: "", PENDING_MARK: ""}},
    )
    if result.matched_count == 0:
        await db[collection].update_one(key, {"$unset": {entry_path: ""}})


async def complete_pending(db: Db, cutoff_ms: int) -> int:
    """Chain the entries left on documents by actions whose process died before it chained
    them (older than `cutoff_ms`); answer how many entries were completed."""
    completed = 0
    for collection, shard_fields in PENDING_COLLECTIONS.items():
        docs = (
            await db[collection]
            .find(
                {PENDING_SINCE: {"$lt": cutoff_ms}},
                {PENDING: 1, PENDING_MARK: 1, **{name: 1 for name in shard_fields}},
            )
            .limit(MAX_PENDING_PER_RUN)
            .to_list()
        )
        for doc in docs:
            key = {"_id": doc["_id"], **{name: {"$eq": doc.get(name)} for name in shard_fields}}
            entries = sorted((doc.get(PENDING) or {}).values(), key=lambda e: e["at_ms"])
            for entry in entries:
                await chain.append(db, entry)
                await db[collection].update_one(key, {"$unset": {f"{PENDING}.{entry['_id']}": ""}})
                completed += 1
            # Unless an entry came meanwhile (it changed the mark): the next run looks again.
            await db[collection].update_one(
                {**key, PENDING_MARK: {"$eq": doc.get(PENDING_MARK)}},
                {"$unset": {PENDING_SINCE: "", PENDING_MARK: ""}},
            )
    return completed


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which records of one firm to read; `since` inclusive, `until` exclusive (epoch ms)."""

    firm_id: str
    company_id: str | None = None
    actor_id: str | None = None
    action: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def query(self) -> Document:
        query: Document = {"firm_id": {"$eq": self.firm_id}}
        if self.company_id is not None:
            query["company_id"] = {"$eq": self.company_id}
        if self.actor_id is not None:
            query["actor_id"] = {"$eq": self.actor_id}
        if self.action is not None:
            query["action"] = {"$eq": self.action}
        at: Document = {}
        if self.since_ms is not None:
            at["$gte"] = self.since_ms
        if self.until_ms is not None:
            at["$lt"] = self.until_ms
        if at:
            query["at_ms"] = at
        return query


async def page(db: Db, where: AuditFilter, size: int, before_seq: int | None) -> list[Document]:
    """Records newest first (by their number in the chain), `size` of them, before a number."""
    query = where.query()
    if before_seq is not None:
        query["seq"] = {"$lt": before_seq}
    return await db.audit_log.find(query).sort("seq", -1).limit(size).to_list()


async def all_records(db: Db, where: AuditFilter) -> AsyncIterator[Document]:
    """Every matching record of the firm, oldest first (the command line's export)."""
    async for doc in db.audit_log.find(where.query()).sort("seq", 1):
        yield doc


def public_record(doc: Document) -> Document:
    """A record as the command line prints it: its fields, the chain's included."""
    return {
        "id": str(doc["_id"]),
        "firm_id": doc["firm_id"],
        "seq": doc["seq"],
        "at": datetime.fromtimestamp(doc["at_ms"] / 1000, tz=clock.now().tzinfo).isoformat(
            timespec="milliseconds"
        ),
        "actor_id": doc.get("actor_id"),
        "action": doc["action"],
        "conversation_id": doc.get("conversation_id"),
        "company_id": doc.get("company_id"),
        "details": doc.get("details") or {},
        "address": doc.get("address"),
        "prev_hash": doc["prev_hash"],
        "hash": doc["hash"],
    }
