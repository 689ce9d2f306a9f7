"""The aiohttp application: routes, middlewares, CORS, and the resources in `cleanup_ctx`.

`init_app(settings)` needs `settings.mongodb_uri`; the command line resolves the embedded server
into it first, so the application itself has one code path for MongoDB and nx-27017.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pymongo
from aiohttp import ClientConnectionResetError, WSCloseCode, WSMsgType, web
from pymongo.errors import PyMongoError
from pymongo.monitoring import CommandListener
from strawberry.aiohttp.views import AiohttpWebSocketAdapter, GraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from graphql_api import graphiql, json_codec, metrics, sanitizer_pool
from graphql_api.attachments import http as attachments_http
from graphql_api.attachments.cleanup import attachment_cleanup_ctx
from graphql_api.auth import WEBSOCKET_CREDENTIAL, warn_if_unbound
from graphql_api.body_timeout import body_timeout_middleware
from graphql_api.compliance import http as compliance_http
from graphql_api.compliance.audit import CLIENT_ADDRESS
from graphql_api.compliance.retention import retention_ctx
from graphql_api.context import Context, authenticate_until, build_context
from graphql_api.cors import setup_cors
from graphql_api.database import connect, database_of
from graphql_api.email import unsubscribe as email_unsubscribe
from graphql_api.email.inbound import inbound_smtp_ctx
from graphql_api.email.job import email_ctx
from graphql_api.errors import ApiError, Forbidden, InternalError, RequestTimeout, error_response
from graphql_api.http_errors import json_errors_middleware
from graphql_api.http_security import (
    add_security_headers,
    graphiql_policy,
    hide_server_software,
    redact_access_log,
)
from graphql_api.keys import (
    LISTENERS,
    READINESS,
    REQUEST_ID,
    SERVICES,
    SETTINGS,
    WEBSOCKETS,
    WS_INITIALIZED,
)
from graphql_api.logging_setup import REQUEST_ID as logged_request_id
from graphql_api.readiness import Readiness
from graphql_api.realtime.lifecycle import realtime_ctx
from graphql_api.recovery import recovery_ctx
from graphql_api.schema_setup import schema_ctx
from graphql_api.services import Services
from graphql_api.settings import Settings
from graphql_api.shutdown import bounded, cancel_and_wait
from schema.schema import build_schema

log = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 2.0
MAX_BODY_BYTES = 1024 * 1024  # /graphql bodies; uploads stream and count their own bytes
WS_MAX_MESSAGE_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id, echoed in `X-Request-Id` and in masked errors; count its
    answer for `/metrics` (here rather than in one more middleware: each layer costs)."""
    started = time.perf_counter()
    measured = request.app[SETTINGS].metrics
    request_id = request[REQUEST_ID] = uuid.uuid4().hex
    logged_request_id.set(request_id)  # every log line of this request carries it
    CLIENT_ADDRESS.set(request.remote or "unknown")  # audit records say where actions came from
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # 404 of unknown routes, refused CORS preflights...
        exc.headers["X-Request-Id"] = request_id
        if measured:
            metrics.observe_http(request, exc.status, started)
        raise
    except Exception:
        log.exception(
            "unexpected error (request %s) on %s %s", request_id, request.method, request.path
        )
        response = error_response(InternalError(request_id))
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    if measured:
        metrics.observe_http(request, response.status, started)
    return response


