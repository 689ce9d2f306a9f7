"""Schema extensions: the masking of unexpected errors (SPEC §9), and the current viewer of each
operation on a WebSocket.

Expected failures (`ApiError`, with `extensions.code`) and validation errors pass through; every
other exception becomes `INTERNAL_SERVER_ERROR` with the request id, its detail only in the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator

from graphql.error import GraphQLError
from pymongo.errors import (
    ConnectionFailure,
    ExecutionTimeout,
    NetworkTimeout,
    PyMongoError,
    WTimeoutError,
)
from strawberry.extensions import MaskErrors, SchemaExtension

from graphql_api.context import Context
from graphql_api.errors import ApiError

log = logging.getLogger("graphql_api.errors")


# Failures of the database's availability, as opposed to bugs: the client may retry.
UNAVAILABLE = (ConnectionFailure, ExecutionTimeout, NetworkTimeout, WTimeoutError)


def is_unexpected(error: GraphQLError) -> bool:
    """Whether an error is a server fault to hide, rather than the client's to read."""
    original = error.original_error
    if isinstance(original, PyMongoError):
        return True  # driver text never reaches a client, even from a subscription's source
    if original is None or isinstance(original, ApiError | GraphQLError):
        return False  # syntax, validation, and the product's own errors
    # Variable coercion errors (a bad enum value or Int) carry the parser's exception but no
    # path: they are about the request, not a resolver fault.
    return error.path is not None


class MaskUnexpectedErrors(MaskErrors):
    """Hides unexpected errors behind a request id; registered as a class (one per operation)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = getattr(self.execution_context.context, "request_id", None)
        if isinstance(error.original_error, UNAVAILABLE):
            log.warning("database unavailable (request %s): %s", request_id, error.original_error)
            return GraphQLError(
                message="the database is not answering; try again shortly",
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions={"code": "SERVICE_UNAVAILABLE", "requestId": request_id},
            )
        log.error(
            "unexpected error (request %s) at %s",
            request_id,
            error.path,
            exc_info=error.original_error,
        )
        return GraphQLError(
            message=f"Internal server error (request id {request_id}).",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class StripSuggestions(SchemaExtension):
    """Removes "Did you mean …?" from every error message, for deployments whose schema is not
    public (strawberry's `disable_field_suggestions` leaves argument, enum and variable ones)."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not getattr(result, "errors", None):
            return
        result.errors = [
            GraphQLError(
                message=_SUGGESTION.sub("", error.message),
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                original_error=error.original_error,
                extensions=error.extensions,
            )
            if "Did you mean" in error.message
            else error
            for error in result.errors
        ]


class CurrentViewer(SchemaExtension):
    """Each operation on a WebSocket runs with the viewer as stored now, not as it was at
    `connection_init`: a removed favorite or company applies to the very next query or mutation,
    and a deleted user's operations answer UNAUTHENTICATED. The read goes through the user
    cache (no database command on a warm process). The operation also gets its own dataloaders:
    the connection's would serve what earlier operations read."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context) and context.on_socket:
            await context.refresh_viewer()
            context.fresh_loaders()
        yield
