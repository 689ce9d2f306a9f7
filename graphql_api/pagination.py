"""Pages, opaque cursors and page sizes for the Relay connections.

A cursor is URL-safe base64 of `<kind>:<value>`; anything else a client sends is BAD_USER_INPUT.
Page sizes default to 20 and are clamped to 100; a negative size is BAD_USER_INPUT.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from graphql_api.errors import BadUserInput
from graphql_api.ids import is_id

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, in the order the client reads it."""

    items: list[T]
    has_next_page: bool
    has_previous_page: bool


def page_size(value: int | None, name: str, default: int = DEFAULT_PAGE_SIZE) -> int:
    if value is None:
        return default
    if value < 0:
        raise BadUserInput(f"{name} must not be negative")
    return min(value, MAX_PAGE_SIZE)


def encode_cursor(kind: str, value: str) -> str:
    """An opaque cursor of `kind` holding `value`."""
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(cursor: str, kind: str, name: str) -> str:
    """The value of a cursor of `kind`; BAD_USER_INPUT naming the argument `name` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
    except (UnicodeError, binascii.Error, ValueError) as exc:
        raise BadUserInput(f"{name} is not a valid cursor") from exc
    prefix, _, value = raw.partition(":")
    if prefix != kind or not value:
        raise BadUserInput(f"{name} is not a valid cursor")
    return value


def message_cursor(seq: int) -> str:
    return encode_cursor("m", str(seq))


def parse_message_cursor(cursor: str, name: str) -> int:
    value = decode_cursor(cursor, "m", name)
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise BadUserInput(f"{name} is not a valid cursor")
    return int(value)


def activity_cursor(millis: int, item_id: str, kind: str = "c") -> str:
    """A cursor into a list sorted by (epoch milliseconds, id), newest first."""
    return encode_cursor(kind, f"{millis}|{item_id}")


def parse_activity_cursor(cursor: str, name: str, kind: str = "c") -> tuple[int, str]:
    millis, _, item_id = decode_cursor(cursor, kind, name).partition("|")
    if not (millis.isascii() and millis.isdigit()) or len(millis) > 15 or not is_id(item_id):
        raise BadUserInput(f"{name} is not a valid cursor")
    return int(millis), item_id


def notification_cursor(unread: bool, notification_id: str) -> str:
    return encode_cursor("n", f"{int(unread)}|{notification_id}")


def parse_notification_cursor(cursor: str, name: str) -> tuple[int, str]:
    unread, _, notification_id = decode_cursor(cursor, "n", name).partition("|")
    message_id, _, user_id = notification_id.partition(":")
    if unread not in ("0", "1") or not (is_id(message_id) and is_id(user_id)):
        raise BadUserInput(f"{name} is not a valid cursor")
    return int(unread), notification_id
