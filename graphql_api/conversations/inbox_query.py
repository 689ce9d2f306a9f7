"""The inbox query: readable conversations in activity order (newest first, then by id).

The policy gives the readable set as a few branches (`policy.readable_branches`). Each branch is
queried on its own, sorted and limited, and the results are merged: the union's first N are
among each branch's first N, and once N are found, later branches only need what is at least as
recent as the N-th. A conversation matching two branches is kept once. After a cursor
(activity, id), each branch is asked for what is strictly older, plus the rare conversations
with the same activity time and a smaller id; both are plain range queries, where a single
`$or` would be evaluated document by document by the embedded server.
"""

from __future__ import annotations

from pymongo import DESCENDING

from graphql_api.conversations.models import Conversation
from graphql_api.database import Db, Document
from graphql_api.directory.models import User
from graphql_api.policy import readable_branches

ActivityKey = tuple[int, str]
"""(last_activity_ms, id) of a conversation: the inbox is in descending order of it."""

ORDER = [("last_activity_ms", DESCENDING), ("_id", DESCENDING)]


async def readable_in_activity_order(
    db: Db, viewer: User, narrowing: Document, after: ActivityKey | None, limit: int
) -> list[Conversation]:
    """Up to `limit` conversations the viewer may read, matching `narrowing` (type, company),
    that come after `after` in inbox order."""
    # Branches by company first: they are index ranges. "Is a participant" is an array
    # membership the embedded server checks row by row, so it runs last, bounded below by the
    # activity of the page's last conversation found so far.
    branches = sorted(readable_branches(viewer), key=lambda branch: "participant_ids" in branch)
    found: dict[str, Document] = {}
    for branch in branches:
        base = {"$and": [branch, narrowing]} if narrowing else branch
        for query in _after(base, after):
            if len(found) >= limit:
                floor = sorted(_key(doc) for doc in found.values())[-limit][0]
                query = {"$and": [query, {"last_activity_ms": {"$gte": floor}}]}
            docs = await db.conversations.find(query).sort(ORDER).limit(limit).to_list()
            found.update((doc["_id"], doc) for doc in docs)
    ordered = sorted(found.values(), key=_key, reverse=True)
    return [Conversation.from_doc(doc) for doc in ordered[:limit]]


def _after(query: Document, after: ActivityKey | None) -> list[Document]:
    if after is None:
        return [query]
    at, last_id = after
    return [
        {"$and": [query, {"last_activity_ms": {"$eq": at}, "_id": {"$lt": last_id}}]},
        {"$and": [query, {"last_activity_ms": {"$lt": at}}]},
    ]


def _key(doc: Document) -> ActivityKey:
    return int(doc["last_activity_ms"]), doc["_id"]
