"""Prometheus metrics, served at `/metrics` in the text format (SPEC §19), with `prometheus_client`.

Families (all prefixed `messager_`; docs/operations.md describes each):
- `graphql_operations_total{operation,type}` and `graphql_operation_duration_seconds{operation,
  type}`: operations by name (queries and mutations are timed; a subscription is counted when it
  starts, its life is not a latency);
- `graphql_errors_total{code}`: errors answered, by `extensions.code`;
- `http_requests_total{route,method,status}` and `http_request_duration_seconds{route}`
  (counted by the application's request-id middleware: `observe_http`);
- `websocket_connections` and `subscriptions_active{subscription}`: open now;
- `delivery_lag_seconds`: from a message's creation to its live delivery to a subscriber;
- `db_command_duration_seconds{command,outcome}`: every database command (a pymongo
  `CommandListener`);
- `email_outbox_depth`: emails waiting to be sent (0: the product sends no email yet).
Plus the library's process and Python collectors.

Operation names are the client's choice: a label per name would let anyone grow the server's
memory, so names are kept only while fewer than `MAX_OPERATION_NAMES` are known; later ones
count as `other`.

With `serve --workers N`, the parent points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory
before starting the workers (`multiprocess_dir`), each worker writes its values there, and any
worker's `/metrics` answers the sum over all of them: one scrape sees the whole server.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from pymongo import monitoring

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_OPERATION_NAMES = 500
OPERATION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

GRAPHQL_OPERATIONS = Counter(
    "messager_graphql_operations",
    "GraphQL operations received, by operation name and type.",
    ["operation", "type"],
)
GRAPHQL_DURATION = Histogram(
    "messager_graphql_operation_duration_seconds",
    "Time to answer a query or mutation, by operation name.",
    ["operation", "type"],
    buckets=LATENCY_BUCKETS,
)
GRAPHQL_ERRORS = Counter(
    "messager_graphql_errors", "GraphQL errors answered, by extensions.code.", ["code"]
)
HTTP_REQUESTS = Counter(
    "messager_http_requests",
    "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "messager_http_request_duration_seconds",
    "Time to answer an HTTP request (a WebSocket: its whole life is left out), by route.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
WEBSOCKET_CONNECTIONS = Gauge(
    "messager_websocket_connections",
    "WebSocket connections open now.",
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS_ACTIVE = Gauge(
    "messager_subscriptions_active",
    "GraphQL subscriptions running now, by root field.",
    ["subscription"],
    multiprocess_mode="livesum",
)
DELIVERY_LAG = Histogram(
    "messager_delivery_lag_seconds",
    "From a message's creation to its live delivery to one subscriber.",
    buckets=LATENCY_BUCKETS,
)
DB_COMMAND_DURATION = Histogram(
    "messager_db_command_duration_seconds",
    "Database commands, by command name and outcome (ok, failed).",
    ["command", "outcome"],
    buckets=DB_BUCKETS,
)
EMAIL_OUTBOX_DEPTH = Gauge(
    "messager_email_outbox_depth",
    "Emails waiting in the outbox (the product sends no email yet: always 0).",
    multiprocess_mode="max",
)
EMAIL_OUTBOX_DEPTH.set(0)

_known_operations: set[str] = set()
# Label children are looked up once: `labels()` costs more than the increment itself, on every
# request. Every key is bounded (operation labels, routes, statuses, command names).
_operation_children: dict[tuple[str, str], tuple[Any, Any]] = {}
_http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_command_children: dict[tuple[str, str], Any] = {}
_error_children: dict[str, Any] = {}


def operation_label(name: str | None) -> str:
    """A bounded label for a client-chosen operation name."""
    if not name:
        return "anonymous"
    if not OPERATION_NAME.fullmatch(name):
        return "invalid"
    if name not in _known_operations:
        if len(_known_operations) >= MAX_OPERATION_NAMES:
            return "other"
        _known_operations.add(name)
    return name


def observe_operation(name: str | None, kind: str, seconds: float | None) -> None:
    key = (operation_label(name), kind)
    children = _operation_children.get(key)
    if children is None:
        children = _operation_children[key] = (
            GRAPHQL_OPERATIONS.labels(*key),
            GRAPHQL_DURATION.labels(*key),
        )
    children[0].inc()
    if seconds is not None:
        children[1].observe(seconds)


def count_error(code: str) -> None:
    child = _error_children.get(code)
    if child is None:
        child = _error_children[code] = GRAPHQL_ERRORS.labels(code)
    child.inc()


@contextlib.contextmanager
def subscription_running(field: str) -> Iterator[None]:
    gauge = SUBSCRIPTIONS_ACTIVE.labels(field)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


@contextlib.contextmanager
def websocket_open() -> Iterator[None]:
    WEBSOCKET_CONNECTIONS.inc()
    try:
        yield
    finally:
        WEBSOCKET_CONNECTIONS.dec()


def observe_delivery(created_at: datetime) -> None:
    DELIVERY_LAG.observe(max((datetime.now(UTC) - created_at).total_seconds(), 0.0))


def _observe_command(command: str, outcome: str, micros: int) -> None:
    child = _command_children.get((command, outcome))
    if child is None:
        child = _command_children[(command, outcome)] = DB_COMMAND_DURATION.labels(command, outcome)
    child.observe(micros / 1e6)


class DatabaseCommandMetrics(monitoring.CommandListener):
    """Times every database command; the driver measures the duration itself."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        _observe_command(event.command_name, "ok", event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        _observe_command(event.command_name, "failed", event.duration_micros)


DATABASE_LISTENER = DatabaseCommandMetrics()


def observe_http(request: web.Request, status: int, started: float) -> None:
    """Count and time one HTTP answer (called by the application's request-id middleware)."""
    key = (_route_label(request), request.method, status)
    children = _http_children.get(key)
    if children is None:
        children = _http_children[key] = (
            HTTP_REQUESTS.labels(key[0], key[1], str(status)),
            HTTP_DURATION.labels(key[0]),
        )
    children[0].inc()
    if status != 101:  # a WebSocket's time is its whole life
        children[1].observe(time.perf_counter() - started)


def _route_label(request: web.Request) -> str:
    """The route's pattern (`/attachments/{attachment_id}`), never the client's path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _collect() -> bytes:
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def add_routes(app: web.Application, token: str | None) -> None:
    """`GET /metrics`; with a token, only for `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}" if token else None

    async def metrics_endpoint(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        if expected is not None and not hmac.compare_digest(given.encode(), expected.encode()):
            raise web.HTTPUnauthorized(text="/metrics needs Authorization: Bearer <metrics token>")
        return web.Response(body=_collect(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics_endpoint)


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """For `serve --workers N`: a directory the workers share their values through, set in the
    environment they inherit, removed when they are done."""
    path = tempfile.mkdtemp(prefix="messager-metrics-")
    previous = os.environ.get(MULTIPROCESS_ENV)
    os.environ[MULTIPROCESS_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_ENV, None)
        else:
            os.environ[MULTIPROCESS_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters still count)."""
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(pid)
