"""The executable schema: root types merged from each domain, with the service's extensions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection, ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from graphql_api import metrics
from graphql_api.errors import RequestTimeout
from graphql_api.settings import Settings
from schema.compliance_api import ComplianceQuery
from schema.conversation_api import ConversationMutation, ConversationQuery
from schema.directory_api import DirectoryMutation, DirectoryQuery
from schema.email_api import EmailMutation, EmailQuery
from schema.error_codes import ValidationErrorCodes, tag_request_errors
from schema.extensions import CurrentViewer, MaskUnexpectedErrors, StripSuggestions
from schema.limits import MAX_QUERY_COST, limit_extensions
from schema.operation_metrics import count_errors, operation_of
from schema.realtime_api import NotificationMutation, NotificationQuery, Subscription
from schema.search_api import SearchQuery
from schema.shared_events import SharedEventExecutionContext

Query = merge_types(
    "Query",
    (
        DirectoryQuery,
        ConversationQuery,
        NotificationQuery,
        SearchQuery,
        EmailQuery,
        ComplianceQuery,
    ),
)
Mutation = merge_types(
    "Mutation", (DirectoryMutation, ConversationMutation, NotificationMutation, EmailMutation)
)

REQUEST_TIMEOUT_SECONDS: float = Settings.model_fields["request_timeout_seconds"].default


class MessagerSchema(strawberry.Schema):
    """Strawberry's schema with a deadline on every query and mutation.

    Past `request_timeout_seconds` the operation's work is cancelled and it answers one
    `REQUEST_TIMEOUT` error: whatever it asked for, an operation gives its connections and its
    memory back in bounded time. Over HTTP the view bounds the whole request the same way
    (authentication included), so this deadline is what bounds operations sent over a
    WebSocket. Subscriptions are not bounded (they live as long as asked); each event they
    deliver is costed like a query.
    """

    request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS
    measured = True
    """Operations and errors counted for `/metrics` (off with `MESSAGER_METRICS=false`)."""

    async def execute(self, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self.measured:
            return await super().execute(query, *args, **kwargs)
        started = time.perf_counter()
        try:
            return await super().execute(query, *args, **kwargs)
        finally:
            kind, name = operation_of(query, kwargs.get("operation_name"))
            metrics.observe_operation(name, kind, time.perf_counter() - started)

    async def stream(self, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.measured:
            kind, name = operation_of(query, kwargs.get("operation_name"))
            metrics.observe_operation(name, kind, None)
        return await super().stream(query, *args, **kwargs)

    def process_errors(self, errors, execution_context=None) -> None:  # type: ignore[no-untyped-def]
        # MaskUnexpectedErrors logs what needs logging, with the request id; expected failures
        # (wrong token, unknown id) are the client's business, not the server log's. Here the
        # errors graphql-core raised itself get their `extensions.code`.
        tag_request_errors(errors, execution_context)
        if self.measured:
            count_errors(errors)

    async def _execute_operation(  # type: ignore[override]
        self, execution_context: ExecutionContext, *args: Any, **kwargs: Any
    ) -> Any:
        # Strawberry runs every query and mutation here, over HTTP (`execute`) and WebSocket
        # (`stream`); subscriptions take another path.
        seconds = self.request_timeout_seconds
        try:
            async with asyncio.timeout(seconds) as deadline:
                return await super()._execute_operation(execution_context, *args, **kwargs)
        except TimeoutError:
            if not deadline.expired():
                raise
        timeout = RequestTimeout(seconds)
        return GraphQLExecutionResult(
            data=None, errors=[GraphQLError(timeout.message, extensions=timeout.extensions)]
        )


def build_schema(
    introspection: bool = True,
    max_query_cost: int = MAX_QUERY_COST,
    request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    measured: bool = True,
) -> MessagerSchema:
    """The executable schema; without introspection (production), "Did you mean" suggestions
    go too, since they reveal field names; without metrics, operations are not measured."""
    extensions: list = [
        ParserCache,
        ValidationCache,
        *limit_extensions(max_query_cost),
        ValidationErrorCodes,
        MaskUnexpectedErrors,
        CurrentViewer,
    ]
    if not introspection:
        extensions[:0] = [DisableIntrospection, StripSuggestions]
    built = MessagerSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=SharedEventExecutionContext,
        config=StrawberryConfig(disable_field_suggestions=not introspection),
    )
    built.request_timeout_seconds = request_timeout_seconds
    built.measured = measured
    return built


schema = build_schema()


def export_sdl() -> str:
    return schema.as_str() + "\n"
