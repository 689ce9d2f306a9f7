"""The inbox query: readable conversations in activity order (newest first, then by id).

The policy gives the readable set as a few branches (`policy.readable_branches`). Each branch is
queried on its own, sorted and limited, and the results are merged: the union's first N are
among each branch's first N. A conversation matching two branches is kept once. After a cursor
(activity, id), each branch is asked for what is strictly older, plus the rare conversations
with the same activity time and a smaller id; both are plain range queries, where a single
`$or` would be evaluated document by document by the embedded server.
"""

from __future__ import annotations

import asyncio

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
    queries: list[Document] = []
    for branch in readable_branches(viewer):
        base = {"$and": [branch, narrowing]} if narrowing else branch
        if after is None:
            queries.append(base)
            continue
        at, last_id = after
        queries.append({"$and": [base, {"last_activity_ms": {"$lt": at}}]})
        queries.append({"$and": [base, {"last_activity_ms": {"$eq": at}, "_id": {"$lt": last_id}}]})
    found = await asyncio.gather(
        *(db.conversations.find(query).sort(ORDER).limit(limit).to_list() for query in queries)
    )
    unique = {doc["_id"]: doc for docs in found for doc in docs}
    ordered = sorted(
        unique.values(), key=lambda doc: (int(doc["last_activity_ms"]), doc["_id"]), reverse=True
    )
    return [Conversation.from_doc(doc) for doc in ordered[:limit]]
