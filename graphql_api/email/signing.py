"""Signed tokens of reply addresses and unsubscribe links (HMAC-SHA256 with the service secret).

- A reply address `reply+TOKEN@MAIL_DOMAIN` names one user and one conversation. Mail systems may
  change the case of an address's local part, so the token is lowercase base32 (no padding), and
  short enough for the 64 characters a local part may have: two 12-byte ids and a 10-byte tag.
- An unsubscribe link names one email (its outbox window). It works once: the outbox records its
  use, so a replay, or an old email's link after the user turned emails on again, changes nothing.
Neither expires: a reply may come days later, and access is checked again when it arrives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

REPLY_TAG_BYTES = 10
UNSUBSCRIBE_TAG_BYTES = 16
REPLY_PREFIX = "reply+"


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def _unb32(text: str) -> bytes | None:
    """The bytes of `text`, only if `text` is their one canonical spelling: the unused bits of
    the last character must be zero, so that a token is never accepted under another form."""
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        raw = base64.b32decode(padded)
    except (binascii.Error, ValueError):
        return None
    return raw if _b32(raw) == text.lower() else None


@dataclass(frozen=True, slots=True)
class EmailSigner:
    key: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> EmailSigner:
        return cls(hashlib.sha256(b"email-tokens:" + secret).digest())

    def _tag(self, purpose: bytes, payload: bytes, size: int) -> bytes:
        return hmac.new(self.key, purpose + b":" + payload, hashlib.sha256).digest()[:size]

    # -- reply addresses ------------------------------------------------------------------

    def reply_token(self, user_id: str, conversation_id: str) -> str:
        payload = bytes.fromhex(user_id) + bytes.fromhex(conversation_id)
        return _b32(payload + self._tag(b"reply", payload, REPLY_TAG_BYTES))

    def reply_address(self, user_id: str, conversation_id: str, domain: str) -> str:
        return f"{REPLY_PREFIX}{self.reply_token(user_id, conversation_id)}@{domain}"

    def read_reply_address(self, address: str, domain: str) -> tuple[str, str] | None:
        """(user id, conversation id) of a genuine reply address of `domain`, else None."""
        local, at, address_domain = address.strip().rpartition("@")
        if not at or address_domain.lower() != domain.lower():
            return None
        if not local.lower().startswith(REPLY_PREFIX):
            return None
        raw = _unb32(local[len(REPLY_PREFIX) :])
        if raw is None or len(raw) != 24 + REPLY_TAG_BYTES:
            return None
        payload, tag = raw[:24], raw[24:]
        if not hmac.compare_digest(tag, self._tag(b"reply", payload, REPLY_TAG_BYTES)):
            return None
        return payload[:12].hex(), payload[12:].hex()

    # -- unsubscribe links ----------------------------------------------------------------

    def unsubscribe_token(self, email_id: str) -> str:
        payload = email_id.encode()
        tag = self._tag(b"unsubscribe", payload, UNSUBSCRIBE_TAG_BYTES)
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _b32(tag)

    def read_unsubscribe_token(self, token: str) -> str | None:
        """The email (outbox window) id a genuine token names, else None."""
        encoded, dot, tag_text = token.partition(".")
        if not dot or len(token) > 200:
            return None
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            email_id = payload.decode()
        except (binascii.Error, ValueError):
            return None
        if base64.urlsafe_b64encode(payload).decode().rstrip("=") != encoded:
            return None  # not the canonical spelling of its bytes
        tag = _unb32(tag_text)
        expected = self._tag(b"unsubscribe", payload, UNSUBSCRIBE_TAG_BYTES)
        if tag is None or not hmac.compare_digest(tag, expected):
            return None
        return email_id
