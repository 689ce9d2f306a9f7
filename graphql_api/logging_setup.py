"""Log lines for operators: text by default, JSON lines with `MESSAGER_LOG_FORMAT=json` (SPEC §19).

Every line written while a request is handled carries that request's id (the `X-Request-Id` the
client received): the HTTP middleware puts it in a context variable, which tasks started by the
request (a WebSocket's subscriptions) inherit, and a filter copies it onto each record. One
JSON object per line:

    {"time": "2026-11-27T04:43:12.155+00:00", "level": "ERROR", "logger": "graphql_api.errors",
     "message": "...", "process": 4242, "request_id": "9f0c...", "exception": "Traceback ..."}

Access lines (`logger: "aiohttp.access"`) add `method`, `path` (never the query string, which
may hold a signed download link), `status` and `duration_ms`.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "messager_request_id", default=None
)
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
WORKER_TEXT_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
ACCESS_FIELDS = ("method", "path", "status", "duration_ms")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being handled, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(
    log_format: str = "text", *, worker: bool = False, stream: TextIO | None = None
) -> None:
    """One handler on the root logger, on stderr (or `stream`), in the chosen format."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(WORKER_TEXT_FORMAT if worker else TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


class AccessLogger(AbstractAccessLogger):
    """One line per answered request, with its request id and without its query string."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        duration_ms = round(time * 1000, 1)
        self.logger.info(
            "%s %s %s %.1f ms",
            request.method,
            request.path,
            response.status,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": duration_ms,
                # Set by the middleware in this request's task (aiohttp runs one per request).
                "request_id": REQUEST_ID.get(),
            },
        )
