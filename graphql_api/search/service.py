"""The search query (SPEC §16): the messages a viewer may read that contain every word of a
query, most relevant first, a page at a time.

One `$text` query on `messages` carries everything that decides a result, so that pages are
full and nothing leaks through counts: the words (`terms.SearchQuery`), the access rule
(`policy.searchable_messages_filter`: firm, read grants, the per-message rule), deletions
(`deleted_ms` absent) and the client's filters (company, type, author, dates, attachments), all
as one flat document (the embedded server evaluates a `$or` or `$and` beside `$text` in Python
over every document). Each result is checked again against its conversation as stored
(`policy.can_read_message`), which only ever drops something while a writer has not yet
rewritten stale read grants (`search.index`).

Order is the engine's relevance (`{"$meta": "textScore"}`: BM25 on the embedded server, MongoDB's
own score), ties by id. Neither engine can filter on the score, so a cursor holds the result's
rank, score and id: the next page is read from a little before that rank
(`CURSOR_SLACK`) and continues right after the result with that id, or, if it moved further or
left the results, after the first result that ranks below its (score, id). Pages are therefore
exact while nothing changes, and survive up to `CURSOR_SLACK` results appearing or leaving above
the cursor between two pages. At most `MAX_RESULTS` results are served (then a refined query):
an engine scores every match before sorting, so deep pages cost as much as the first.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from graphql_api import clock
from graphql_api.conversations.inbox_query import conjoin
from graphql_api.conversations.models import Conversation, ConversationType, Message
from graphql_api.database import Db, Document
from graphql_api.directory.models import User
from graphql_api.errors import BadUserInput
from graphql_api.ids import is_id, parse_id
from graphql_api.pagination import Page, decode_cursor, encode_cursor, page_size
from graphql_api.policy import can_read_message, searchable_messages_filter
from graphql_api.search.terms import SearchQuery, parse_query

log = logging.getLogger(__name__)

MAX_RESULTS = 1_000
CURSOR_SLACK = 20
CURSOR_KIND = "s"
SCORE = {"$meta": "textScore"}
# The ranking reads ids and scores only; the page's messages are read whole by id after it (the
# embedded server answers a projection holding `$meta` with the listed fields only).
RANKING: Document = {"_id": 1, "score": SCORE}


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """The client's narrowing of a search; every field optional."""

    company_id: str | None = None
    kind: ConversationType | None = None
    author_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    """Exclusive: messages sent before this moment."""
    has_attachments: bool | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result: the message, its conversation, the query's words and where it ranked."""

    message: Message
    conversation: Conversation
    words: tuple[str, ...]
    rank: int
    """1 for the most relevant result of the query."""
    score: float

    @property
    def cursor(self) -> str:
        return encode_cursor(CURSOR_KIND, f"{self.rank}|{self.score!r}|{self.message.id}")


@dataclass(frozen=True, slots=True)
class _Position:
    rank: int
    score: float
    message_id: str

    def precedes(self, score: float, message_id: str) -> bool:
        """Whether a result with `score` and `message_id` comes after this one in order."""
        return (-self.score, self.message_id) < (-score, message_id)


def parse_search_cursor(cursor: str, name: str) -> _Position:
    rank, _, rest = decode_cursor(cursor, CURSOR_KIND, name).partition("|")
    score, _, message_id = rest.partition("|")
    try:
        position = _Position(int(rank), float(score), message_id)
    except ValueError as exc:
        raise BadUserInput(f"{name} is not a valid cursor") from exc
    if not (
        0 < position.rank <= MAX_RESULTS and math.isfinite(position.score) and is_id(message_id)
    ):
        raise BadUserInput(f"{name} is not a valid cursor")
    return position


