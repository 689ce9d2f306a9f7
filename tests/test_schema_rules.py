"""The SDL tells the truth: every root field names the access rule enforced on it, and every
`@access(policy: X)` in the schema stands on a field guarded by the permission of rule X."""

from __future__ import annotations

from strawberry.permission import PermissionExtension
from strawberry.types.field import StrawberryField

from schema.permissions import Access, AccessPermission
from schema.schema import schema


def _fields(type_name: str) -> dict[str, StrawberryField]:
    graphql_type = schema._schema.get_type(type_name)
    return {
        name: field.extensions["strawberry-definition"]
        for name, field in graphql_type.fields.items()  # type: ignore[union-attr]
    }


def _directive_rules(field: StrawberryField) -> list[object]:
    return [d.policy for d in field.directives if isinstance(d, Access)]


def _guard_rules(field: StrawberryField) -> list[object]:
    return [
        permission.rule
        for extension in field.extensions
        if isinstance(extension, PermissionExtension)
        for permission in extension.permissions
        if isinstance(permission, AccessPermission)
    ]


def test_every_root_field_names_exactly_one_access_rule():
    missing = [
        f"{root}.{name}"
        for root in ("Query", "Mutation", "Subscription")
        for name, field in _fields(root).items()
        if len(_directive_rules(field)) != 1
    ]
    assert missing == []


def test_every_access_directive_is_the_guard_in_force():
    type_names = [
        name
        for name, graphql_type in schema._schema.type_map.items()
        if not name.startswith("__") and hasattr(graphql_type, "fields")
    ]
    disagreements = [
        (f"{type_name}.{name}", _directive_rules(field), _guard_rules(field))
        for type_name in type_names
        if "strawberry-definition" in (schema._schema.get_type(type_name).extensions or {})
        for name, field in _fields(type_name).items()
        if _directive_rules(field) != _guard_rules(field)
    ]
    assert disagreements == []


def test_history_last_message_and_unread_count_are_guarded_by_the_read_rule():
    guarded = {
        name: [rule.value for rule in _guard_rules(field)]
        for name, field in _fields("Conversation").items()
        if _guard_rules(field)
    }
    assert guarded == {
        "lastMessage": ["READ_CONVERSATION"],
        "unreadCount": ["READ_CONVERSATION"],
        "readStates": ["READ_CONVERSATION"],
        "messages": ["READ_CONVERSATION"],
    }
