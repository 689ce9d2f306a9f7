"""`@access(policy: ...)`: the rule of the access policy enforced on a field, shown in the SDL.

Each rule is a Strawberry permission class (`strawberry.permission`) whose schema directive names
it, so `schema.graphql` says exactly what runs: a field that carries `@access(policy: X)` is
guarded by the permission of rule X and by nothing else, and `tests/test_schema_rules.py` fails
for a root field without one or a directive that disagrees with its guard. The checks themselves
are the policy's (`graphql_api.policy`); this module only applies them to a field's parent and
arguments:

- AUTHENTICATED: a signed-in viewer; the field answers only the viewer's own records.
- SEE_COMPANY: the `companyId` argument names a company the viewer may see.
- VISIBLE_COMPANIES: a list built by the company-visibility filter.
- READ_CONVERSATION: the conversation (the parent, or the `id` / `conversationId` argument) is
  readable; an unreadable one answers NOT_FOUND exactly like a missing one. On the fields of
  `Conversation` (the parent) the check needs no query and runs synchronously.
- READ_MESSAGE: the message the `messageId` argument names is one the viewer may read (its
  conversation readable, and `policy.can_read_message`); NOT_FOUND otherwise. What the viewer
  may then do to it (edit, delete) is the service's check, with the policy's rules.
- READABLE_CONVERSATIONS: a list or an event stream filtered by the read rule, in the query for
  lists and per event for subscriptions.
- DESIGNATE_PARTICIPANTS: the company, when given, is one the viewer may pick; every designated
  user is checked against the designation filter by the service.
- MANAGE_CONVERSATION: the conversation is readable (NOT_FOUND otherwise, as READ_CONVERSATION)
  and the viewer is a practitioner (FORBIDDEN otherwise: it may read it, so nothing leaks):
  status and assignee (SPEC §13, `policy.can_manage`).
- ADMIN: the viewer is an admin of its firm (FORBIDDEN otherwise); the field answers its firm's
  records only, and an id of another firm answers NOT_FOUND.

The conversation or company that a guard loads goes through the operation's dataloaders, so the
resolver that runs next reads it from there without another query.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import strawberry
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema_directive import Location

from graphql_api.conversations import models
from graphql_api.errors import Forbidden, NotFound
from graphql_api.policy import can_manage, can_read, require_admin


@strawberry.enum(name="AccessPolicy", description="The rules of the access policy.")
class AccessRule(enum.Enum):
    AUTHENTICATED = strawberry.enum_value(
        "AUTHENTICATED", description="A signed-in viewer; only the viewer's own records."
    )
    SEE_COMPANY = strawberry.enum_value(
        "SEE_COMPANY", description="The company argument is one the viewer may see."
    )
    VISIBLE_COMPANIES = strawberry.enum_value(
        "VISIBLE_COMPANIES", description="Filtered to the companies the viewer may see."
    )
    READ_CONVERSATION = strawberry.enum_value(
        "READ_CONVERSATION",
        description="The conversation (parent or argument) is one the viewer may read.",
    )
    READ_MESSAGE = strawberry.enum_value(
        "READ_MESSAGE",
        description="The message argument is one the viewer may read.",
    )
    READABLE_CONVERSATIONS = strawberry.enum_value(
        "READABLE_CONVERSATIONS",
        description="Filtered by the read rule: in the query for lists, per event for streams.",
    )
    DESIGNATE_PARTICIPANTS = strawberry.enum_value(
        "DESIGNATE_PARTICIPANTS",
        description="The company is one the viewer may pick; every participant is designatable.",
    )
    MANAGE_CONVERSATION = strawberry.enum_value(
        "MANAGE_CONVERSATION",
        description="The conversation is readable and the viewer is a practitioner.",
    )
    ADMIN = strawberry.enum_value(
        "ADMIN", description="An admin of the viewer's firm; only the firm's records."
    )


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="access",
    description="The access policy rule enforced on this field.",
)
class Access:
    policy: AccessRule


class AccessPermission(BasePermission):
    """A rule of the policy as a field guard; subclasses name their rule."""

    rule: ClassVar[AccessRule]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._schema_directive = Access(policy=cls.rule)

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        info.context.viewer  # noqa: B018 - raises UNAUTHENTICATED without a valid token
        return True


class Authenticated(AccessPermission):
    rule = AccessRule.AUTHENTICATED


class VisibleCompanies(AccessPermission):
    rule = AccessRule.VISIBLE_COMPANIES


class ReadableConversations(AccessPermission):
    rule = AccessRule.READABLE_CONVERSATIONS


class Admin(AccessPermission):
    rule = AccessRule.ADMIN

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        require_admin(info.context.viewer)  # raises FORBIDDEN (UNAUTHENTICATED without a token)
        return True


class SeeCompany(AccessPermission):
    rule = AccessRule.SEE_COMPANY

    async def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        if await info.context.visible_company(kwargs["company_id"]) is None:
            raise NotFound("company not found")
        return True


class DesignateParticipants(AccessPermission):
    rule = AccessRule.DESIGNATE_PARTICIPANTS

    async def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        info.context.viewer  # noqa: B018 - raises UNAUTHENTICATED without a valid token
        company_id = _argument(kwargs, "company_id")
        if company_id is not None and await info.context.visible_company(company_id) is None:
            raise NotFound("company not found")
        return True


class ReadConversation(AccessPermission):
    rule = AccessRule.READ_CONVERSATION

    async def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        record = getattr(source, "record", None)
        if isinstance(record, models.Conversation):
            return can_read(info.context.viewer, record)
        conversation_id = _argument(kwargs, "conversation_id") or kwargs.get("id")
        return await info.context.readable_conversation(conversation_id) is not None

    def on_unauthorized(self) -> None:
        raise NotFound("conversation not found")


class ReadThisConversation(AccessPermission):
    """READ_CONVERSATION on a field of `Conversation`: the parent is the conversation, already
    loaded, so the check is the policy's `can_read` alone and needs no await. Synchronous, the
    guard lets its field resolve without a task of its own (an inbox page has two such fields
    per conversation)."""

    rule = AccessRule.READ_CONVERSATION

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        record = getattr(source, "record", None)
        return isinstance(record, models.Conversation) and can_read(info.context.viewer, record)

    def on_unauthorized(self) -> None:
        raise NotFound("conversation not found")


class ManageConversation(AccessPermission):
    rule = AccessRule.MANAGE_CONVERSATION

    async def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        conversation = await info.context.readable_conversation(
            _argument(kwargs, "conversation_id")
        )
        if conversation is None:
            raise NotFound("conversation not found")
        if not can_manage(info.context.viewer, conversation):
            raise Forbidden("only practitioners may do this")
        return True


class ReadMessage(AccessPermission):
    rule = AccessRule.READ_MESSAGE

    async def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return await info.context.readable_message(_argument(kwargs, "message_id")) is not None

    def on_unauthorized(self) -> None:
        raise NotFound("message not found")


class ReadConversationStream(ReadConversation):
    """READ_CONVERSATION on a subscription: refused the way a stream ends with an error (a
    `next` carrying the error, then `complete`), as every other failure of the stream does."""

    def on_unauthorized(self) -> AsyncIterator[Any]:  # type: ignore[override]
        async def refused() -> AsyncIterator[Any]:
            raise NotFound("conversation not found")
            yield  # an async generator that fails on its first step

        return refused()


def _argument(kwargs: dict[str, Any], name: str) -> Any:
    """An argument of the field, or the field of its `input` argument."""
    if name in kwargs:
        return kwargs[name]
    return getattr(kwargs.get("input"), name, None)


def guarded(permission: type[AccessPermission], *, silent: bool = False) -> dict[str, Any]:
    """Field keyword arguments that enforce `permission` and show its `@access` directive.

    `silent`: an unreadable value answers null instead of NOT_FOUND (for `conversation(id)`)."""
    return {"extensions": [PermissionExtension([permission()], fail_silently=silent)]}
