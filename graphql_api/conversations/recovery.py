"""Reconciling the conversation bookkeeping that a crash interrupted (issue 18).

A reply takes its `seq` with one update of the conversation, which also names the reply as the
conversation's last message and moves its last activity, and then stores the message. A process
that dies in between leaves a number that no message has and that `skipped_seqs` does not list:
every reader's unread count stays one too high, and the conversation names a message that does
not exist and sorts by the time of a message that never was. `reconcile_conversations` repairs
both, without adding anything to the send path:

- It looks at the conversations active since its last run (`graphql_api/watermarks.py`: a
  restart after a long stop misses nothing), and in each at the numbers taken since it last looked
  (`reconciled_seq`: every number up to it is a stored message or listed in `skipped_seqs`), with
  one indexed range query per conversation.
- A number is settled once no send can still store it: sends in progress on other live processes
  must not lose their number. Every number of a conversation quiet for the grace period is
  settled, and so is every number below a stored message written before the grace period (its
  number was taken after theirs). Settled numbers without a message join `skipped_seqs`.
- A lost number also took the audiences' ordinals its kind counts for (`staff_n`, `client_n`,
  see `models`). Each stored message keeps the counters as its write left them, so the
  ordinals lost between two stored messages are exactly those between theirs (and after the last
  one, up to the conversation's counters); they join `skipped_staff` / `skipped_client`, and
  `reconciled_staff` / `reconciled_client` keep the counters as of `reconciled_seq`.
- A quiet conversation whose last message (per audience) is not its newest stored one (the lost
  reply) gets that one back, with its time, which puts the conversation back in its place in
  the inbox.

`remove_interrupted_creations` removes the first message of a conversation whose creation died
before the conversation was written: nothing can reach it, and it must not be notified.
"""

from __future__ import annotations

from typing import Any

from graphql_api.attachments.store import AttachmentStore
from graphql_api.conversations.models import Audience, MessageKind, counts_for
from graphql_api.conversations.read_marks import read_mark_id
from graphql_api.database import Db, Document
from graphql_api.watermarks import advance_watermark, watermark

MAX_CONVERSATIONS_PER_RUN = 5000  # the rest waits for the next run
MAX_SEQS_PER_CONVERSATION = 1000  # numbers looked at per conversation and run
STEP = "conversations"

_FIELDS = {
    "firm_id": 1,
    "created_by": 1,
    "message_count": 1,
    "staff_count": 1,
    "client_count": 1,
    "reconciled_seq": 1,
    "reconciled_staff": 1,
    "reconciled_client": 1,
    "skipped_seqs": 1,
    "last_message_id": 1,
    "last_activity_ms": 1,
    "client_last_message_id": 1,
    "client_activity_ms": 1,
}
_LAST = {
    Audience.STAFF: ("last_message_id", "last_activity_ms"),
    Audience.CLIENT: ("client_last_message_id", "client_activity_ms"),
}


async def reconcile_conversations(db: Db, now_ms: int, grace_ms: int) -> int:
    """Settle the numbers of the conversations active since the last run; answer how many
    conversations had something to repair."""
    cutoff = now_ms - grace_ms
    since = await watermark(db, STEP, cutoff)
    candidates = (
        await db.conversations.find({"last_activity_ms": {"$gt": since}}, _FIELDS)
        .sort("last_activity_ms", 1)
        .limit(MAX_CONVERSATIONS_PER_RUN)
        .to_list()
    )
    repaired = 0
    for conversation in candidates:
        repaired += await _reconcile(db, conversation, cutoff)
    reached = cutoff
    if len(candidates) == MAX_CONVERSATIONS_PER_RUN:
        # The same activity time may continue past this run's last one: look at it again.
        reached = min(cutoff, int(candidates[-1]["last_activity_ms"]) - 1)
    await advance_watermark(db, STEP, reached)
    return repaired


async def _reconcile(db: Db, conversation: Document, cutoff: int) -> bool:
    count = int(conversation.get("message_count", 0))
    checked = int(conversation.get("reconciled_seq", 0))
    if count <= checked:
        return False
    taken_since_checked = {
        "conversation_id": {"$eq": conversation["_id"]},
        "seq": {"$gt": checked, "$lte": count},
    }
    stored = (
        await db.messages.find(
            taken_since_checked,
            {"_id": 1, "seq": 1, "created_ms": 1, "kind": 1, "staff_n": 1, "client_n": 1},
        )
        .sort("seq", 1)
        .limit(MAX_SEQS_PER_CONVERSATION)
        .to_list()
    )
    seen_up_to = stored[-1]["seq"] if len(stored) == MAX_SEQS_PER_CONVERSATION else count
    quiet = int(conversation["last_activity_ms"]) <= cutoff
    if quiet:
        settled = seen_up_to
    else:
        settled = max((m["seq"] for m in stored if m["created_ms"] <= cutoff), default=checked)
    if settled <= checked:
        return False
    accounted = {m["seq"] for m in stored} | set(conversation.get("skipped_seqs", ()))
    missing = [seq for seq in range(checked + 1, settled + 1) if seq not in accounted]
    ordinals = _lost_ordinals(conversation, [m for m in stored if m["seq"] <= settled], settled)
    reached_staff, reached_client, lost_staff, lost_client = ordinals
    update: Document = {
        "$set": {
            "reconciled_seq": settled,
            "reconciled_staff": reached_staff,
            "reconciled_client": reached_client,
        }
    }
    pushed: Document = {}
    moved = False
    if quiet and settled == count:  # before `reconciled_seq` moves: a crash here is retried
        moved = await _restore_last_message(db, conversation, stored)
    if missing:
        # Another process reconciling it at the same time may push them too: the list is read
        # as a set. ($addToSet would say so, but the embedded server ignores it on a missing
        # field: docs/embedded.md.)
        pushed["skipped_seqs"] = {"$each": missing}
    if lost_staff:
        pushed["skipped_staff"] = {"$each": lost_staff}
    if lost_client:
        pushed["skipped_client"] = {"$each": lost_client}
    if pushed:
        update["$push"] = pushed
    await db.conversations.update_one(_key(conversation), update)
    return bool(missing) or moved


