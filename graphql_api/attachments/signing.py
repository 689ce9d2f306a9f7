"""Short-lived signed download links (`Attachment.url`) that work in a plain browser link.

A link names the attachment, the user it was made for and an expiry, signed with HMAC-SHA256. A
download through a link still asks the access policy, for that user and with its current
favorites: a link outlives neither its expiry nor its user's access.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlencode

URL_TTL_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class UrlSigner:
    key: bytes

    def _signature(self, attachment_id: str, user_id: str, expires: int) -> str:
        message = f"attachment:{attachment_id}:{user_id}:{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def sign(
        self, base_url: str, attachment_id: str, user_id: str, ttl_seconds: int = URL_TTL_SECONDS
    ) -> str:
        expires = int(time.time()) + ttl_seconds
        query = urlencode(
            {"u": user_id, "exp": expires, "sig": self._signature(attachment_id, user_id, expires)}
        )
        return f"{base_url.rstrip('/')}/attachments/{attachment_id}?{query}"

    def verify(self, attachment_id: str, user_id: str, expires: str, signature: str) -> bool:
        """Whether the link is genuine and not expired."""
        if not expires.isdigit() or int(expires) < time.time():
            return False
        expected = self._signature(attachment_id, user_id, int(expires))
        return hmac.compare_digest(expected, signature)
