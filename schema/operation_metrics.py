"""Counts and times GraphQL operations, and counts errors by code, for `/metrics`.

Queries and mutations are timed from receipt to answer. A subscription is counted when it starts
executing and held in `subscriptions_active` until it ends (its `on_operation` spans its life).
Errors are counted where the schema processes them (`count_errors`), once each, with the code the
client will read: masking happens later, so an error without a code is counted as the masking
extension will answer it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from graphql_api import metrics
from schema.extensions import UNAVAILABLE, is_unexpected

KINDS = frozenset({"query", "mutation", "subscription"})


class OperationMetrics(SchemaExtension):
    """Registered as a class: one instance per operation."""

    def __init__(self) -> None:
        self._kind: str | None = None  # known once execution starts
        self._subscription: contextlib.ExitStack | None = None

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if self._subscription is not None:
                self._subscription.close()
            else:
                kind = self._kind or _kind(self.execution_context)
                elapsed = None if kind == "subscription" else time.perf_counter() - started
                metrics.observe_operation(self.execution_context.operation_name, kind, elapsed)

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if self._kind is None:
            self._kind = _kind(context)
            if self._kind == "subscription":
                metrics.observe_operation(context.operation_name, "subscription", None)
                self._subscription = contextlib.ExitStack()
                self._subscription.enter_context(metrics.subscription_running(_root_field(context)))
        yield


def _kind(context: object) -> str:
    try:
        operation_type = context.operation_type  # type: ignore[attr-defined]
    except Exception:  # no document, or no such operation: it never ran
        return "invalid"
    kind = str(getattr(operation_type, "value", "")).lower()  # strawberry's OperationType
    return kind if kind in KINDS else "invalid"


def _root_field(context: object) -> str:
    document = getattr(context, "graphql_document", None)
    wanted = getattr(context, "operation_name", None)
    for definition in getattr(document, "definitions", ()):
        if isinstance(definition, OperationDefinitionNode) and (
            wanted is None or (definition.name and definition.name.value == wanted)
        ):
            selections = definition.selection_set.selections
            field = getattr(selections[0], "name", None) if selections else None
            return field.value if field is not None else "unknown"
    return "unknown"


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
