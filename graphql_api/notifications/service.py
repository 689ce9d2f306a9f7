"""Writing, listing and marking notifications, and completing fan-outs a crash interrupted.

Fan-out is an outbox on the message itself: a message is stored with `fanout: "pending"` and its
recipients, then its notifications are written (idempotently, by deterministic id) and the flag is
cleared. If the process dies in between, `complete_pending_fanouts` (run at start-up and then
periodically) writes the missing notifications. No multi-document transaction is needed, so this
works the same on a standalone MongoDB.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo import DESCENDING
from pymongo.errors import BulkWriteError

from graphql_api import clock
from graphql_api.conversations.models import Message
from graphql_api.conversations.read_marks import move_read_marks
from graphql_api.database import Db, Document, only_duplicates
from graphql_api.directory.models import User
from graphql_api.errors import BadUserInput
from graphql_api.group_commit import GroupCommit
from graphql_api.ids import is_id
from graphql_api.notifications.models import Notification, notification_id
from graphql_api.pagination import page_size, parse_notification_cursor

FANOUT_GRACE_MS = 30_000  # a fan-out still pending after this was interrupted
MAX_MARK_IDS = 500


def notification_docs(message: Message, recipients: Iterable[str]) -> list[Document]:
    created_ms = clock.millis(message.created_at)
    return [
        {
            "_id": notification_id(message.id, user_id),
            "firm_id": message.firm_id,
            "user_id": user_id,
            "conversation_id": message.conversation_id,
            "message_id": message.id,
            "created_at": message.created_at,
            "created_ms": created_ms,
            "unread": 1,
            "read_ms": None,
        }
        for user_id in recipients
    ]


class Notifications:
    def __init__(self, db: Db) -> None:
        self.db = db
        # Concurrent messages' notifications, and their outbox flags, are written together.
        self._inserts: GroupCommit[list[Document]] = GroupCommit(self._insert)
        self._clears: GroupCommit[str] = GroupCommit(self._clear_outboxes)

    async def fan_out(self, message: Message, recipients: list[str]) -> list[Notification]:
        """Write one notification per recipient, then clear the message's outbox flag."""
        docs = notification_docs(message, recipients)
        if docs:
            await self._inserts.submit(docs)
        await self._clears.submit(message.id)
        return [Notification.from_doc(doc) for doc in docs]

    async def _insert(self, batches: list[list[Document]]) -> None:
        docs = [doc for batch in batches for doc in batch]
        try:
            await self.db.notifications.insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # already written by an earlier attempt
            if not only_duplicates(exc):
                raise

    async def _clear_outboxes(self, message_ids: list[str]) -> None:
        await self.db.messages.update_many(
            {"_id": {"$in": message_ids}}, {"$set": {"fanout": "done"}}
        )

    async def complete_pending_fanouts(self, now_ms: int | None = None) -> int:
        """Finish the fan-outs of messages stored by a process that died before finishing."""
        cutoff = (now_ms if now_ms is not None else clock.now_ms()) - FANOUT_GRACE_MS
        docs = await self.db.messages.find(
            {"fanout": {"$eq": "pending"}, "created_ms": {"$lt": cutoff}}
        ).to_list()
        for doc in docs:
            message = Message.from_doc(doc)
            # The author's mark moves before a message is stored; messages written before that
            # rule (or by hand) get it here too.
            await move_read_marks(
                self.db, [(message.author_id, message.conversation_id, message.seq)]
            )
            await self.fan_out(message, list(doc.get("recipients", [])))
        return len(docs)

    async def page(
        self, viewer: User, first: int | None, after: str | None, unread_only: bool
    ) -> tuple[list[Notification], bool]:
        """The viewer's notifications, unread first, then newest first."""
        size = page_size(first, "first")
        mine: Document = {"user_id": {"$eq": viewer.id}, "firm_id": {"$eq": viewer.firm_id}}
        wanted_unread: Document = {"$eq": 1} if unread_only else {}
        if after is None:
            queries = [{**mine, "unread": wanted_unread} if unread_only else mine]
        else:
            # Two plain range queries rather than one `$or`, which the embedded server would
            # evaluate over every notification: the rest of the cursor's group, then the next.
            unread, last_id = parse_notification_cursor(after, "after")
            queries = []
            if not unread_only or unread == 1:
                queries.append({**mine, "unread": {"$eq": unread}, "_id": {"$lt": last_id}})
            queries.append({**mine, "unread": {**wanted_unread, "$lt": unread}})
        docs: list[Document] = []
        for query in queries:
            if len(docs) > size:
                break
            docs += (
                await self.db.notifications.find(query)
                .sort([("unread", DESCENDING), ("_id", DESCENDING)])
                .limit(size + 1 - len(docs))
                .to_list()
            )
        return [Notification.from_doc(d) for d in docs[:size]], len(docs) > size

    async def mark_read(self, viewer: User, ids: list[str] | None) -> int:
        """Mark the viewer's notifications read (all of them without ids); answer how many
        changed. Ids that are not the viewer's are ignored, like already-read ones."""
        query: Document = {"user_id": viewer.id, "firm_id": viewer.firm_id, "unread": 1}
        if ids is not None:
            if len(ids) > MAX_MARK_IDS:
                raise BadUserInput(f"mark at most {MAX_MARK_IDS} notifications at once")
            query["_id"] = {"$in": [i for i in ids if _is_notification_id(i)]}
        result = await self.db.notifications.update_many(
            query, {"$set": {"unread": 0, "read_ms": clock.now_ms()}}
        )
        return result.modified_count


def _is_notification_id(value: str) -> bool:
    message_id, _, user_id = value.partition(":")
    return is_id(message_id) and is_id(user_id)
