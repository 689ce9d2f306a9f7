"""Read marks: per user and conversation, how far the user has read: the `seq` of the newest
message seen and the audiences' ordinals then (`staff_n`, `client_n`, see `models`).

A mark only moves forward. Sending moves the author's own mark to the message before the message
is stored, which is what lets `unreadCount` be computed from the marks alone
(`Conversations.unread_counts`): no session of the author ever sees its own message as unread.
The recovery of interrupted fan-outs moves it too, for messages stored before that rule.

`read_marks {_id: "<user>:<conversation>", user_id, conversation_id, seq, read_ms}`: `read_ms` is
when the mark last moved, the `lastReadAt` of read receipts (SPEC §14, `ReadMark`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from graphql_api import clock
from graphql_api.database import Db, Document, only_duplicates

Mark = tuple[str, str, int, int, int]
"""(user id, conversation id, seq, staff_n, client_n)."""


@dataclass(frozen=True, slots=True)
class ReadMark:
    """How far a user has read a conversation, and when the mark last moved."""

    user_id: str
    conversation_id: str
    seq: int
    read_ms: int | None

    @property
    def read_at(self) -> datetime | None:
        return None if self.read_ms is None else datetime.fromtimestamp(self.read_ms / 1000, UTC)


async def marks_of_participants(
    db: Db, participants: Iterable[tuple[str, Iterable[str]]]
) -> dict[str, dict[str, ReadMark]]:
    """The marks of the given (conversation id, participant ids), per conversation and user, in
    one query (`marks_by_pair`)."""
    docs = await marks_by_pair(db, ((u, c) for c, users in participants for u in users))
    found: dict[str, dict[str, ReadMark]] = {}
    for (user_id, conversation_id), doc in docs.items():
        mark = ReadMark(user_id, conversation_id, int(doc["seq"]), _int(doc.get("read_ms")))
        found.setdefault(conversation_id, {})[user_id] = mark
    return found


async def marks_by_pair(
    db: Db, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Document]:
    """The marks of the given (user id, conversation id) pairs, in one query (by `_id`, with the
    users for the shard key); pairs without a mark are left out."""
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    query = {
        "_id": {"$in": [read_mark_id(u, c) for u, c in wanted]},
        "user_id": {"$in": sorted({u for u, _ in wanted})},
    }
    return {
        (doc["user_id"], doc["conversation_id"]): doc
        async for doc in db.read_marks.find(query, _MARK_FIELDS)
    }


_MARK_FIELDS = {
    "user_id": 1,
    "conversation_id": 1,
    "seq": 1,
    "staff_n": 1,
    "client_n": 1,
    "read_ms": 1,
}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def read_mark_id(user_id: str, conversation_id: str) -> str:
    return f"{user_id}:{conversation_id}"


async def move_read_marks(db: Db, marks: list[Mark]) -> None:
    """Move each mark forward to its numbers (never back: `$max`), in one command; `read_ms`
    is when it was last written (a read that moves nothing still says when it happened)."""
    now_ms = clock.now_ms()
    updates = [
        UpdateOne(
            # The user is the shard key: an upsert on a sharded cluster must name it.
            {"_id": read_mark_id(user_id, conversation_id), "user_id": {"$eq": user_id}},
            {
                "$max": {
                    "seq": seq,
                    "staff_n": staff_n,
                    "client_n": client_n,
                    "read_ms": now_ms,
                },
                "$set": {"user_id": user_id, "conversation_id": conversation_id},
            },
            upsert=True,
        )
        for user_id, conversation_id, seq, staff_n, client_n in marks
    ]
    try:
        await db.read_marks.bulk_write(updates, ordered=False)
    except BulkWriteError as exc:
        # Two upserts of a new mark at once: the loser's insert hits the winner's document
        # (MongoDB retries such upserts itself; a duplicate left over is already written).
        if not only_duplicates(exc):
            raise
