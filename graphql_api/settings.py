"""Configuration read from the environment (SPEC §10), with pydantic-settings.

Every setting can also be passed to `Settings(...)` by field name, which is how the tests and the
command line override the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from graphql_api.ratelimit import Rate, RateLimiter


class Settings(BaseSettings):
    """The service's settings; environment names are `MESSAGER_<FIELD>` except `MONGODB_URI`."""

    model_config = SettingsConfigDict(env_prefix="MESSAGER_", populate_by_name=True, extra="ignore")

    mongodb_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("mongodb_uri", "MONGODB_URI")
    )
    """A MongoDB connection string; its path names the database (default `messager`).
    Unset: an embedded nx-27017 server is started under the data directory."""

    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    env: Literal["development", "production"] = "development"
    introspection: bool | None = None
    """Introspection and GraphiQL; default: on in development, off in production."""

    jwt_secret: SecretStr | None = None
    """HS256 secret; generated and kept in the data directory when unset."""
    jwt_public_key: str | None = None
    """PEM public key of an identity provider: when set, tokens are verified as RS256 with it."""

    db_timeout_ms: int = Field(default=10_000, gt=0)
    """Deadline of every database operation of a request."""

    public_url: str | None = None
    """The API's address as browsers reach it, for `Attachment.url`; default: the request's."""
    attachment_cleanup_interval_seconds: float = Field(default=3600.0, gt=0)
    """How often uploads never attached for 24 hours are looked for and removed."""

    rate_limits: bool = True
    """Per-user limits on writes; benchmarks that flood on purpose turn them off."""
    messages_per_minute: float = Field(default=120, gt=0)
    messages_burst: int = Field(default=30, gt=0)
    conversations_per_minute: float = Field(default=30, gt=0)
    conversations_burst: int = Field(default=10, gt=0)
    uploads_per_minute: float = Field(default=60, gt=0)
    uploads_burst: int = Field(default=20, gt=0)

    email_delay_seconds: float = Field(default=600.0, gt=0)
    """A notification still unread this long after it was created leads to an email; a user's
    notifications that come due in the same window of this length share one email."""
    app_url: str | None = None
    """The frontend's conversation page, with `{conversationId}`; default: the GraphiQL address."""
    smtp_url: SecretStr | None = None
    """`smtp://user:password@host:port` (STARTTLS when offered) or `smtps://...`; unset: emails
    are written to a Maildir under the data directory."""
    mail_from: str | None = None
    """The From of notification emails; default `Messager <notifications@MAIL_DOMAIN>`."""
    mail_domain: str = "localhost"
    """The domain of reply addresses (`reply+TOKEN@MAIL_DOMAIN`) and Message-IDs."""
    smtp_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the inbound SMTP listener for replies by email (`serve --smtp-port`); unset: none."""
    inbound_max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    """The largest reply email the listener accepts (SMTP SIZE)."""
    email_poll_seconds: float = Field(default=5.0, gt=0)
    """How often each serve process looks for emails coming due."""
    email_lease_seconds: float = Field(default=120.0, gt=0)
    """How long a claimed email is reserved for its sender; a crashed sender's claim expires."""
    email_retry_base_seconds: float = Field(default=30.0, gt=0)
    email_retry_max_seconds: float = Field(default=3600.0, gt=0)
    email_max_attempts: int = Field(default=12, gt=0)
    """Temporary failures are retried with exponential backoff up to this many attempts."""
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    email_senders: int = Field(default=4, gt=0)
    """Concurrent SMTP connections of each serve process."""

    legacy_graphql_ws: bool = False
    """Also accept the legacy `graphql-ws` WebSocket protocol (old Apollo clients)."""
    ws_connection_init_timeout_seconds: float = Field(default=10.0, gt=0)
    ws_heartbeat_seconds: float = Field(default=30.0, gt=0)

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed to call the API from a browser, comma-separated."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    def rate_limiter(self) -> RateLimiter:
        return RateLimiter(
            {
                "message": Rate(self.messages_per_minute, self.messages_burst),
                "conversation": Rate(self.conversations_per_minute, self.conversations_burst),
                "upload": Rate(self.uploads_per_minute, self.uploads_burst),
            },
            enabled=self.rate_limits,
        )

    @property
    def introspection_enabled(self) -> bool:
        if self.introspection is not None:
            return self.introspection
        return self.env == "development"

    @property
    def graphiql_url(self) -> str:
        return f"http://{self.host}:{self.port}/graphql"

    @property
    def base_url(self) -> str:
        """The API's address as browsers reach it (links in emails)."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def sender_address(self) -> str:
        return self.mail_from or f"Messager <notifications@{self.mail_domain}>"

    def conversation_link(self, conversation_id: str) -> str:
        """Where an email's link to a conversation points (`MESSAGER_APP_URL`)."""
        if not self.app_url:
            return (
                self.public_url.rstrip("/") + "/graphql" if self.public_url else self.graphiql_url
            )
        return self.app_url.replace("{conversationId}", conversation_id)

    @field_validator("app_url")
    @classmethod
    def _check_app_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("MESSAGER_APP_URL must be an http:// or https:// address")
        return value or None

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ValueError(
                    "MESSAGER_SMTP_URL must be smtp://host[:port] or smtps://host[:port]"
                )
            return value
        return None
