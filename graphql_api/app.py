"""The aiohttp application: routes, middlewares, CORS, and the resources in `cleanup_ctx`.

`init_app(settings)` needs `settings.mongodb_uri`; the command line resolves the embedded server
into it first, so the application itself has one code path for MongoDB and nx-27017.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiohttp_cors
import pymongo
from aiohttp import web
from pymongo.errors import PyMongoError
from pymongo.monitoring import CommandListener
from strawberry.aiohttp.views import GraphQLView

from graphql_api.attachments import http as attachments_http
from graphql_api.attachments.cleanup import attachment_cleanup_ctx
from graphql_api.context import Context, build_context
from graphql_api.database import connect, database_of, ensure_schema
from graphql_api.keys import LISTENERS, REQUEST_ID, SERVICES, SETTINGS
from graphql_api.services import Services
from graphql_api.settings import Settings
from schema.schema import schema

log = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id, echoed in `X-Request-Id` and in masked errors."""
    request_id = request[REQUEST_ID] = uuid.uuid4().hex
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # 404 of unknown routes, refused CORS preflights...
        exc.headers["X-Request-Id"] = request_id
        raise
    except Exception:
        log.exception(
            "unexpected error (request %s) on %s %s", request_id, request.method, request.path
        )
        return web.json_response(
            {
                "error": {
                    "code": "INTERNAL_SERVER_ERROR",
                    "message": f"Internal server error (request id {request_id}).",
                    "requestId": request_id,
                }
            },
            status=500,
            headers={"X-Request-Id": request_id},
        )
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    return response


class MessagerGraphQLView(GraphQLView[Context, None]):
    """Strawberry's aiohttp view with the service's context."""

    async def get_context(self, request: web.Request, response: web.StreamResponse) -> Context:
        return await build_context(
            request.app[SERVICES],
            request_id=request.get(REQUEST_ID) or uuid.uuid4().hex,
            authorization=request.headers.get("Authorization"),
            request=request,
            response=response,
        )


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        with pymongo.timeout(READINESS_TIMEOUT_SECONDS):
            await request.app[SERVICES].db.command("ping")
    except PyMongoError:
        return web.json_response(
            {"status": "unavailable", "reason": "database does not answer"}, status=503
        )
    return web.json_response({"status": "ready"})


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.mongodb_uri:
        raise RuntimeError(
            "init_app needs settings.mongodb_uri (the CLI resolves the embedded one)"
        )
    client = connect(settings.mongodb_uri, app.get(LISTENERS, ()))
    db = database_of(client)
    try:
        await ensure_schema(db)
    except PyMongoError as exc:
        # Start anyway: /readyz reports the database, and requests fail cleanly until it is back.
        log.warning("could not prepare the database at start-up: %s", exc)
    app[SERVICES] = Services.build(settings, client, db)
    yield
    await client.close()


def init_app(
    settings: Settings, mongo_listeners: Sequence[CommandListener] = ()
) -> web.Application:
    """The application; `mongo_listeners` observe its database commands (tests count them)."""
    app = web.Application(middlewares=[request_id_middleware])
    app[SETTINGS] = settings
    app[LISTENERS] = tuple(mongo_listeners)
    app.cleanup_ctx.append(_services_ctx)
    app.cleanup_ctx.append(attachment_cleanup_ctx)

    view = MessagerGraphQLView(schema=schema, graphql_ide="graphiql")
    routes = [
        app.router.add_route("GET", "/graphql", view),
        app.router.add_route("POST", "/graphql", view),
    ]
    routes.append(app.router.add_post("/attachments", attachments_http.upload))
    routes.append(app.router.add_get("/attachments/{attachment_id}", attachments_http.download))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    # aiohttp-cors refuses "*" routes (SPEC §12): the view is on explicit GET and POST routes.
    cors = aiohttp_cors.setup(
        app,
        defaults={
            origin: aiohttp_cors.ResourceOptions(
                allow_credentials=False,
                allow_headers=("Authorization", "Content-Type"),
                expose_headers=("X-Request-Id",),
                allow_methods=("GET", "POST"),
                max_age=600,
            )
            for origin in settings.cors_origins
            if origin != "*"  # never a wildcard echo
        },
    )
    for route in routes:
        cors.add(route)
    return app
