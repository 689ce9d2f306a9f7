"""Checking what a client sends for a new conversation or message (SPEC §4, §6).

Shape rules live here, with messages a person can act on; rules that need the database
(eligibility, company access) live in the service and the policy.
"""

from __future__ import annotations

import re
import unicodedata

from graphql_api.conversations.models import COMPANY_KINDS, ConversationType
from graphql_api.directory.models import Company
from graphql_api.errors import BadUserInput
from graphql_api.html_nesting import nesting_depth
from graphql_api.rich_text import html_to_text, sanitize_html, utf8_length
from graphql_api.sanitizer_pool import off_loop
from graphql_api.text import (
    CONTROL_CHARACTERS,
    UNSAFE_CHARACTERS,
    has_visible_character,
    require_unicode,
    strip_format_characters,
)

MAX_SUBJECT_LENGTH = 200
MAX_BODY_BYTES = 100 * 1024
INLINE_BODY_CHARACTERS = 512  # most chat messages: cleaned on the loop, ~1 ms at worst
# Lists, quotes and styles inside one another: editors stay far below this (pages on the web
# rarely pass 30); above it the HTML parser's cost grows with depth times tags.
MAX_NESTING = 100
MAX_PARTICIPANTS = 100
MAX_ATTACHMENTS = 10
MAX_CLIENT_MESSAGE_ID_LENGTH = 100


def clean_subject(subject: str) -> str:
    """The subject as plain text: control characters and bidirectional controls become spaces,
    other format characters (zero-width spaces...) go, and something visible must be left."""
    require_unicode(subject, "subject")
    text = CONTROL_CHARACTERS.sub(" ", unicodedata.normalize("NFC", subject))
    text = strip_format_characters(text, bidi_replacement=" ")
    text = re.sub(r"\s+", " ", text).strip()
    if not has_visible_character(text) or len(text) > MAX_SUBJECT_LENGTH:
        raise BadUserInput(f"subject must be 1 to {MAX_SUBJECT_LENGTH} characters", field="subject")
    return text


async def clean_body(body: str, attachment_count: int) -> tuple[str, str]:
    """(sanitized HTML, plain text) of a message body, worked out in a sanitizer process; a
    body of at most `INLINE_BODY_CHARACTERS` on the event loop, where its worst case costs about a
    millisecond (less than the round trip to a sanitizer process; docs/security.md)."""
    if len(body) <= INLINE_BODY_CHARACTERS:
        return clean_body_now(body, attachment_count)
    return await off_loop(clean_body_now, body, attachment_count)


def clean_body_now(body: str, attachment_count: int) -> tuple[str, str]:
    """`clean_body` in the calling thread."""
    if utf8_length(require_unicode(body, "body")) > MAX_BODY_BYTES:
        raise BadUserInput(
            f"body must be at most {MAX_BODY_BYTES // 1024} KB of HTML", field="body"
        )
    if nesting_depth(body, MAX_NESTING) > MAX_NESTING:
        raise BadUserInput(
            f"body formatting is nested too deeply: at most {MAX_NESTING} levels of lists, "
            "quotes and styles inside one another",
            field="body",
        )
    sanitized = sanitize_html(body, max_bytes=MAX_BODY_BYTES)
    # The limit holds for what is stored too: links gain attributes and "&" becomes "&amp;".
    if utf8_length(sanitized) > MAX_BODY_BYTES:
        raise BadUserInput(
            f"body must be at most {MAX_BODY_BYTES // 1024} KB of HTML once sanitized "
            "(links and characters such as & take more room when stored)",
            field="body",
        )
    text = html_to_text(sanitized)
    if not text and attachment_count == 0:
        raise BadUserInput(
            "body must not be empty unless the message has attachments", field="body"
        )
    return sanitized, text


def clean_attachment_ids(ids: list[str] | None) -> list[str]:
    ids = list(ids or [])
    if len(ids) > MAX_ATTACHMENTS:
        raise BadUserInput(
            f"a message has at most {MAX_ATTACHMENTS} attachments", field="attachmentIds"
        )
    if len(set(ids)) != len(ids):
        raise BadUserInput("attachmentIds must not repeat an attachment", field="attachmentIds")
    return ids


def clean_participant_ids(ids: list[str], creator_id: str) -> list[str]:
    """The designated participants other than the creator, checked for count and repeats."""
    if len(set(ids)) != len(ids):
        raise BadUserInput("participantIds must not repeat a participant", field="participantIds")
    others = [i for i in ids if i != creator_id]
    if not others:
        raise BadUserInput(
            "designate at least one participant besides yourself", field="participantIds"
        )
    if len(others) + 1 > MAX_PARTICIPANTS:
        raise BadUserInput(
            f"a conversation has at most {MAX_PARTICIPANTS} participants, you included",
            field="participantIds",
        )
    return others


def clean_client_message_id(value: str | None) -> str | None:
    if value is None:
        return None
    require_unicode(value, "clientMessageId")
    if not 1 <= len(value) <= MAX_CLIENT_MESSAGE_ID_LENGTH or UNSAFE_CHARACTERS.search(value):
        raise BadUserInput(
            f"clientMessageId must be 1 to {MAX_CLIENT_MESSAGE_ID_LENGTH} printable characters",
            field="clientMessageId",
        )
    return value


def check_company_for_kind(kind: ConversationType, company: Company | None) -> None:
    """COMPANY and CONFIDENTIAL conversations need a company; PRIVATE ones have none."""
    if kind in COMPANY_KINDS and company is None:
        raise BadUserInput(
            f"companyId is required for a {kind.value} conversation", field="companyId"
        )
    if kind not in COMPANY_KINDS and company is not None:
        raise BadUserInput(
            "a PRIVATE conversation is not linked to a company: omit companyId",
            field="companyId",
        )
