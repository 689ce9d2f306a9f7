"""The per-firm hash chain of the audit log: how a record joins it, and how the chain is checked.

Each firm's records are numbered 1, 2, 3... (`seq`); each carries `prev_hash`, the hash of the
record before it (64 zeros for the first), and `hash`, the SHA-256 of its own content with
`prev_hash` (`content_hash`). A record changed behind the API's back no longer matches its hash;
a record removed leaves a gap in the numbers and a `prev_hash` that names nothing; a record
inserted out of order breaks the link of the one after it. `verify_firm` finds the first of these.

Appending takes the firm's head document (`audit_chains {_id: firm_id, seq, hash, pending}`) and
moves it forward with a compare-and-set on `seq`, the new record riding in the same write as
`pending`; the record is then inserted into `audit_log` by its `_id` (idempotent). Whoever next
reads the head inserts its `pending` record first, so a process that died between the two writes
loses nothing, and two processes never take the same number; once stored, the head lets the
record go (a record removed later is then missing, never restored). Appending an entry whose
`_id` is in the log already does nothing: completing a pending entry twice leaves one record.

    record = await append(db, entry)        # entry: the fields of `AuditEntry` but the chain's
    problem = await verify_firm(db, firm)   # None, or the first record that is wrong
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from graphql_api.database import Db, Document

GENESIS = "0" * 64
CONTENT_FIELDS = (
    "_id",
    "firm_id",
    "seq",
    "at_ms",
    "actor_id",
    "action",
    "conversation_id",
    "company_id",
    "details",
    "address",
    "prev_hash",
)
"""What a record's hash covers: everything it says (`at` is `at_ms` as a date, for queries)."""

MAX_ATTEMPTS = 50  # compare-and-set retries under contention before giving up


class ChainContention(RuntimeError):
    """The firm's head moved under every attempt (a storm of concurrent appends)."""


def content_hash(record: Document) -> str:
    """The SHA-256 of a record's content, as canonical JSON (sorted keys, no spaces)."""
    content = {name: record.get(name) for name in CONTENT_FIELDS}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def append(db: Db, entry: Document, *, fresh: bool = False) -> Document:
    """Chain `entry` (with its `_id` and `firm_id`) as its firm's next record and store it;
    answer the stored record (the existing one if the entry was chained already).

    `fresh`: the entry was made by this request just now, so nobody else can have chained it
    (the recovery only takes entries older than its grace period): no lookup is needed."""
    firm_id = entry["firm_id"]
    for _ in range(MAX_ATTEMPTS):
        head = await db.audit_chains.find_one({"_id": firm_id}) or {"seq": 0, "hash": GENESIS}
        pending = head.get("pending")
        if pending is not None:
            await _store(db, pending)  # the previous append's record, if its writer died
            if pending["_id"] == entry["_id"]:
                return pending
        if not fresh:
            existing = await db.audit_log.find_one({"_id": entry["_id"], "firm_id": firm_id})
            if existing is not None:
                return existing
        record = {**entry, "seq": int(head["seq"]) + 1, "prev_hash": head["hash"]}
        record["hash"] = content_hash(record)
        if await _advance(db, firm_id, int(head["seq"]), record):
            await _store(db, record)
            # Stored: the head stops carrying it (unless another append moved it meanwhile), so
            # that a record removed later is missing, not silently stored again.
            await db.audit_chains.update_one(
                {"_id": firm_id, "seq": record["seq"]}, {"$unset": {"pending": ""}}
            )
            return record
    raise ChainContention(f"the audit chain of firm {firm_id} is too busy; try again")


async def _advance(db: Db, firm_id: str, seq: int, record: Document) -> bool:
    """Move the head from `seq` to the record's, carrying the record; False if it moved."""
    head = {"seq": record["seq"], "hash": record["hash"], "pending": record}
    if seq == 0:
        try:
            await db.audit_chains.insert_one({"_id": firm_id, **head})
        except DuplicateKeyError:
            return False
        return True
    result = await db.audit_chains.update_one({"_id": firm_id, "seq": seq}, {"$set": head})
    return result.modified_count == 1


async def _store(db: Db, record: Document) -> None:
    stored = {**record, "at": datetime.fromtimestamp(record["at_ms"] / 1000, UTC)}
    try:
        await db.audit_log.insert_one(stored)
    except DuplicateKeyError:
        pass  # stored already: by its writer, or by whoever read the head first


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first record of a firm's chain that is wrong, and how."""

    firm_id: str
    seq: int
    record_id: str | None
    why: str

    def describe(self) -> str:
        which = f"record {self.seq}" + (f" (id {self.record_id})" if self.record_id else "")
        return f"firm {self.firm_id}: {which}: {self.why}"


async def verify_firm(db: Db, firm_id: str) -> tuple[int, ChainProblem | None]:
    """Check a firm's whole chain in order; answer how many records were checked and the first
    problem (None when the chain is intact)."""
    head = await db.audit_chains.find_one({"_id": firm_id}) or {"seq": 0, "hash": GENESIS}
    pending = head.get("pending")
    if pending is not None:
        await _store(db, pending)  # an append whose writer died: part of the chain
    expected_seq, expected_prev = 1, GENESIS
    checked = 0
    cursor = db.audit_log.find({"firm_id": {"$eq": firm_id}}).sort("seq", 1)
    async for record in cursor:
        problem = _check(firm_id, record, expected_seq, expected_prev)
        if problem is not None:
            return checked, problem
        checked += 1
        expected_seq, expected_prev = record["seq"] + 1, record["hash"]
    if expected_seq <= int(head["seq"]):
        return checked, ChainProblem(
            firm_id,
            expected_seq,
            None,
            f"missing: removed from the log (the chain's head is at record {head['seq']})",
        )
    if checked and expected_prev != head["hash"]:
        return checked, ChainProblem(
            firm_id, expected_seq - 1, None, "the last record is not the one the chain's head names"
        )
    return checked, None


def _check(
    firm_id: str, record: Document, expected_seq: int, expected_prev: str
) -> ChainProblem | None:
    seq = record.get("seq")
    record_id = str(record.get("_id"))
    if not isinstance(seq, int) or seq < expected_seq:
        return ChainProblem(firm_id, expected_seq, record_id, "inserted out of order")
    if seq > expected_seq:
        return ChainProblem(firm_id, expected_seq, None, "missing: removed from the log")
    if record.get("prev_hash") != expected_prev:
        return ChainProblem(
            firm_id, seq, record_id, "changed or inserted: it does not link to the record before"
        )
    at = record.get("at")
    if isinstance(at, datetime) and _millis(at) != record.get("at_ms"):
        return ChainProblem(firm_id, seq, record_id, "changed: its date no longer matches")
    if content_hash(record) != record.get("hash"):
        return ChainProblem(
            firm_id, seq, record_id, "changed: its content no longer matches its hash"
        )
    return None


def _millis(at: datetime) -> int:
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


async def verify_all(db: Db) -> list[tuple[str, int, ChainProblem | None]]:
    """`verify_firm` for every firm with a chain or records."""
    firms = sorted(
        {doc["_id"] async for doc in db.audit_chains.find({}, {"_id": 1})}
        | {doc["_id"] async for doc in db.firms.find({}, {"_id": 1})}
    )
    results = []
    for firm_id in firms:
        checked, problem = await verify_firm(db, firm_id)
        results.append((firm_id, checked, problem))
    return results


def canonical_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """Details as they survive a JSON round trip (what the hash and exports see)."""
    return json.loads(json.dumps(details or {}, sort_keys=True, default=str))
