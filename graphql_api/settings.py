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

from graphql_api.database import WriteConcernSetting
from graphql_api.ratelimit import Rate, RateLimiter


def exact_origin(value: str) -> str:
    """`scheme://host[:port]` as a browser sends it in `Origin` (a trailing slash is dropped);
    a wildcard, a path or a missing scheme is refused, since it would never match or match
    too much."""
    origin = value.rstrip("/")
    parts = urlsplit(origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "*" in origin
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise ValueError(
            f"{value!r} is not an exact origin: write scheme://host[:port], "
            "e.g. http://localhost:3000 (no wildcard, no path)"
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


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
    jwt_issuer: str | None = None
    """The `iss` every token must carry (the identity provider's issuer URL), when set."""
    jwt_audience: str | None = None
    """The `aud` every token must name (this API's identifier at the provider), when set."""
    link_secret: SecretStr | None = None
    """Signs attachment download links. Every machine behind a load balancer needs the same one:
    default, derived from `jwt_secret`; with RS256 tokens, generated in the data directory (one
    machine only)."""

    db_timeout_ms: int = Field(default=10_000, gt=0)
    """Deadline of every database operation of a request (never of index builds)."""
    write_concern: str = Field(default="majority", pattern=r"^(majority|[0-9]+)$")
    """`w` of every write: `majority` (a fail-over never rolls back an acknowledged write), or
    a number of members. A `w` in `MONGODB_URI` wins."""
    write_journal: bool = True
    """Whether writes wait for the journal (`j`). A `journal` in `MONGODB_URI` wins."""
    change_streams: Literal["auto", "required"] = "auto"
    """`auto`: live events cross processes when the deployment offers change streams, and a
    standalone server runs with this process's events only. `required`: /readyz stays 503 until
    change streams are open (a replica set or sharded cluster is expected)."""

    user_cache_size: int = Field(default=10_000, ge=0)
    """Users each process keeps in memory (0: none); only while change streams report every
    change to them (docs/architecture.md)."""
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    """Deadline of a whole query or mutation: past it, its work is cancelled and it answers
    `REQUEST_TIMEOUT`."""
    body_timeout_seconds: float = Field(default=20.0, gt=0)
    """A request body silent or slower than `body_min_rate` for this long answers 408."""
    body_min_rate: float = Field(default=500.0, gt=0)
    """Bytes per second a request body must arrive at, over each `body_timeout_seconds`."""
    max_query_cost: int = Field(default=5000, gt=0)
    """The largest cost of an operation (`schema/query_cost.py`: about the number of objects
    its answer may hold); a costlier one answers `QUERY_TOO_COSTLY` before it runs."""

    public_url: str | None = None
    """The API's address as browsers reach it, for `Attachment.url`; default: the request's."""
    attachment_cleanup_interval_seconds: float = Field(default=3600.0, gt=0)
    """How often uploads never attached for 24 hours are looked for and removed."""

    recovery_interval_seconds: float = Field(default=30.0, gt=0)
    """How often the crash recovery runs (it also runs at start-up): interrupted notification
    fan-outs, numbers taken by replies never stored, conversations never created."""
    recovery_grace_seconds: float = Field(default=60.0, gt=0)
    """How long a write may still be in progress on a live process: the recovery completes or
    undoes only what is older (far above `db_timeout_ms`, the deadline of each step)."""

    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    """How often conversations past their firm's `retentionYears` are looked for and purged
    (SPEC §17; the first pass runs a minute after start-up, or after this interval if shorter)."""

    edit_window_seconds: float = Field(default=24 * 3600.0, gt=0)
    """How long after sending its author may edit or delete a message (SPEC §14)."""

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
    """Exact origins allowed to call the API from a browser, comma-separated
    (`http://localhost:3000,https://app.example.com`); never a wildcard."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        return [exact_origin(origin) for origin in origins]

    log_format: Literal["text", "json"] = "text"
    """`json`: one JSON object per log line, with the request id (`MESSAGER_LOG_FORMAT`)."""
    metrics: bool = True
    """Measure, and serve `/metrics` in the Prometheus text format; false: neither."""
    metrics_token: SecretStr | None = None
    """When set, `/metrics` answers only `Authorization: Bearer <this token>`."""

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
    def write_concern_setting(self) -> WriteConcernSetting:
        w = int(self.write_concern) if self.write_concern.isdigit() else self.write_concern
        return WriteConcernSetting(w=w, journal=self.write_journal)

    def write_concern_document(self) -> dict[str, object]:
        """The write concern every write command carries (unless the URI sets its own)."""
        return self.write_concern_setting.document()

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
