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
    def introspection_enabled(self) -> bool:
        if self.introspection is not None:
            return self.introspection
        return self.env == "development"

    @property
    def graphiql_url(self) -> str:
        return f"http://{self.host}:{self.port}/graphql"