class FastJsonWebSocket(AiohttpWebSocketAdapter):
    """Protocol messages encoded by `json_codec` (a shared event's payload once for all its
    subscribers), sent as the text frames the protocols require."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_frame(json_codec.encode_frame(message), WSMsgType.TEXT)
        except (RuntimeError, ClientConnectionResetError) as exc:
            raise WebSocketDisconnected from exc


class MessagerGraphQLView(GraphQLView[Context, None]):
    """Strawberry's aiohttp view with the service's context and WebSocket authentication;
    answers and frames encoded by `json_codec` (orjson)."""

    websocket_adapter_class = FastJsonWebSocket  # type: ignore[assignment]

    def __init__(self, settings: Settings) -> None:
        protocols = [GRAPHQL_TRANSPORT_WS_PROTOCOL]
        if settings.legacy_graphql_ws:
            protocols.append(GRAPHQL_WS_PROTOCOL)
        super().__init__(
            schema=build_schema(
                introspection=settings.introspection_enabled,
                max_query_cost=settings.max_query_cost,
                request_timeout_seconds=settings.request_timeout_seconds,
                measured=settings.metrics,
            ),
            graphql_ide="graphiql" if settings.introspection_enabled else None,
            subscription_protocols=protocols,
            connection_init_wait_timeout=timedelta(
                seconds=settings.ws_connection_init_timeout_seconds
            ),
            # Strawberry's own handshake check: without it, it refuses every other origin.
            allowed_origins=list(settings.cors_origins),
        )
        self.settings = settings
        self.graphiql_policy = graphiql_policy(graphiql.PAGE)

    async def render_graphql_ide(self, request: web.Request) -> web.Response:
        # Our page, whose every file comes from this server (Strawberry's loads a CDN).
        return web.Response(
            text=graphiql.PAGE,
            content_type="text/html",
            headers={"Content-Security-Policy": self.graphiql_policy},
        )

    def encode_json(self, data: object) -> bytes:
        return json_codec.encode(data)

    def create_response(self, response_data: Any, sub_response: web.Response) -> web.Response:
        # The encoded bytes as the body (Strawberry's own decodes them back into a str first).
        sub_response.body = self.encode_json(response_data)
        sub_response.content_type = "application/json"
        sub_response.charset = "utf-8"
        return sub_response

    def decode_json(self, data: str | bytes) -> object:
        try:
            return json.loads(data)
        except RecursionError:
            # Variables or extensions nested ~1,000 deep exhaust Python's stack (issue 20).
            raise NestedTooDeeply("nested too deeply", "", 0) from None

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return super().parse_json(data)
        except Exception as error:
            # Strawberry answers undecodable JSON with a plain-text 400: this one gets a code.
            if isinstance(error.__cause__, NestedTooDeeply):
                raise web.HTTPBadRequest(
                    text=json.dumps(
                        {
                            "errors": [
                                {
                                    "message": "the request's JSON is nested too deeply: "
                                    "variables and extensions must be flatter",
                                    "extensions": {"code": "BAD_USER_INPUT"},
                                }
                            ]
                        }
                    ),
                    content_type="application/json",
                ) from None
            raise

    async def get_context(self, request: web.Request, response: web.StreamResponse) -> Context:
        is_websocket = isinstance(response, web.WebSocketResponse)
        return await build_context(
            request.app[SERVICES],
            request_id=request.get(REQUEST_ID) or uuid.uuid4().hex,
            # A WebSocket authenticates in `connection_init` (browsers cannot set headers on it).
            authorization=None if is_websocket else request.headers.get("Authorization"),
            request=request,
            response=response,
        )

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if self.is_websocket_request(request):
            if not _origin_allowed(request, self.settings):
                # Browsers send cookies, never our bearer token, on a WebSocket; refusing
                # foreign origins still stops cross-site pages from even opening one.
                return error_response(Forbidden("origin not allowed"))
            if not self.settings.metrics:
                return await super().__call__(request)
            with metrics.websocket_open():
                return await super().__call__(request)
        # The whole request has a deadline, loading the viewer included: past it, its work is
        # cancelled and its connections go back to the pool (issue 20).
        seconds = self.settings.request_timeout_seconds
        try:
            async with asyncio.timeout(seconds) as deadline:
                return await super().__call__(request)
        except TimeoutError:
            if not deadline.expired():
                raise
        timeout = RequestTimeout(seconds)
        return web.json_response(
            {
                "data": None,
                "errors": [{"message": timeout.message, "extensions": timeout.extensions}],
            }
        )

    async def create_websocket_response(
        self, request: web.Request, subprotocol: str | None
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            protocols=[subprotocol] if subprotocol else [],
            heartbeat=self.settings.ws_heartbeat_seconds,  # pings keep proxies from idling out
            max_msg_size=WS_MAX_MESSAGE_BYTES,
        )
        await ws.prepare(request)
        request.app[WEBSOCKETS].add(ws)
        if subprotocol == GRAPHQL_WS_PROTOCOL:
            # Strawberry's legacy handler has no connection_init timeout: enforce the same one.
            request[WS_INITIALIZED] = asyncio.Event()
            asyncio.get_running_loop().create_task(
                _close_unless_initialized(
                    ws, request[WS_INITIALIZED], self.settings.ws_connection_init_timeout_seconds
                )
            )
        return ws

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        authorization = params.get("Authorization") or params.get("authorization")
        try:
            user, expires = await authenticate_until(
                context.services,
                authorization if isinstance(authorization, str) else None,
                WEBSOCKET_CREDENTIAL,
            )
        except ApiError as error:
            # The protocol's "unauthorized" code (4401), not Strawberry's 4403: clients such as
            # graphql-ws retry a 4403 but stop at 4401, which is right for a bad token.
            if isinstance(context.response, web.WebSocketResponse):
                reason = f"Unauthorized: {error.message}"[:120]
                await context.response.close(code=4401, message=reason.encode())
            raise ConnectionRejectionError(
                {"message": error.message, "code": error.code}
            ) from error
        context.replace_viewer(user)
        if isinstance(context.response, web.WebSocketResponse):
            asyncio.get_running_loop().create_task(_close_at_expiry(context.response, expires))
        if context.request is not None and WS_INITIALIZED in context.request:
            context.request[WS_INITIALIZED].set()
        return None


class NestedTooDeeply(json.JSONDecodeError):
    """JSON too deep to decode; a WebSocket treats it as any message that is not JSON."""


def _origin_allowed(request: web.Request, settings: Settings) -> bool:
    """No Origin (not a browser), the API's own origin (GraphiQL), or a configured one."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    own = f"{request.scheme}://{request.host}"
    return origin == own or origin in settings.cors_origins


