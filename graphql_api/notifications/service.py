"""Writing, listing and marking notifications, and completing fan-outs a crash interrupted.

Fan-out is an outbox on the message itself: a message is stored with `fanout: "pending"` and its
recipients, then its notifications are written (idempotently, by deterministic id) and the flag is
cleared. If the process dies in between, `complete_pending_fanouts` (run at start-up and then
periodically, see `graphql_api/recovery.py`) writes the missing notifications, and so does a
retry of the send with the same `clientMessageId`. No multi-document transaction is needed, so this
works the same on a standalone MongoDB.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo import DESCENDING
from pymongo.errors import BulkWriteError, PyMongoError

from graphql_api import clock
from graphql_api.conversations.models import Message, MessageKind, MessageRef
from graphql_api.conversations.read_marks import move_read_marks
from graphql_api.database import Db, Document, is_transient, only_duplicates, retrying_once
from graphql_api.directory.models import User
from graphql_api.errors import BadUserInput
from graphql_api.group_commit import GroupCommit
from graphql_api.ids import is_id
from graphql_api.notifications.models import Notification, notification_id
from graphql_api.pagination import page_size, parse_notification_cursor
from graphql_api.policy import readable_notifications_filter

FANOUT_GRACE_MS = 30_000  # default: a fan-out still pending after this was interrupted (the
# recovery task passes `recovery_grace_seconds`)
MAX_MARK_IDS = 500
MIGRATION_BATCH = 500
COMPANY_MIGRATION = "notification_companies"  # its marker in `recovery_state`


def notification_docs(
    message: Message, recipients: Iterable[str], company_id: str | None
) -> list[Document]:
    """The notifications of `message` to `recipients`, in a conversation of `company_id`."""
    created_ms = clock.millis(message.created_at)
    return [
        {
            "_id": notification_id(message.id, user_id),
            "firm_id": message.firm_id,
            "user_id": user_id,
            "conversation_id": message.conversation_id,
            "company_id": company_id,
            "message_id": message.id,
            "seq": message.seq,
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
        self._clears: GroupCommit[MessageRef] = GroupCommit(self._clear_outboxes)

    async def fan_out(
        self, message: Message, recipients: list[str], company_id: str | None
    ) -> list[Notification]:
        """Write one notification per recipient, then clear the message's outbox flag."""
        docs = notification_docs(message, recipients, company_id)
        if docs:
            await self._inserts.submit(docs)
        await self._clears.submit((message.conversation_id, message.id))
        return [Notification.from_doc(doc) for doc in docs]

    async def _insert(self, batches: list[list[Document]]) -> None:
        docs = [doc for batch in batches for doc in batch]
        try:
            await self.db.notifications.insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # already written by an earlier attempt
            if not only_duplicates(exc):
                raise

    async def _clear_outboxes(self, messages: list[MessageRef]) -> None:
        # By conversation too (the shard key): the shards that hold them, not all of them.
        query = {
            "conversation_id": {"$in": sorted({c for c, _ in messages})},
            "_id": {"$in": [m for _, m in messages]},
        }
        await retrying_once(
            lambda: self.db.messages.update_many(query, {"$set": {"fanout": "done"}})
        )

    async def complete_pending_fanouts(
        self, now_ms: int | None = None, grace_ms: int = FANOUT_GRACE_MS
    ) -> int:
        """Finish the fan-outs of messages stored by a process that died before finishing.

        A first message whose conversation was never written (its creation died in between)
        is left out: nothing can reach it (`remove_interrupted_creations` removes it)."""
        cutoff = (now_ms if now_ms is not None else clock.now_ms()) - grace_ms
        docs = await self.db.messages.find(
            {"fanout": {"$eq": "pending"}, "created_ms": {"$lt": cutoff}}
        ).to_list()
        if not docs:
            return 0
        companies = await self._companies_of({doc["conversation_id"] for doc in docs})
        docs = [doc for doc in docs if doc["conversation_id"] in companies]  # reachable ones
        for doc in docs:
            message = Message.from_doc(doc)
            # The author's mark moves before a message is stored; messages written before that
            # rule (or by hand) get it here too.
            if message.kind is not MessageKind.EVENT:  # an event's actor has read nothing
                await move_read_marks(
                    self.db,
                    [
                        (
                            message.author_id,
                            message.conversation_id,
                            message.seq,
                            message.staff_n,
                            message.client_n,
                        )
                    ],
                )
            company_id = companies.get(message.conversation_id)
            await self.fan_out(message, list(doc.get("recipients", [])), company_id)
        return len(docs)

    async def _companies_of(self, conversation_ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(conversation_ids)
        if not ids:
            return {}
        docs = await self.db.conversations.find({"_id": {"$in": ids}}, {"company_id": 1}).to_list()
        return {doc["_id"]: doc.get("company_id") for doc in docs}

    async def complete_missing_companies(self) -> int:
        """Give notifications written before they kept their conversation's company (which the
        access policy filters on) that company; answers how many changed.

        One walk of the collection in `_id` order, the first time a process of this version
        starts on a database; a marker in `recovery_state` then says it is done (an unindexed
        "field missing" query would scan the collection at every start)."""
        if await self.db.recovery_state.find_one({"_id": {"$eq": COMPANY_MIGRATION}}):
            return 0
        changed, after = 0, ""
        while (
            batch := await self.db.notifications.find(
                {"_id": {"$gt": after}}, {"conversation_id": 1, "company_id": 1}
            )
            .sort("_id", 1)
            .limit(MIGRATION_BATCH)
            .to_list()
        ):
            after = batch[-1]["_id"]
            missing = [doc for doc in batch if "company_id" not in doc]
            companies = await self._companies_of({doc["conversation_id"] for doc in missing})
            by_company: dict[str | None, list[str]] = {}
            for doc in missing:
                by_company.setdefault(companies.get(doc["conversation_id"]), []).append(doc["_id"])
            for company_id, ids in by_company.items():
                result = await self.db.notifications.update_many(
                    {"_id": {"$in": ids}}, {"$set": {"company_id": company_id}}
                )
                changed += result.modified_count
        await self.db.recovery_state.update_one(
            {"_id": COMPANY_MIGRATION}, {"$set": {"done": True}}, upsert=True
        )
        return changed

    async def page(
        self, viewer: User, first: int | None, after: str | None, unread_only: bool
    ) -> tuple[list[Notification], bool]:
        """The viewer's notifications, unread first, then newest first."""
        size = page_size(first, "first")
        mine = readable_notifications_filter(viewer)
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
        changed. Ids that are not the viewer's, or of conversations it can no longer read, are
        ignored, like already-read ones."""
        query: Document = {**readable_notifications_filter(viewer), "unread": {"$eq": 1}}
        if ids is not None:
            if len(ids) > MAX_MARK_IDS:
                raise BadUserInput(f"mark at most {MAX_MARK_IDS} notifications at once")
            query["_id"] = {"$in": [i for i in ids if _is_notification_id(i)]}
        read_ms = clock.now_ms()
        update = {"$set": {"unread": 0, "read_ms": read_ms}}
        try:
            result = await self.db.notifications.update_many(query, update)
            return result.modified_count
        except PyMongoError as exc:
            if not is_transient(exc):
                raise
        # PyMongo never retries a multi-document update: the first attempt may or may not have
        # been applied. Applying it again is harmless; what this call marked is counted by the
        # time it stamped.
        await self.db.notifications.update_many(query, update)
        marked = {**query, "unread": 0, "read_ms": read_ms}
        return await self.db.notifications.count_documents(marked)

    async def mark_message_read(self, message: Message, user_ids: Iterable[str]) -> None:
        """Mark the notifications of a deleted message read: nothing is left to read, and the
        badges must agree with `unreadCount`, from which it no longer counts."""
        users = sorted(set(user_ids))
        if not users:
            return
        await self.db.notifications.update_many(
            {
                "_id": {"$in": [notification_id(message.id, u) for u in users]},
                "user_id": {"$in": users},
                "unread": {"$eq": 1},
            },
            {"$set": {"unread": 0, "read_ms": clock.now_ms()}},
        )

    async def mark_conversation_read(self, viewer: User, conversation_id: str, seq: int) -> int:
        """Mark the viewer's notifications of a conversation's messages up to `seq` read, when
        its read mark moves there: badges and lists then agree with `unreadCount`. A message
        stored meanwhile (after `seq`) keeps its notification unread, as it stays unread."""
        result = await self.db.notifications.update_many(
            {
                "user_id": viewer.id,
                "firm_id": viewer.firm_id,
                "conversation_id": conversation_id,
                "unread": 1,
                "seq": {"$lte": seq},
            },
            {"$set": {"unread": 0, "read_ms": clock.now_ms()}},
        )
        return result.modified_count


def _is_notification_id(value: str) -> bool:
    message_id, _, user_id = value.partition(":")
    return is_id(message_id) and is_id(user_id)
