"""Query limits (OWASP GraphQL): depth, aliases, tokens, directives and cost; each a factory, so
every operation gets its own extension instance (instances would share state across requests)."""

from __future__ import annotations

from collections.abc import Callable

from graphql import DirectiveNode, GraphQLError, ValidationContext, ValidationRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from graphql_api.settings import Settings
from schema.query_cost import QueryCostLimiter

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
MAX_DIRECTIVES = 20
MAX_QUERY_COST: int = Settings.model_fields["max_query_cost"].default  # MESSAGER_MAX_QUERY_COST


class MaxDirectivesRule(ValidationRule):
    """At most MAX_DIRECTIVES directives in a document (`@include` floods cost the server)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.count = 0

    def enter_directive(self, node: DirectiveNode, *_: object) -> None:
        self.count += 1
        if self.count == MAX_DIRECTIVES + 1:
            self.report_error(
                GraphQLError(f"an operation may use at most {MAX_DIRECTIVES} directives", node)
            )


# The rule classes are built once: strawberry's limiters build a new class per instance, and
# ValidationCache keys on the rules, so per-operation classes would never hit the cache.
_RULES = [
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    MaxDirectivesRule,
]


def limit_extensions(max_cost: int = MAX_QUERY_COST) -> list[Callable[[], SchemaExtension]]:
    return [
        lambda: AddValidationRules(list(_RULES)),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        # At execution, so after validation: the document has no fragment cycles by then.
        lambda: QueryCostLimiter(max_cost=max_cost),
    ]
