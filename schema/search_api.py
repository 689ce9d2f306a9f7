"""The search root field (SPEC §16), composed into Query by `schema.schema`."""

from __future__ import annotations

import strawberry

from resolvers import search as resolve
from schema.permissions import ReadableConversations, guarded
from schema.search_types import SearchResultConnection


@strawberry.type
class SearchQuery:
    search: SearchResultConnection = strawberry.field(
        resolver=resolve.search,
        description="Messages the viewer may read containing every word of `query` (in the "
        "text, the conversation's subject or an attachment's filename; case and accents "
        "ignored), most relevant first. `since` is inclusive, `until` exclusive. A query of "
        "stop words only answers an empty page; at most 1,000 results are served.",
        **guarded(ReadableConversations),
    )
