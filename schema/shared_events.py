"""Subscription events executed once per distinct selection, not once per subscriber.

A message posted in a conversation with 1,000 `messageAdded` subscribers used to be executed
1,000 times by graphql-core: the same fields resolved on the same record, the author loaded
1,000 times. When a subscription's selection only reaches fields whose value cannot depend on
who is looking (`VIEWER_INDEPENDENT_FIELDS`), the first subscriber's execution of an event is
shared with every other subscriber that runs the same document with the same variables.

Access is untouched: each subscriber's generator (`resolvers/realtime.py`) decides with the
policy whether it yields the event at all; only what happens after that decision is shared.
Anything outside the allow-list (a signed attachment `url`, a conversation's `unreadCount`,
a user's favorites) is executed per subscriber as before, and so is any event whose shared
execution produced errors.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# Per GraphQL type: the fields whose value is the same for every viewer allowed to see the
# event, and the type each one leads to (None for a leaf). Keep this list short and obvious:
# a field added here wrongly would show one viewer's data to another.
VIEWER_INDEPENDENT_FIELDS: dict[str, dict[str, str | None]] = {
    "Subscription": {"messageAdded": "Message", "__typename": None},
    "Message": {
        "__typename": None,
        "id": None,
        "cursor": None,
        "kind": None,
        "body": None,
        "bodyText": None,
        "createdAt": None,
        "author": "User",
        "attachments": "Attachment",
    },
    "User": {"__typename": None, "id": None, "name": None, "email": None, "kind": None},
    "Attachment": {  # not `url`: it is signed for one viewer
        "__typename": None,
        "id": None,
        "filename": None,
        "contentType": None,
        "size": None,
    },
}
CONDITIONAL_DIRECTIVES = frozenset({"include", "skip"})  # decided by the variables, in the key
SHARED_RESULTS_KEPT = 2048

_shared_results: OrderedDict[tuple[str, ...], asyncio.Future[ExecutionResult]] = OrderedDict()


class SharedEventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, sharing per-event results of viewer-independent selections."""

    _share_prefix: tuple[str, ...] | None = None

    def build_per_event_executor(self, payload: Any) -> Any:
        if self._share_prefix is None:
            # Decided once per subscription, on the parent executor every event copies.
            self._share_prefix = _share_prefix(self) or ()
        return super().build_per_event_executor(payload)

    def execute_operation(self, serially: bool | None = None) -> Any:
        event_key = getattr(self.root_value, "share_key", None)
        if serially is not False or not self._share_prefix or event_key is None:
            return super().execute_operation(serially)
        key = (*self._share_prefix, event_key)
        shared = _shared_results.get(key)
        if shared is not None:
            return self._reuse(shared, serially)
        result = super().execute_operation(serially)
        # Registered only once the execution has started without raising: nothing can run in
        # between (no await), and a future never settled would hold every later subscriber.
        shared = asyncio.get_running_loop().create_future()
        _remember(key, shared)
        if isinstance(result, Awaitable):
            return self._finish(result, shared, key)
        _settle(shared, result, key)
        return result

    async def _finish(
        self,
        pending: Awaitable[ExecutionResult],
        shared: asyncio.Future[ExecutionResult],
        key: tuple[str, ...],
    ) -> ExecutionResult:
        try:
            result = await pending
        except BaseException:
            _shared_results.pop(key, None)
            shared.cancel()
            raise
        _settle(shared, result, key)
        return result

    async def _reuse(
        self, shared: asyncio.Future[ExecutionResult], serially: bool | None
    ) -> ExecutionResult:
        try:
            # Shielded: one subscriber leaving must not cancel the result the others wait for.
            result = await asyncio.shield(shared)
        except asyncio.CancelledError:
            if not shared.cancelled():
                raise
            result = None
        if result is None or result.errors:
            # Errors are never shared: this subscriber runs the event itself.
            own = super().execute_operation(serially)
            return await own if isinstance(own, Awaitable) else own
        return ExecutionResult(data=result.data)


def _remember(key: tuple[str, ...], shared: asyncio.Future[ExecutionResult]) -> None:
    _shared_results[key] = shared
    while len(_shared_results) > SHARED_RESULTS_KEPT:
        _shared_results.popitem(last=False)


def _settle(
    shared: asyncio.Future[ExecutionResult], result: ExecutionResult, key: tuple[str, ...]
) -> None:
    if result.errors:
        _shared_results.pop(key, None)
    if not shared.done():
        shared.set_result(result)


def _share_prefix(executor: StrawberryGraphQLCoreExecutionContext) -> tuple[str, ...] | None:
    """What identifies the subscription's selection, or None when it may differ per viewer."""
    operation = executor.operation
    if operation.operation is not OperationType.SUBSCRIPTION or operation.loc is None:
        return None
    fragments = {name: details.definition for name, details in executor.fragments.items()}
    if not _independent(operation.selection_set, "Subscription", fragments, set()):
        return None
    variables = json.dumps(executor.variable_values.coerced, sort_keys=True, default=str)
    name = operation.name.value if operation.name else ""
    return (operation.loc.source.body, name, variables)


def _independent(
    selection_set: SelectionSetNode | None,
    type_name: str,
    fragments: dict[str, Any],
    visiting: set[str],
) -> bool:
    allowed = VIEWER_INDEPENDENT_FIELDS.get(type_name)
    if allowed is None or selection_set is None:
        return False
    for selection in selection_set.selections:
        if any(d.name.value not in CONDITIONAL_DIRECTIVES for d in selection.directives or ()):
            return False
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if name not in allowed:
                return False
            child = allowed[name]
            if child is not None and not _independent(
                selection.selection_set, child, fragments, visiting
            ):
                return False
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is not None and condition.name.value != type_name:
                return False
            if not _independent(selection.selection_set, type_name, fragments, visiting):
                return False
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in visiting:
                return False
            if fragment.type_condition.name.value != type_name:
                return False
            if not _independent(fragment.selection_set, type_name, fragments, visiting | {name}):
                return False
        else:
            return False
    return True
