"""The static cost of an operation, computed from its document and variables before it runs.

Depth and alias limits do not bound what a query asks for: `conversations(first: 40)` with
`messages(first: 100)` inside, and `conversation { messages(first: 100) }` inside that, stays
within ten levels and asks for 400,000 messages. The cost counts the objects an answer may
hold, so that such a query is refused before any of it runs (issue 20):

- every field that returns an object or a list of objects costs 1 each time it is resolved;
- a connection's `edges` are resolved once per item of its page: the page size is the field's
  `first` or `last` argument (a literal or a variable, clamped to `MAX_PAGE_SIZE`, the page
  size the field uses when both are absent), and it multiplies everything selected inside
  `edges`, connections nested in them included;
- scalars and `__typename` are free; introspection fields cost 1 and are not walked (their
  answers are static, and the depth and token limits bound them);
- fragments count where they are spread, `@skip`/`@include` are ignored (counted as
  included), and plain lists (`participants`, `attachments`, `companies`) count once per
  parent, their lengths being bounded by the data rather than by the query.

`operation_cost` answers the number; `QueryCostLimiter` refuses an operation over the limit
with `QUERY_TOO_COSTLY`, naming the limit and the cost, before execution (queries and mutations
over HTTP and WebSocket, and subscriptions, whose every event runs the same selection).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
    is_leaf_type,
    value_from_ast_untyped,
)
from graphql.type import GraphQLInterfaceType
from strawberry.extensions import SchemaExtension

from graphql_api.conversations.history import DEFAULT_HISTORY_PAGE
from graphql_api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

PAGE_ARGUMENTS = ("first", "last")

# The page size each connection uses without `first`/`last` (the services' defaults); a
# connection missing here is costed at the largest page, which can only overestimate.
DEFAULT_PAGES: dict[tuple[str, str], int] = {
    ("Query", "conversations"): DEFAULT_PAGE_SIZE,
    ("Query", "notifications"): DEFAULT_PAGE_SIZE,
    ("Conversation", "messages"): DEFAULT_HISTORY_PAGE,
}

TOO_COSTLY = "QUERY_TOO_COSTLY"


def is_connection(type_: GraphQLNamedType) -> bool:
    """A Relay connection: an object type with `edges` and `pageInfo`."""
    return isinstance(type_, GraphQLObjectType) and {"edges", "pageInfo"} <= type_.fields.keys()


class _Coster:
    """Walks one operation; fragment costs are kept, so a fragment spread many times (or
    spreading others many times) is walked once per page size it is seen under."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.fragment_costs: dict[tuple[str, int | None], int] = {}

    def selection_set(
        self,
        selections: SelectionSetNode | None,
        parent: GraphQLNamedType,
        edges_page: int | None = None,
    ) -> int:
        """The cost of a selection set resolved once; `edges_page` is the page size when the
        parent is a connection."""
        if selections is None:
            return 0
        return sum(self.selection(node, parent, edges_page) for node in selections.selections)

    def selection(
        self, node: SelectionNode, parent: GraphQLNamedType, edges_page: int | None
    ) -> int:
        if isinstance(node, FieldNode):
            return self.field(node, parent, edges_page)
        if isinstance(node, InlineFragmentNode):
            on = node.type_condition
            type_ = self.schema.get_type(on.name.value) if on else parent
            return self.selection_set(node.selection_set, type_ or parent, edges_page)
        if isinstance(node, FragmentSpreadNode):
            return self.spread(node.name.value, edges_page)
        return 0

    def spread(self, name: str, edges_page: int | None) -> int:
        key = (name, edges_page)
        if key not in self.fragment_costs:
            fragment = self.fragments.get(name)
            if fragment is None:
                return 0
            type_ = self.schema.get_type(fragment.type_condition.name.value)
            self.fragment_costs[key] = 0  # a cycle (refused by validation) counts nothing
            self.fragment_costs[key] = (
                self.selection_set(fragment.selection_set, type_, edges_page) if type_ else 0
            )
        return self.fragment_costs[key]

    def field(self, node: FieldNode, parent: GraphQLNamedType, edges_page: int | None) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0 if name == "__typename" else 1
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        definition = parent.fields.get(name)
        if definition is None:
            return 0
        type_ = get_named_type(definition.type)
        if is_leaf_type(type_):
            return 0
        inside = self.selection_set(
            node.selection_set,
            type_,
            self.page_size(parent.name, name, node) if is_connection(type_) else None,
        )
        if name == "edges" and edges_page is not None:
            return edges_page * (1 + inside)
        return 1 + inside

    def page_size(self, parent: str, field: str, node: FieldNode) -> int:
        sizes = [self.argument(node, name) for name in PAGE_ARGUMENTS]
        given = [size for size in sizes if size is not None]
        if not given:
            return DEFAULT_PAGES.get((parent, field), MAX_PAGE_SIZE)
        return min(max(max(given), 0), MAX_PAGE_SIZE)

    def argument(self, node: FieldNode, name: str) -> int | None:
        """An integer argument's value; None when absent, null, or not an integer (execution
        then refuses it, or the field uses its default)."""
        value_node: ValueNode | None = next(
            (arg.value for arg in node.arguments or () if arg.name.value == name), None
        )
        if isinstance(value_node, VariableNode):
            value = self.variables.get(value_node.name.value)
        elif isinstance(value_node, IntValueNode):
            value = int(value_node.value)
        else:
            value = None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The cost of the operation `operation_name` of `document` (module docstring)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    fragments = {
        node.name.value: node
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    return _Coster(schema, fragments, _variable_values(operation, variables)).selection_set(
        operation.selection_set, root
    )


def _variable_values(
    operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The variables sent, over the defaults the operation declares."""
    defaults = {
        definition.variable.name.value: value_from_ast_untyped(definition.default_value)
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    return {**defaults, **(variables if isinstance(variables, Mapping) else {})}


def too_costly(cost: int, max_cost: int) -> GraphQLError:
    return GraphQLError(
        f"this operation costs {cost}, over the limit of {max_cost}: ask for smaller pages "
        "(first/last) or fewer nested connections",
        extensions={"code": TOO_COSTLY, "cost": cost, "maxCost": max_cost},
    )


class QueryCostLimiter(SchemaExtension):
    """Refuses an operation whose cost is over `max_cost`, before it runs."""

    def __init__(self, *, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            try:
                cost = operation_cost(
                    context.schema._schema,
                    context.graphql_document,
                    context.operation_name,
                    context.variables,
                )
            except RecursionError:
                # Fragments nested beyond Python's stack: no client needs that.
                raise GraphQLError(
                    f"this operation is nested too deeply to be costed (limit {self.max_cost})",
                    extensions={"code": TOO_COSTLY, "maxCost": self.max_cost},
                ) from None
            if cost > self.max_cost:
                raise too_costly(cost, self.max_cost)
        yield
