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
from graphql_api.rich_text import html_to_text, sanitize_html
from graphql_api.text import UNSAFE_CHARACTERS, require_unicode

MAX_SUBJECT_LENGTH = 200
MAX_BODY_BYTES = 100 * 1024
MAX_PARTICIPANTS = 100
MAX_ATTACHMENTS = 10
MAX_CLIENT_MESSAGE_ID_LENGTH = 100


def clean_subject(subject: str) -> str:
    require_unicode(subject, "subject")
    text = UNSAFE_CHARACTERS.sub(" ", unicodedata.normalize("NFC", subject))
    text = re.sub(r"\s+", " ", text).strip()
    if not 1 <= len(text) <= MAX_SUBJECT_LENGTH:
        raise BadUserInput(f"subject must be 1 to {MAX_SUBJECT_LENGTH} characters", field="subject")
    return text


def clean_body(body: str, attachment_count: int) -> tuple[str, str]:
    """(sanitized HTML, plain text) of a message body."""
    if len(require_unicode(body, "body").encode("utf-8")) > MAX_BODY_BYTES:
        raise BadUserInput(
            f"body must be at most {MAX_BODY_BYTES // 1024} KB of HTML", field="body"
        )
    sanitized = sanitize_html(body)
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