def _lost_ordinals(
    conversation: Document, stored: list[Document], settled: int
) -> tuple[int, int, list[int], list[int]]:
    """The audiences' counters as of `settled`, and the ordinals that numbers lost since
    `reconciled_seq` took: those between the counters of consecutive stored messages (a
    stored message's own ordinal excluded), and after the last one up to the conversation's
    counters when every number is settled. (Documents written before notes: ordinal = seq.)"""
    checked = int(conversation.get("reconciled_seq", 0))
    staff = int(conversation.get("reconciled_staff", checked))
    client = int(conversation.get("reconciled_client", checked))
    lost_staff: list[int] = []
    lost_client: list[int] = []
    for message in stored:
        seq = int(message["seq"])
        kind = MessageKind(message.get("kind") or MessageKind.MESSAGE.value)
        staff_n = int(message.get("staff_n", seq))
        client_n = int(message.get("client_n", seq))
        own_staff = 1 if counts_for(kind, Audience.STAFF) else 0
        own_client = 1 if counts_for(kind, Audience.CLIENT) else 0
        lost_staff += range(staff + 1, staff_n - own_staff + 1)
        lost_client += range(client + 1, client_n - own_client + 1)
        staff, client = max(staff, staff_n), max(client, client_n)
    if settled == int(conversation.get("message_count", 0)):
        count = int(conversation.get("message_count", 0))
        staff_count = int(conversation.get("staff_count", count))
        client_count = int(conversation.get("client_count", count))
        lost_staff += range(staff + 1, staff_count + 1)
        lost_client += range(client + 1, client_count + 1)
        staff, client = max(staff, staff_count), max(client, client_count)
    return staff, client, lost_staff, lost_client


async def _restore_last_message(db: Db, conversation: Document, stored: list[Document]) -> bool:
    """Name each audience's newest stored message as its last one, if the conversation names
    another."""
    moved = False
    for audience, (last_id, activity) in _LAST.items():
        named = conversation.get(last_id, conversation.get("last_message_id"))
        newest = await newest_message(db, conversation["_id"], audience)
        if newest is None or newest["_id"] == named:
            continue
        result = await db.conversations.update_one(
            # Unless a new reply has been named meanwhile.
            {**_key(conversation), last_id: {"$eq": named}},
            {"$set": {last_id: newest["_id"], activity: newest["created_ms"]}},
        )
        moved = moved or result.modified_count == 1
    return moved


def _key(conversation: Document) -> Document:
    """A write's filter with the shard key (`firm_id`, `created_by`: graphql_api/sharding.py)."""
    return {
        "_id": conversation["_id"],
        "firm_id": {"$eq": conversation["firm_id"]},
        "created_by": {"$eq": conversation["created_by"]},
    }


async def newest_message(
    db: Db, conversation_id: str, audience: Audience, before: int | None = None
) -> Document | None:
    """The stored message with the highest number that is activity for `audience` (below
    `before` when given): `_id`, `seq`, `created_ms`."""
    query: Document = {
        "conversation_id": {"$eq": conversation_id},
        "kind": {"$nin": [k.value for k in MessageKind if not counts_for(k, audience)]},
    }
    if before is not None:
        query["seq"] = {"$lt": before}
    found = (
        await db.messages.find(query, {"_id": 1, "seq": 1, "created_ms": 1})
        .sort("seq", -1)
        .limit(1)
        .to_list()
    )
    return found[0] if found else None


async def remove_interrupted_creations(db: Db, attachments: AttachmentStore, cutoff: int) -> int:
    """Remove first messages stored before `cutoff` whose conversation was never written (the
    creation died in between), with their author's read mark, releasing their attachments."""
    firsts = await db.messages.find(
        {"fanout": {"$eq": "pending"}, "created_ms": {"$lt": cutoff}, "seq": {"$eq": 1}},
        {"_id": 1, "conversation_id": 1, "author_id": 1},
    ).to_list()
    if not firsts:
        return 0
    existing = await existing_conversations(db, [m["conversation_id"] for m in firsts])
    orphans = [m for m in firsts if m["conversation_id"] not in existing]
    for message in orphans:
        await attachments.release(message["_id"])
        await db.read_marks.delete_one(
            {
                "_id": read_mark_id(message["author_id"], message["conversation_id"]),
                "user_id": {"$eq": message["author_id"]},  # the shard key
            }
        )
        await db.messages.delete_one(
            {
                "_id": message["_id"],
                "conversation_id": {"$eq": message["conversation_id"]},  # the shard key
                "fanout": "pending",
            }
        )
    return len(orphans)


async def existing_conversations(db: Db, ids: list[Any]) -> set[str]:
    docs = await db.conversations.find({"_id": {"$in": list(set(ids))}}, {"_id": 1}).to_list()
    return {doc["_id"] for doc in docs}
