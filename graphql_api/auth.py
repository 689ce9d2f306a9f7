"""Bearer JWT authentication (SPEC §10): issuing tokens for the CLI and verifying them per request.

Tokens are HS256 with `MESSAGER_JWT_SECRET` (generated once and kept in the data directory when
unset), or RS256 tokens of an identity provider when `MESSAGER_JWT_PUBLIC_KEY` is set. `sub` is the
user id; `exp` is required. With `MESSAGER_JWT_ISSUER` / `MESSAGER_JWT_AUDIENCE` set, a token must
also carry that `iss` and name that `aud` (PyJWT checks both): an identity provider signs tokens
for every application it serves, and only these claims say a token was meant for this API.
Tokens are read only from the `Authorization` header (or the `connection_init` payload of a
WebSocket), never from query strings or cookies.

Attachment download links are signed with a key derived from `MESSAGER_LINK_SECRET`, else from
the HS256 secret; with RS256 tokens and no link secret, from a secret generated in the data
directory, which only this machine knows (a warning says so): machines behind a load balancer
must share `MESSAGER_LINK_SECRET` to accept each other's links.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from pathlib import Path

import jwt

from graphql_api.errors import Unauthenticated
from graphql_api.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 12 * 3600
SECRET_FILE = "jwt_secret"


HTTP_CREDENTIAL = "Authorization header"
WEBSOCKET_CREDENTIAL = "Authorization in the connection_init payload"


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


CANNOT_ISSUE = (
    "tokens come from the identity provider in RS256 mode (MESSAGER_JWT_PUBLIC_KEY is set): "
    "messager cannot sign them without the provider's private key"
)


class CannotIssueTokens(Exception):
    """RS256 mode: tokens come from the identity provider, which alone holds the private key."""


def warn_if_unbound(settings: Settings) -> None:
    """Log, at start-up, that RS256 tokens are not bound to this API by issuer and audience."""
    if settings.jwt_public_key and not (settings.jwt_issuer and settings.jwt_audience):
        log.warning(
            "RS256 tokens are verified without MESSAGER_JWT_ISSUER and MESSAGER_JWT_AUDIENCE: "
            "tokens the identity provider signs for other applications are accepted too, and "
            "tokens that name an audience are refused"
        )


class TokenService:
    """Issues and verifies the API's bearer tokens."""

    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        if settings.jwt_public_key:
            self.algorithm = "RS256"
            self._verify_key: str = settings.jwt_public_key
            self._sign_key: str | None = None  # the identity provider signs
            link_secret = settings.link_secret.get_secret_value() if settings.link_secret else None
            if link_secret is None:
                log.warning(
                    "RS256 tokens and no MESSAGER_LINK_SECRET: attachment links are signed with "
                    "a secret of this data directory, which other machines do not accept"
                )
                link_secret = load_or_create_secret(settings.data_dir)
        else:
            secret = (
                settings.jwt_secret.get_secret_value()
                if settings.jwt_secret
                else load_or_create_secret(settings.data_dir)
            )
            self.algorithm = "HS256"
            self._verify_key = self._sign_key = secret
            link_secret = (
                settings.link_secret.get_secret_value() if settings.link_secret else secret
            )
        self.url_signing_key = hashlib.sha256(b"attachment-urls:" + link_secret.encode()).digest()

    @property
    def can_issue(self) -> bool:
        return self._sign_key is not None

    def issue(self, user_id: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> str:
        if self._sign_key is None:
            raise CannotIssueTokens(CANNOT_ISSUE)
        now = int(time.time())
        claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
        if self.issuer:
            claims["iss"] = self.issuer
        if self.audience:
            claims["aud"] = self.audience
        return jwt.encode(claims, self._sign_key, algorithm=self.algorithm)

    def verify(self, token: str) -> str:
        """The token's user id; `Unauthenticated` for a bad, expired or incomplete token."""
        return self.verify_claims(token)[0]

    def verify_claims(self, token: str) -> tuple[str, int]:
        """(user id, expiry as epoch seconds) of a valid token."""
        required = ["exp", "sub"]
        required += ["iss"] if self.issuer else []
        required += ["aud"] if self.audience else []
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token has expired; sign in again") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token is invalid") from exc
        subject, expires = claims["sub"], claims["exp"]
        if not isinstance(subject, str) or not isinstance(expires, int | float):
            raise Unauthenticated("token is invalid")
        return subject, int(expires)

    def header_claims(self, header: str | None, source: str = HTTP_CREDENTIAL) -> tuple[str, int]:
        """(user id, expiry) of an `Authorization: Bearer <token>` value; `source` names where
        the client puts it, so that the message says what to fix (a WebSocket client sets no
        header: its token goes in the `connection_init` payload)."""
        if not header:
            raise Unauthenticated(f"missing {source}: send 'Bearer <token>'")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(f"{source} must be 'Bearer <token>'")
        return self.verify_claims(token.strip())
