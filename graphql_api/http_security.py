"""Security headers on every answer, and signed links kept out of the access log (issue 20).

Every answer carries:
- `Content-Security-Policy`: an API answer (JSON, a download) loads nothing and may not be framed;
- `X-Frame-Options: DENY`, the same for browsers that ignore `frame-ancestors`;
- `Referrer-Policy: no-referrer`: a signed attachment link never leaves in a `Referer`;
- `X-Content-Type-Options: nosniff`;
- `Server: messager`, in place of aiohttp's, which names its own and Python's versions (also on
  the answers aiohttp writes itself, to malformed requests: see `hide_server_software`).

The GraphiQL page (development, or with introspection on) has its own policy, built here from
`GRAPHIQL_ASSETS`, where Strawberry's page loads React, GraphiQL and their styles: edit that one
line if the assets come from elsewhere (served by this API: `'self'`). Its inline script is
allowed by its hash, computed from the page as served, so a new Strawberry keeps working.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re

from aiohttp import web, web_response

SERVER_NAME = "messager"
GRAPHIQL_ASSETS = "'self'"  # served by the API itself (graphql_api/graphiql)

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def graphiql_policy(page: str) -> str:
    """The policy of the GraphiQL page `page`: its assets, its inline scripts by hash, requests
    to this API only (WebSockets included: browsers count ws: to the same host as 'self')."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {GRAPHIQL_ASSETS} {hashes}",
            # GraphiQL sets style attributes from its scripts; its fonts are data: URLs.
            f"style-src {GRAPHIQL_ASSETS} 'unsafe-inline'",
            f"font-src {GRAPHIQL_ASSETS} data:",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


async def add_security_headers(_: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the headers above, unless the handler chose its own policy."""
    response.headers.setdefault("Content-Security-Policy", API_POLICY)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)


def hide_server_software() -> None:
    """Make every answer of this process say `Server: messager`. aiohttp has no option for it:
    responses take the default from this module name when they are sent, including the 400s it
    writes for malformed requests, which never reach the application's signals."""
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]


# `sig=` of a signed attachment link (graphql_api.attachments.signing), wherever it is logged.
_SIGNATURE = re.compile(r"(?<=[?&]sig=)[^&\s\"]+")
REDACTED = "REDACTED"


class RedactSignatures(logging.Filter):
    """Replaces the signature of signed links in access-log records: a link is a credential
    until it expires, and logs are read by more people than the links were meant for."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _SIGNATURE.sub(REDACTED, record.msg)
        # aiohttp also passes each field as a record attribute, for structured log handlers.
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and "sig=" in value:
                setattr(record, name, _SIGNATURE.sub(REDACTED, value))
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, str) and "sig=" in item:
                        value[key] = _SIGNATURE.sub(REDACTED, item)
        return True


def redact_access_log(logger: logging.Logger | None = None) -> None:
    """Install `RedactSignatures` on aiohttp's access logger, once."""
    logger = logger or logging.getLogger("aiohttp.access")
    if not any(isinstance(f, RedactSignatures) for f in logger.filters):
        logger.addFilter(RedactSignatures())
