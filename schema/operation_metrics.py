"""Counts and times GraphQL operations, and counts errors by code, for `/metrics`.

Not a schema extension: each extension hook costs tens of microseconds per operation, a few
percent of a small query. The schema's `execute` (HTTP) and `stream` (WebSocket) are wrapped
instead, and the operation's kind and name are read from the document's text (`operation_of`):
the operation `operationName` names, or else the document's first one. A query or mutation over
HTTP is timed; an operation over WebSocket is counted when it starts (a subscription's life is
not a latency; the subscriptions running now are counted where they register, in
`resolvers/realtime.py`). Errors are counted where the schema processes them (`count_errors`),
once each, with the code the client will read: masking comes later, so an error without a code
is counted as the masking extension will answer it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from graphql import GraphQLError

from graphql_api import metrics
from schema.extensions import UNAVAILABLE, is_unexpected

# Whitespace, commas, a byte-order mark and comments are "ignored tokens" in GraphQL.
_IGNORED = re.compile(r"(?:[\s,\ufeff]+|#[^\n\r]*)*")
_HEADER = re.compile(r"(query|mutation|subscription)\b(?:[\s,\ufeff]+|#[^\n\r]*)*([A-Za-z_]\w*)?")
_ANY_HEADER = re.compile(r"(?m)^[\s,\ufeff]*(query|mutation|subscription)\b[\s,]*([A-Za-z_]\w*)?")


def operation_of(query: str | None, operation_name: str | None) -> tuple[str, str | None]:
    """(kind, name) of the operation a request runs, from its text; kind `invalid` when the
    text shows none. Cheap: a regular expression, no parsing."""
    if not query:
        return "invalid", operation_name
    if operation_name:
        named = re.search(
            rf"\b(query|mutation|subscription)[\s,]+{re.escape(operation_name)}\b", query
        )
        return (named.group(1) if named else "invalid"), operation_name
    start = _IGNORED.match(query)
    position = start.end() if start else 0
    if query.startswith("{", position):
        return "query", None  # the shorthand: an anonymous query
    header = _HEADER.match(query, position) or _ANY_HEADER.search(query)
    if header is None:
        return "invalid", None
    return header.group(1), header.group(2)


def count_errors(errors: Iterable[GraphQLError]) -> None:
    for error in errors:
        code = (error.extensions or {}).get("code")
        if not code:
            if is_unexpected(error):
                unavailable = isinstance(error.original_error, UNAVAILABLE)
                code = "SERVICE_UNAVAILABLE" if unavailable else "INTERNAL_SERVER_ERROR"
            else:
                code = "UNSPECIFIED"
        metrics.count_error(str(code))
