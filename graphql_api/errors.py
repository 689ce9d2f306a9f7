"""The product's expected failures, each carrying the `extensions.code` of SPEC §9.

Resolvers and services raise these; graphql-core copies an exception's `extensions` onto the
GraphQL error, and the masking extension (`schema.extensions`) lets them through while it hides
every other exception behind `INTERNAL_SERVER_ERROR`. Plain HTTP endpoints answer the same errors
as JSON with `error_response`, so every answer of the API carries the same envelope.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web


class ApiError(Exception):
    """An expected failure with a message a person can act on."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(ApiError):
    code = "FORBIDDEN"
    http_status = 403


class NotFound(ApiError):
    """Also what an unreadable id answers, so that ids never leak existence."""

    code = "NOT_FOUND"
    http_status = 404


class BadUserInput(ApiError):
    code = "BAD_USER_INPUT"
    http_status = 400


class UnsupportedMediaType(BadUserInput):
    """A body of the wrong content type (HTTP 415), coded like any other bad input."""

    http_status = 415


class PayloadTooLarge(ApiError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class RateLimited(ApiError):
    code = "RATE_LIMITED"
    http_status = 429


class ServiceUnavailable(ApiError):
    """The database does not answer; the client may retry shortly."""

    code = "SERVICE_UNAVAILABLE"
    http_status = 503


class RequestTimeout(ApiError):
    """A request stopped at its deadline (`Settings.request_timeout_seconds`)."""

    code = "REQUEST_TIMEOUT"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the request did not finish within {seconds:g} seconds and was stopped; ask for "
            "less (smaller pages) or try again (a write may or may not have been saved: resend "
            "it with the same clientMessageId)"
        )


class InternalError(ApiError):
    """A server fault already logged with its request id; the client sees only that id."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, request_id: str) -> None:
        super().__init__(f"Internal server error (request id {request_id}).", requestId=request_id)


def error_response(error: ApiError, **headers: str) -> web.Response:
    """The JSON answer of a plain HTTP endpoint for `error`: `{"error": {"code", "message"}}`."""
    return web.json_response(
        {"error": {"message": error.message, **error.extensions}},
        status=error.http_status,
        headers=headers,
    )
