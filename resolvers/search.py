"""Resolver of `Query.search`: parse, call the search service, map to the contract's types."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.context import Info
from graphql_api.search.service import SearchFilters
from schema.enums import ConversationType
from schema.pagination import connection
from schema.search_types import SearchResult, SearchResultConnection


async def search(
    info: Info,
    query: str,
    first: int | None = None,
    after: str | None = None,
    company_id: strawberry.ID | None = None,
    type: ConversationType | None = None,
    author_id: strawberry.ID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    has_attachments: bool | None = None,
) -> SearchResultConnection:
    context = info.context
    page = await context.services.search.search(
        context.viewer,
        query,
        first=first,
        after=after,
        filters=SearchFilters(
            company_id=company_id,
            kind=type,
            author_id=author_id,
            since=since,
            until=until,
            has_attachments=has_attachments,
        ),
    )
    for hit in page.items:  # `Message.conversation` then needs no query
        context.loaders.conversations.prime(hit.conversation.id, hit.conversation)
    return connection(page, cursor=lambda hit: hit.cursor, node=lambda hit: SearchResult(hit=hit))
