"""Read marks: per user and conversation, how far the user has read: the `seq` of the newest
message seen and the audiences' ordinals then (`staff_n`, `client_n`, see `models`).

A mark only moves forward. Sending moves the author's own mark to the message before the message
is stored, which is what lets `unreadCount` be computed from the marks alone
(`Conversations.unread_counts`): no session of the author ever sees its own message as unread.
The recovery of interrupted fan-outs moves it too, for messages stored before that rule.
"""

from __future__ import annotations

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from graphql_api.database import Db, only_duplicates

Mark = tuple[str, str, int, int, int]
"""(user id, conversation id, seq, staff_n, client_n)."""


def read_mark_id(user_id: str, conversation_id: str) -> str:
    return f"{user_id}:{conversation_id}"


async def move_read_marks(db: Db, marks: list[Mark]) -> None:
    """Move each mark forward to its numbers (never back: `$max`), in one command."""
    updates = [
        UpdateOne(
            # The user is the shard key: an upsert on a sharded cluster must name it.
            {"_id": read_mark_id(user_id, conversation_id), "user_id": {"$eq": user_id}},
            {
                "$max": {"seq": seq, "staff_n": staff_n, "client_n": client_n},
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
