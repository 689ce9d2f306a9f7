"""Every HTTP error answer of the API has a JSON body (SPEC §19).

aiohttp answers unknown routes, wrong methods and oversized bodies with plain text, and so does
Strawberry's view for a request it cannot read (malformed JSON, an unknown operation name, a
mutation over GET). This middleware gives those answers a JSON body, keeping their status and
headers (`Allow`, `Retry-After`, `Content-Range`...):
- on `/graphql`, a GraphQL response, which GraphQL clients read:
  `{"errors": [{"message", "extensions": {"code", "requestId"}}]}`;
- elsewhere the shape the attachment routes use: `{"error": {"code", "message", "requestId"}}`.
Answers that already are JSON, streams and WebSockets pass untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

from graphql_api.keys import REQUEST_ID

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

GRAPHQL_PATH = "/graphql"
MAX_MESSAGE_CHARS = 300

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    416: "RANGE_NOT_SATISFIABLE",
    429: "RATE_LIMITED",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}
# Headers of the plain answer that describe its body, not the error: the JSON body has its own.
BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


def error_code(status: int) -> str:
    return CODES.get(status, f"HTTP_{status}")


def error_body(request: web.Request, status: int, message: str) -> dict[str, object]:
    code = error_code(status)
    request_id = request.get(REQUEST_ID)
    if request.path == GRAPHQL_PATH:
        extensions = {"code": code, "requestId": request_id}
        return {"errors": [{"message": message, "extensions": extensions}]}
    return {"error": {"code": code, "message": message, "requestId": request_id}}


def _message(status: int, text: str | None) -> str:
    text = (text or "").strip()
    prefix = f"{status}: "
    if text.startswith(prefix):  # aiohttp's "404: Not Found"
        text = text[len(prefix) :]
    if not text:
        try:
            text = HTTPStatus(status).phrase
        except ValueError:
            text = "Error"
    return text[:MAX_MESSAGE_CHARS]


def _as_json(
    request: web.Request, status: int, text: str | None, headers: dict[str, str]
) -> web.Response:
    kept = {k: v for k, v in headers.items() if k.lower() not in BODY_HEADERS}
    return web.json_response(
        error_body(request, status, _message(status, text)), status=status, headers=kept
    )


def _is_plain_error(response: web.StreamResponse) -> bool:
    return (
        response.status >= 400
        and isinstance(response, web.Response)  # not a stream, a file or a WebSocket
        and not response.prepared
        and response.content_type != "application/json"
    )


@web.middleware
async def json_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise  # redirects are not errors; an answer already in JSON stays as it is
        return _as_json(request, exc.status, exc.text, dict(exc.headers))
    if _is_plain_error(response):
        assert isinstance(response, web.Response)
        return _as_json(request, response.status, response.text, dict(response.headers))
    return response