class Search:
    """Search over one database's messages."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def search(
        self,
        viewer: User,
        query: str,
        *,
        first: int | None = None,
        after: str | None = None,
        filters: SearchFilters = SearchFilters(),
    ) -> Page[SearchHit]:
        """A page of the messages `viewer` may read that contain every word of `query`."""
        parsed = parse_query(query)
        size = page_size(first, "first")
        position = parse_search_cursor(after, "after") if after is not None else None
        narrowing = _narrowing(filters)
        empty: Page[SearchHit] = Page(
            items=[], has_next_page=False, has_previous_page=after is not None
        )
        if not parsed.words or narrowing is None:
            return empty  # only stop words, or filters nothing can pass
        matching = _conjoin_all(
            {"$text": {"$search": parsed.text_search}},
            searchable_messages_filter(viewer),
            {"deleted_ms": {"$exists": False}},
            narrowing,
        )
        if matching is None:
            return empty
        ranked, skipped = await self._window(matching, position, size)
        start = _start_after(ranked, position)
        chosen = ranked[start : start + size]
        hits = await self._checked(viewer, parsed, chosen, skipped + start)
        return Page(
            items=hits,
            has_next_page=len(ranked) > start + size,
            has_previous_page=after is not None,
        )

    async def _window(
        self, matching: Document, position: _Position | None, size: int
    ) -> tuple[list[Document], int]:
        """Results in order from a little before the cursor's rank through the page and one
        more; and how many results come before the first of them."""
        skip = max(0, position.rank - CURSOR_SLACK) if position else 0
        limit = (position.rank - skip + CURSOR_SLACK if position else 0) + size + 1
        limit = min(limit, MAX_RESULTS - skip)
        if limit <= 0:
            return [], skip
        docs = (
            await self.db.messages.find(matching, RANKING)
            .sort([("score", SCORE), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list()
        )
        return docs, skip

    async def _checked(
        self, viewer: User, parsed: SearchQuery, ranked: list[Document], before: int
    ) -> list[SearchHit]:
        """The page's messages, read by id, each checked against its conversation as stored
        (and against deletion, should it have happened since the ranking)."""
        messages = await self._by_ids(self.db.messages, [doc["_id"] for doc in ranked])
        conversation_ids = {doc["conversation_id"] for doc in messages.values()}
        conversations = await self._by_ids(self.db.conversations, list(conversation_ids))
        hits = []
        for rank, doc in enumerate(ranked, before + 1):
            stored = messages.get(doc["_id"])
            if stored is None or stored.get("deleted_ms") is not None:
                continue
            message = Message.from_doc(stored)
            found = conversations.get(message.conversation_id)
            conversation = Conversation.from_doc(found) if found else None
            if conversation is None or not can_read_message(viewer, conversation, message):
                log.warning(
                    "search: message %s matched read grants its conversation no longer gives "
                    "(search.index.refresh_read_grants not called?)",
                    message.id,
                )
                continue
            hits.append(
                SearchHit(message, conversation, parsed.words, rank, float(doc.get("score", 0.0)))
            )
        return hits

    @staticmethod
    async def _by_ids(collection: AsyncCollection[Document], ids: list[str]) -> dict[str, Document]:
        if not ids:
            return {}
        return {doc["_id"]: doc async for doc in collection.find({"_id": {"$in": ids}})}


def _start_after(ranked: list[Document], position: _Position | None) -> int:
    """Where the page starts in `ranked`: after the cursor's result, else after where it would
    rank now."""
    if position is None:
        return 0
    for index, doc in enumerate(ranked):
        if doc["_id"] == position.message_id:
            return index + 1
    for index, doc in enumerate(ranked):
        if position.precedes(float(doc.get("score", 0.0)), doc["_id"]):
            return index
    return len(ranked)


def _narrowing(filters: SearchFilters) -> Document | None:
    """The client's filters as conditions on messages; None when no message can pass."""
    narrowing: Document = {}
    if filters.company_id is not None:
        narrowing["company_id"] = {"$eq": parse_id(filters.company_id, "company")}
    if filters.kind is not None:
        narrowing["conversation_type"] = {"$eq": filters.kind.value}
    if filters.author_id is not None:
        narrowing["author_id"] = {"$eq": parse_id(filters.author_id, "user")}
    sent: Document = {}
    if filters.since is not None:
        sent["$gte"] = clock.millis(_aware(filters.since))
    if filters.until is not None:
        sent["$lt"] = clock.millis(_aware(filters.until))
    if sent:
        if "$gte" in sent and "$lt" in sent and sent["$gte"] >= sent["$lt"]:
            return None
        narrowing["created_ms"] = sent
    if filters.has_attachments is not None:
        narrowing["attachment_count"] = {"$gt": 0} if filters.has_attachments else {"$eq": 0}
    return narrowing


def _aware(at: datetime) -> datetime:
    """A time without a zone is taken as UTC, as every stored time is."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _conjoin_all(*filters: Document) -> Document | None:
    merged: Document | None = {}
    for condition in filters:
        if merged is None:
            return None
        merged = conjoin(merged, condition)
    return merged
