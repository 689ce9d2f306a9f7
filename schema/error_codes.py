"""`extensions.code` on the errors graphql-core raises itself (SPEC §19).

The product's own errors carry their code (`graphql_api.errors`); these are the others, named
like Apollo Server's, which frontends already handle:
- `GRAPHQL_PARSE_FAILED`: the document is not GraphQL (a syntax error, too many tokens);
- `GRAPHQL_VALIDATION_FAILED`: it does not fit the schema or the query limits;
- `BAD_USER_INPUT`: the variables do not fit the operation (a missing `ID!`, a bad enum).
A code already set (by another extension or rule) is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"


def _set_code(error: GraphQLError, code: str) -> None:
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": code}


class ValidationErrorCodes(SchemaExtension):
    """Tags validation errors as they leave the validation step, before any transport sends
    them (an HTTP answer, or the `error` message of a WebSocket subscription)."""

    def on_validate(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or ():
            _set_code(error, VALIDATION_FAILED)


def tag_request_errors(
    errors: Iterable[GraphQLError], execution_context: ExecutionContext | None
) -> None:
    """Codes for parse errors and variable errors; called by the schema's `process_errors`,
    which every transport runs before it answers. Errors with a path come from resolvers and
    are the masking extension's business."""
    parsed = execution_context is not None and execution_context.graphql_document is not None
    for error in errors:
        if isinstance(error, GraphQLSyntaxError) or not parsed:
            _set_code(error, PARSE_FAILED)
        elif error.path is None:
            _set_code(error, BAD_USER_INPUT)
