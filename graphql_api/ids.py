"""Ids: how they are made, and how ids that come from clients are parsed.

Every document id and every reference is the 24-character hex text of an ObjectId, stored as a
string. Strings because the embedded server does not match ObjectId values in queries (a find on
`{"_id": ObjectId(...)}` or `{"firm_id": ObjectId(...)}` answers nothing, see docs/embedded.md);
hex text of an ObjectId still sorts by creation time, and works the same on MongoDB.

Every id from a client may be malformed, another firm's, or hostile (`{"$ne": null}` arrives as a
plain string and is refused here). A malformed id answers the same NOT_FOUND as an unknown one.
"""

from __future__ import annotations

import re

from bson import ObjectId

from graphql_api.errors import NotFound

_ID_PATTERN = re.compile(r"[0-9a-f]{24}")


def new_id() -> str:
    return str(ObjectId())


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def parse_id(value: object, what: str) -> str:
    """`value` if it is a well-formed id, else NOT_FOUND naming `what` ("company"...)."""
    if is_id(value):
        return value  # type: ignore[return-value]
    raise NotFound(f"{what} not found")


def try_parse_id(value: object) -> str | None:
    return value if is_id(value) else None  # type: ignore[return-value]
