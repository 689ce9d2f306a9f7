"""Pages of conversations' histories, for `Conversation.messages`.

A history page is a range of `seq` numbers: forward (`first`, after a cursor) or backward
(`last`, before a cursor; the newest page by default), read with one query that the index
(conversation, seq) sorts and limits. The query carries the policy's per-message rule
(`readable_messages_filter`): a client's page is filled with what it may read, never with notes
filtered out afterwards, so its pages, cursors and `hasNextPage` are those of a conversation
without notes.

Many pages at once (`messages` inside an inbox page, or nested deeper) come through one loader
dispatch per level (`Loaders.history_pages`): a page asked for again in the same dispatch
(every message's `conversation { messages }` of one conversation) is read once, and the
distinct pages are read with at most a few queries in flight per operation, so that one
request never takes more than that share of the connection pool. They are not merged into one
query: the embedded server answers an `$or` of 40 per-conversation ranges in 2,015 ms where the
40 queries take 76 ms in all, and `$in` cannot limit each conversation to its page. The query
cost limit (`schema/query_cost.py`) bounds how many pages one operation may ask for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from graphql_api.conversations.models import Conversation, Message
from graphql_api.database import Db, Document
from graphql_api.directory.models import User
from graphql_api.errors import ApiError, BadUserInput
from graphql_api.pagination import Page, page_size, parse_message_cursor
from graphql_api.policy import audience_of, readable_messages_filter

DEFAULT_HISTORY_PAGE = 50


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """A page of one conversation's messages, as `Conversation.messages` asks for it."""

    conversation: Conversation
    viewer: User
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    @property
    def key(self) -> tuple[object, ...]:
        """Identifies the page (the loader's cache key)."""
        return (
            self.conversation.id,
            audience_of(self.viewer),
            self.first,
            self.after,
            self.last,
            self.before,
        )


@dataclass(frozen=True, slots=True)
class Window:
    """Where a page's messages are: seq strictly between `above` and `below` (None: no bound),
    the `size` first of them (forward) or the `size` last (backward)."""

    conversation_id: str
    forward: bool
    size: int
    above: int | None
    below: int | None
    readable: Document

    def query(self) -> Document:
        query: Document = {"conversation_id": {"$eq": self.conversation_id}, **self.readable}
        seq_range: Document = {}
        if self.above is not None:
            seq_range["$gt"] = self.above
        if self.below is not None:
            seq_range["$lt"] = self.below
        if seq_range:
            query["seq"] = seq_range
        return query


def window_of(request: HistoryRequest) -> Window:
    """The window of a request; BAD_USER_INPUT for arguments the contract refuses."""
    if request.first is not None and request.last is not None:
        raise BadUserInput("pass first or last, not both")
    above = parse_message_cursor(request.after, "after") if request.after is not None else None
    below = parse_message_cursor(request.before, "before") if request.before is not None else None
    forward = request.first is not None or (above is not None and request.last is None)
    size = (
        page_size(request.first, "first", DEFAULT_HISTORY_PAGE)
        if forward
        else page_size(request.last, "last", DEFAULT_HISTORY_PAGE)
    )
    return Window(
        request.conversation.id,
        forward,
        size,
        above,
        below,
        readable_messages_filter(request.viewer),
    )


def page_of(window: Window, request: HistoryRequest, messages: list[Message]) -> Page[Message]:
    """The page from the messages of its range (any order, the page's and maybe more)."""
    ordered = sorted(messages, key=lambda m: m.seq, reverse=not window.forward)[: window.size + 1]
    if window.forward:
        return Page(
            items=ordered[: window.size],
            has_next_page=len(ordered) > window.size,
            has_previous_page=request.after is not None and (window.above or 0) > 0,
        )
    return Page(
        items=list(reversed(ordered[: window.size])),
        has_next_page=request.before is not None,
        has_previous_page=len(ordered) > window.size,
    )


async def read_page(db: Db, request: HistoryRequest) -> Page[Message]:
    """One page, with one query sorted and limited by the database (an index range scan)."""
    window = window_of(request)
    docs = (
        await db.messages.find(window.query())
        .sort("seq", 1 if window.forward else -1)
        .limit(window.size + 1)
        .to_list()
    )
    return page_of(window, request, [Message.from_doc(d) for d in docs])


async def read_pages(
    db: Db, requests: Sequence[HistoryRequest], in_flight: asyncio.Semaphore
) -> list[Page[Message] | ApiError]:
    """Many pages, in request order, at most `in_flight` queries at once; a refused request
    answers its error in its place."""

    async def read(request: HistoryRequest) -> Page[Message] | ApiError:
        try:
            window_of(request)  # refuse bad arguments without taking a place
        except ApiError as error:
            return error
        async with in_flight:
            return await read_page(db, request)

    distinct = {request.key: request for request in requests}
    pages = await asyncio.gather(*(read(request) for request in distinct.values()))
    by_key = dict(zip(distinct, pages, strict=True))
    return [by_key[request.key] for request in requests]
