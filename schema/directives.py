"""`@access(policy: ...)`: the access policy that guards a field, visible in `schema.graphql`.

Every field that reads or writes a conversation carries the directive, applied by `guarded()`.
The directive is enforced, not decorative: its field extension requires an authenticated viewer
and, on a field of a `Conversation`, checks `policy.can_read` for that conversation before the
resolver runs. Root fields that take a conversation id resolve it through the policy's
fetch-check-raise helper (`policy.fetch_readable`), so the rule is never re-implemented here.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.schema_directive import Location

from graphql_api.errors import NotFound
from graphql_api.policy import can_read


@strawberry.enum(description="The rules of the access policy (SPEC §3, §4).")
class AccessPolicy(enum.Enum):
    AUTHENTICATED = "AUTHENTICATED"
    READ_CONVERSATION = "READ_CONVERSATION"
    DESIGNATE_PARTICIPANTS = "DESIGNATE_PARTICIPANTS"


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="access",
    description="The access policy rule that guards this field.",
)
class Access:
    policy: AccessPolicy


class AccessGuard(FieldExtension):
    """Enforces the field's `@access` rule before its resolver runs."""

    def __init__(self, policy: AccessPolicy) -> None:
        self.policy = policy

    def _check(self, source: Any, info: strawberry.Info) -> None:
        viewer = info.context.viewer  # raises UNAUTHENTICATED without a valid token
        record = getattr(source, "record", None)
        if self.policy is AccessPolicy.READ_CONVERSATION and record is not None:
            if not can_read(viewer, record):
                raise NotFound("conversation not found")

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: strawberry.Info, **kwargs: Any
    ) -> Any:
        self._check(source, info)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: strawberry.Info,
        **kwargs: Any,
    ) -> Any:
        self._check(source, info)
        result = next_(source, info, **kwargs)
        return await result if isinstance(result, Awaitable) else result


def guarded(policy: AccessPolicy) -> dict[str, Any]:
    """Field keyword arguments that put `@access(policy)` on a field and enforce it."""
    return {"directives": [Access(policy=policy)], "extensions": [AccessGuard(policy)]}
