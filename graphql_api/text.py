"""Checks shared by every piece of text a client sends."""

from __future__ import annotations

import re

from graphql_api.errors import BadUserInput

# Control characters, and the bidirectional overrides that make "txt.exe" read as "exe.txt".
UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def require_unicode(value: str, field: str) -> str:
    """`value` if it encodes as UTF-8; a lone surrogate (JSON "\\ud800") cannot be stored."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadUserInput(f"{field} is not valid Unicode text", field=field) from exc
    return value
