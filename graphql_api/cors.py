"""Cross-origin access for browser frontends on other origins (SPEC §19).

Only the exact origins of `MESSAGER_CORS_ORIGINS` (scheme, host and port as the browser sends
them: `http://localhost:3000` is not `http://127.0.0.1:3000`), never a wildcard. No credentials:
the API authenticates with a bearer token, never a cookie. Browser code may read the headers a
frontend acts on: `Retry-After` (back off after RATE_LIMITED), `Content-Disposition` (a download's
file name), `Content-Range` (partial downloads) and `X-Request-Id` (what to quote to support).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import aiohttp_cors
from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

ALLOWED_HEADERS = ("Authorization", "Content-Type", "Range")
EXPOSED_HEADERS = (
    "X-Request-Id",
    "Retry-After",
    "Content-Disposition",
    "Content-Range",
    "Accept-Ranges",
)
PREFLIGHT_MAX_AGE_SECONDS = 600


def setup_cors(
    app: web.Application, routes: Iterable[AbstractRoute], origins: Sequence[str]
) -> None:
    """Allow `origins` on `routes` (aiohttp-cors refuses "*" routes: SPEC §12)."""
    cors = aiohttp_cors.setup(
        app,
        defaults={
            origin: aiohttp_cors.ResourceOptions(
                allow_credentials=False,
                allow_headers=ALLOWED_HEADERS,
                expose_headers=EXPOSED_HEADERS,
                allow_methods=("GET", "POST"),
                max_age=PREFLIGHT_MAX_AGE_SECONDS,
            )
            for origin in origins
        },
    )
    for route in routes:
        cors.add(route)


def describe_origins(origins: Sequence[str]) -> str:
    """The start-up banner's line about browser access."""
    if not origins:
        return (
            "CORS: no other origin may call the API from a browser "
            "(set MESSAGER_CORS_ORIGINS, e.g. http://localhost:3000)"
        )
    return f"CORS: browser pages allowed from {', '.join(origins)} (exact origins)"
