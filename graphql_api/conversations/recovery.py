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
- A quiet conversation whose last message is not its newest stored one (the lost reply) gets that
  one back, with its time, which puts the conversation back in its place in the inbox.

`remove_interrupted_creations` removes the first message of a conversation whose creation died
before the conversation was written: nothing can reach it, and it must not be notified.
"""

from __future__ import annotations

from typing import Any

from graphql_api.attachments.store import AttachmentStore
from graphql_api.conversations.read_marks import read_mark_id
from graphql_api.database import Db, Document
from graphql_api.watermarks import advance_watermark, watermark

MAX_CONVERSATIONS_PER_RUN = 5000  # the rest waits for the next run
MAX_SEQS_PER_CONVERSATION = 1000  # numbers looked at per conversation and run
STEP = "conversations"

_FIELDS = {
    "message_count": 1,
    "reconciled_seq": 1,
    "skipped_seqs": 1,
    "last_message_id": 1,
    "last_activity_ms": 1,
    "firm_id": 1,  # the shard key, which every write to the conversation names
    "created_by": 1,
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
        await db.messages.find(taken_since_checked, {"_id": 1, "seq": 1, "created_ms": 1})
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
    moved = False
    if quiet and settled == count:  # before `reconciled_seq` moves: a crash here is retried
        moved = await _restore_last_message(db, conversation, stored)
    update: Document = {"$set": {"reconciled_seq": settled}}
    if missing:
        # Another process reconciling it at the same time may push them too: the list is read
        # as a set. ($addToSet would say so, but the embedded server ignores it on a missing
        # field: docs/embedded.md.)
        update["$push"] = {"skipped_seqs": {"$each": missing}}
    await db.conversations.update_one(_key_of(conversation), update)
    return bool(missing) or moved


async def _restore_last_message(db: Db, conversation: Document, stored: list[Document]) -> bool:
    """Name the newest stored message as the last one, if the conversation names another."""
    if stored and stored[-1]["seq"] == conversation["message_count"]:
        newest: Document | None = stored[-1]
    else:
        newest = await newest_message(db, conversation["_id"])
    if newest is None or newest["_id"] == conversation.get("last_message_id"):
        return False
    result = await db.conversations.update_one(
        # Unless a new reply has been named meanwhile.
        {**_key_of(conversation), "last_message_id": conversation.get("last_message_id")},
        {"$set": {"last_message_id": newest["_id"], "last_activity_ms": newest["created_ms"]}},
    )
    return result.modified_count == 1


async def newest_message(db: Db, conversation_id: str) -> Document | None:
    """The stored message with the highest number: `_id`, `seq`, `created_ms`."""
    found = (
        await db.messages.find(
            {"conversation_id": {"$eq": conversation_id}}, {"_id": 1, "seq": 1, "created_ms": 1}
        )
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


def _key_of(conversation: Document) -> Document:
    """The filter of a write to one stored conversation: its id and its shard key
    (`graphql_api/sharding.py`), so that a sharded cluster routes it to one shard."""
    return {
        "_id": conversation["_id"],
        "firm_id": {"$eq": conversation["firm_id"]},
        "created_by": {"$eq": conversation["created_by"]},
    }