async def _close_at_expiry(ws: web.WebSocketResponse, expires: int) -> None:
    """A connection lives no longer than its token: at expiry it closes with 4401."""
    await asyncio.sleep(max(expires - time.time(), 0))
    if not ws.closed:
        await ws.close(code=4401, message=b"Unauthorized: token expired")


async def _close_websockets(app: web.Application) -> None:
    """On shutdown, tell every connected client that the server is going away (1001)."""
    for ws in list(app[WEBSOCKETS]):
        if not ws.closed:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


async def _close_unless_initialized(
    ws: web.WebSocketResponse, initialized: asyncio.Event, seconds: float
) -> None:
    try:
        async with asyncio.timeout(seconds):
            await initialized.wait()
    except TimeoutError:
        if not ws.closed:
            await ws.close(code=4408, message=b"Connection initialisation timeout")


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers a ping through the pool requests use, 503 otherwise.

    The ping shares the requests' pool on purpose: a process whose pool cannot give it a
    connection within the bound (exhausted, or wedged) is as unable to serve as one whose
    database is down, and an orchestrator should take it out or restart it. The asyncio bound
    also covers waits that PyMongo's own deadline does not (its pool's lock)."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            with pymongo.timeout(READINESS_TIMEOUT_SECONDS):
                await request.app[SERVICES].db.command("ping")
    except (PyMongoError, TimeoutError):
        return web.json_response(
            {"status": "unavailable", "reason": "database does not answer"}, status=503
        )
    problems = request.app[READINESS].problems  # start-up work not done (graphql_api/readiness.py)
    if problems:
        reason = "; ".join(f"{part}: {why}" for part, why in problems.items())
        return web.json_response({"status": "unavailable", "reason": reason}, status=503)
    return web.json_response({"status": "ready"})


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.mongodb_uri:
        raise RuntimeError(
            "init_app needs settings.mongodb_uri (the CLI resolves the embedded one)"
        )
    client = connect(
        settings.mongodb_uri,
        (
            *app.get(LISTENERS, ()),
            *([metrics.DATABASE_LISTENER] if settings.metrics else []),
        ),
        settings.db_timeout_ms,
        write_concern=settings.write_concern_setting,
    )
    db = database_of(client)
    app[SERVICES] = Services.build(settings, client, db)
    warn_if_unbound(settings)
    warming = asyncio.get_running_loop().create_task(sanitizer_pool.warm_up())
    yield
    await cancel_and_wait(warming, "starting the sanitizer processes")
    await bounded(client.close(), "closing the database client")


def init_app(
    settings: Settings, mongo_listeners: Sequence[CommandListener] = ()
) -> web.Application:
    """The application; `mongo_listeners` observe its database commands (tests count them)."""
    app = web.Application(
        middlewares=[
            request_id_middleware,
            json_errors_middleware,
            body_timeout_middleware(settings.body_timeout_seconds, settings.body_min_rate),
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[LISTENERS] = tuple(mongo_listeners)
    app[WEBSOCKETS] = weakref.WeakSet()
    app[READINESS] = Readiness()
    app.on_shutdown.append(_close_websockets)
    app.on_response_prepare.append(add_security_headers)
    redact_access_log()
    hide_server_software()
    app.cleanup_ctx.append(_services_ctx)
    app.cleanup_ctx.append(schema_ctx)
    app.cleanup_ctx.append(attachment_cleanup_ctx)
    app.cleanup_ctx.append(realtime_ctx)
    app.cleanup_ctx.append(recovery_ctx)
    app.cleanup_ctx.append(retention_ctx)
    app.cleanup_ctx.append(email_ctx)
    if settings.smtp_port is not None:
        app.cleanup_ctx.append(inbound_smtp_ctx)

    view = MessagerGraphQLView(settings)
    routes = [
        app.router.add_route("GET", "/graphql", view),
        app.router.add_route("POST", "/graphql", view),
    ]
    routes.append(app.router.add_post("/attachments", attachments_http.upload))
    routes.append(app.router.add_get("/attachments/{attachment_id}", attachments_http.download))
    routes.append(
        app.router.add_get("/companies/{company_id}/export", compliance_http.export_company)
    )
    if settings.introspection_enabled:
        graphiql.add_routes(app)
    if settings.metrics:
        token = settings.metrics_token
        metrics.add_routes(app, token.get_secret_value() if token else None)
    app.router.add_get("/email/unsubscribe", email_unsubscribe.confirm_page)
    app.router.add_post("/email/unsubscribe", email_unsubscribe.unsubscribe)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    setup_cors(app, routes, settings.cors_origins)
    return app
