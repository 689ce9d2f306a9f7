"""The executable schema: root types merged from each domain, with the service's extensions."""

from __future__ import annotations

import time

import strawberry
from strawberry.extensions import DisableIntrospection, ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from graphql_api import metrics
from schema.conversation_api import ConversationMutation, ConversationQuery
from schema.directory_api import DirectoryMutation, DirectoryQuery
from schema.error_codes import ValidationErrorCodes, tag_request_errors
from schema.extensions import MaskUnexpectedErrors, StripSuggestions
from schema.limits import limit_extensions
from schema.operation_metrics import count_errors, operation_of
from schema.realtime_api import NotificationMutation, NotificationQuery, Subscription
from schema.shared_events import SharedEventExecutionContext

Query = merge_types("Query", (DirectoryQuery, ConversationQuery, NotificationQuery))
Mutation = merge_types("Mutation", (DirectoryMutation, ConversationMutation, NotificationMutation))


class MessagerSchema(strawberry.Schema):
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


def build_schema(introspection: bool = True, measured: bool = True) -> MessagerSchema:
    """The executable schema; without introspection (production), "Did you mean" suggestions
    go too, since they reveal field names; without metrics, operations are not measured."""
    extensions: list = [
        ParserCache,
        ValidationCache,
        *limit_extensions(),
        ValidationErrorCodes,
        MaskUnexpectedErrors,
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
    built.measured = measured
    return built


schema = build_schema()


def export_sdl() -> str:
    return schema.as_str() + "\n"
