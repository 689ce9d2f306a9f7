"""The inbox query: readable conversations in activity order (newest first, then by id).

The policy gives the readable set as a few branches (`policy.readable_branches`). Each branch is
queried on its own, sorted and limited, and the results are merged: the union's first N are
among each branch's first N, and once N are found, later branches only need what is at least as
recent as the N-th. A conversation matching two branches is kept once. After a cursor
(activity, id), each branch is asked for what is strictly older, plus the rare conversations
with the same activity time and a smaller id; both are plain range queries, where a single
`$or` would be evaluated document by document by the embedded server.

The order is the viewer's audience's activity (`policy.audience_of`): practitioners by
`last_activity_ms` (messages and notes), clients by `client_activity_ms` (messages only), so a
note never moves a conversation in a client's inbox nor changes its cursors.
"""

from __future__ import annotations

from pymongo import DESCENDING

from graphql_api.conversations.models import Audience, Conversation
from graphql_api.database import Db, Document
from graphql_api.directory.models import User
from graphql_api.policy import audience_of, readable_branches

ActivityKey = tuple[int, str]
"""(activity ms, id) of a conversation for the viewer's audience: the inbox is in descending
order of it."""

ACTIVITY_FIELDS = {Audience.STAFF: "last_activity_ms", Audience.CLIENT: "client_activity_ms"}


async def readable_in_activity_order(
    db: Db, viewer: User, narrowing: Document, after: ActivityKey | None, limit: int
) -> list[Conversation]:
    """Up to `limit` conversations the viewer may read, matching `narrowing` (type, company),
    that come after `after` in inbox order."""
    # Branches by company first: they are index ranges. "Is a participant" is an array
    # membership the embedded server checks row by row, so it runs last, bounded below by the
    # activity of the page's last conversation found so far.
    branches = sorted(readable_branches(viewer), key=lambda branch: "participant_ids" in branch)
    field = ACTIVITY_FIELDS[audience_of(viewer)]
    order = [(field, DESCENDING), ("_id", DESCENDING)]

    def key(doc: Document) -> ActivityKey:
        return int(doc[field]), doc["_id"]

    found: dict[str, Document] = {}
    for branch in branches:
        base = conjoin(branch, narrowing)
        if base is None:
            continue  # the narrowing excludes this branch altogether
        for query in _after(base, after, field):
            if len(found) >= limit:
                floor = sorted(key(doc) for doc in found.values())[-limit][0]
                query = conjoin(query, {field: {"$gte": floor}}) or query
            docs = await db.conversations.find(query).sort(order).limit(limit).to_list()
            found.update((doc["_id"], doc) for doc in docs)
    ordered = sorted(found.values(), key=key, reverse=True)
    return [Conversation.from_doc(doc) for doc in ordered[:limit]]


def _after(query: Document, after: ActivityKey | None, field: str) -> list[Document]:
    if after is None:
        return [query]
    at, last_id = after
    same_time = conjoin(query, {field: {"$eq": at}, "_id": {"$lt": last_id}})
    older = conjoin(query, {field: {"$lt": at}})
    return [q for q in (same_time, older) if q is not None]


def conjoin(a: Document, b: Document) -> Document | None:
    """Both filters as one flat document, or None when they cannot both hold. Flat because the
    embedded server evaluates a `$and` document by document in Python (docs/embedded.md);
    conditions on one field are merged operator by operator."""
    merged = dict(a)
    for field, condition in b.items():
        if field not in merged:
            merged[field] = condition
            continue
        mine = merged[field]
        if not (isinstance(mine, dict) and isinstance(condition, dict)):
            return {"$and": [a, b]}  # a plain value (array containment): keep it exact
        combined = dict(mine)
        for operator, value in condition.items():
            if operator not in combined:
                combined[operator] = value
            elif operator == "$eq":
                if combined[operator] != value:
                    return None
            elif operator == "$in":
                combined[operator] = [v for v in combined[operator] if v in value]
            else:
                return {"$and": [a, b]}
        merged[field] = combined
    return merged
