"""Read marks: per user and conversation, the `seq` of the newest message the user has seen.

A mark only moves forward. Sending moves the author's own mark to the message before the message
is stored, which is what lets `unreadCount` be computed from the marks alone
(`Conversations.unread_counts`): no session of the author ever sees its own message as unread.
The recovery of interrupted fan-outs moves it too, for messages stored before that rule.
"""

from __future__ import annotations

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from graphql_api.database import Db, only_duplicates

Mark = tuple[str, str, int]
"""(user id, conversation id, seq)."""


def read_mark_id(user_id: str, conversation_id: str) -> str:
    return f"{user_id}:{conversation_id}"


async def move_read_marks(db: Db, marks: list[Mark]) -> None:
    """Move each mark forward to its seq (never back), in one command."""
    updates = [
        UpdateOne(
            # The user is the shard key: an upsert on a sharded cluster must name it.
            {
                "_id": read_mark_id(user_id, conversation_id),
                "user_id": {"$eq": user_id},
                "seq": {"$lt": seq},
            },
            {"$set": {"seq": seq, "user_id": user_id, "conversation_id": conversation_id}},
            upsert=True,
        )
        for user_id, conversation_id, seq in marks
    ]
    try:
        await db.read_marks.bulk_write(updates, ordered=False)
    except BulkWriteError as exc:
        # A duplicate key is a mark already at or past its seq (the filter did not match, so
        # the upsert tried to insert it again).
        if not only_duplicates(exc):
            raise
