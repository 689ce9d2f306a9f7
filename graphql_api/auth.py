"""Bearer JWT authentication (SPEC §10): issuing tokens for the CLI and verifying them per request.

Tokens are HS256 with `MESSAGER_JWT_SECRET` (generated once and kept in the data directory when
unset), or RS256 tokens of an identity provider when `MESSAGER_JWT_PUBLIC_KEY` is set. `sub` is the
user id; `exp` is required. Tokens are read only from the `Authorization` header (or the
`connection_init` payload of a WebSocket), never from query strings or cookies.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path

import jwt

from graphql_api.errors import Unauthenticated
from graphql_api.settings import Settings

DEFAULT_TTL_SECONDS = 12 * 3600
SECRET_FILE = "jwt_secret"


def load_or_create_secret(data_dir: Path) -> str:
    """The HS256 secret kept in the data directory, created (readable by its owner only) once."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(secret)
    tmp.replace(path)
    return secret


class TokenService:
    """Issues and verifies the API's bearer tokens."""

    def __init__(self, settings: Settings) -> None:
        if settings.jwt_public_key:
            self.algorithm = "RS256"
            self._verify_key: str = settings.jwt_public_key
            self._sign_key: str | None = None  # the identity provider signs
            self.url_signing_key = load_or_create_secret(settings.data_dir).encode()
        else:
            secret = (
                settings.jwt_secret.get_secret_value()
                if settings.jwt_secret
                else load_or_create_secret(settings.data_dir)
            )
            self.algorithm = "HS256"
            self._verify_key = self._sign_key = secret
            self.url_signing_key = hashlib.sha256(b"attachment-urls:" + secret.encode()).digest()

    def issue(self, user_id: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> str:
        if self._sign_key is None:
            raise RuntimeError("tokens are issued by the identity provider (RS256 mode)")
        now = int(time.time())
        claims = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
        return jwt.encode(claims, self._sign_key, algorithm=self.algorithm)

    def verify(self, token: str) -> str:
        """The token's user id; `Unauthenticated` for a bad, expired or incomplete token."""
        return self.verify_claims(token)[0]

    def verify_claims(self, token: str) -> tuple[str, int]:
        """(user id, expiry as epoch seconds) of a valid token."""
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token has expired; sign in again") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token is invalid") from exc
        subject, expires = claims["sub"], claims["exp"]
        if not isinstance(subject, str) or not isinstance(expires, int | float):
            raise Unauthenticated("token is invalid")
        return subject, int(expires)

    def header_claims(self, header: str | None) -> tuple[str, int]:
        """(user id, expiry) of an `Authorization: Bearer <token>` header value."""
        if not header:
            raise Unauthenticated("missing Authorization header: send 'Bearer <token>'")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization header must be 'Bearer <token>'")
        return self.verify_claims(token.strip())
