"""Relay connection shapes shared by every paginated list (SPEC §9), and the one helper that
builds a connection from a page of domain records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import strawberry

from graphql_api.pagination import Page

NodeT = TypeVar("NodeT")
RecordT = TypeVar("RecordT")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo


def connection(
    page: Page[RecordT],
    *,
    cursor: Callable[[RecordT], str],
    node: Callable[[RecordT], NodeT],
) -> Connection[NodeT]:
    """The connection of `page`: one edge per record, each cursor computed once."""
    edges = [Edge(cursor=cursor(record), node=node(record)) for record in page.items]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
