"""Start-up and shutdown of live events (the change-stream watchers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from pymongo.errors import PyMongoError

from graphql_api.database import connect, database_of
from graphql_api.keys import SERVICES
from graphql_api.realtime.sources import ChangeStreamSource, change_streams_supported
from graphql_api.shutdown import bounded

log = logging.getLogger(__name__)

CHANGE_STREAM_READY_TIMEOUT_SECONDS = 10.0


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    source: ChangeStreamSource | None = None
    try:
        supported = await change_streams_supported(services.db)
    except PyMongoError as exc:
        log.warning("cannot probe change streams (%s): live events stay in this process", exc)
        supported = False
    watcher_client = None
    if supported:
        # Its own client: long-polling change streams must not hold the request pool's
        # connections (nor show in the request's command counts).
        watcher_client = connect(services.settings.mongodb_uri or "")
        source = ChangeStreamSource(
            database_of(watcher_client), services.hub, services.directory.cache
        )
        source.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(source.ready.wait(), CHANGE_STREAM_READY_TIMEOUT_SECONDS)
    else:
        log.warning(
            "this MongoDB offers no change streams (a replica set does): live events reach "
            "the subscribers of this process only, and every request reads its user from the "
            "database (no user cache)"
        )
    yield
    if source is not None:
        await source.stop()
    if watcher_client is not None:
        await bounded(watcher_client.close(), "closing the change-stream client")
