"""Start-up and shutdown of live events and of the notification outbox recovery (which first
completes notifications stored before they kept their conversation's company)."""

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
from graphql_api.shutdown import bounded, cancel_and_wait

log = logging.getLogger(__name__)

OUTBOX_INTERVAL_SECONDS = 30.0
CHANGE_STREAM_READY_TIMEOUT_SECONDS = 10.0


async def _complete_fanouts_forever(app: web.Application) -> None:
    try:
        migrated = await app[SERVICES].notifications.complete_missing_companies()
        if migrated:
            log.info("gave %d older notifications their conversation's company", migrated)
    except PyMongoError as exc:
        log.warning("notification company migration failed: %s", exc)
    while True:
        try:
            completed = await app[SERVICES].notifications.complete_pending_fanouts()
            if completed:
                log.info("completed %d interrupted notification fan-outs", completed)
        except PyMongoError as exc:
            log.warning("notification outbox recovery failed: %s", exc)
        await asyncio.sleep(OUTBOX_INTERVAL_SECONDS)


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
    outbox = asyncio.create_task(_complete_fanouts_forever(app), name="notification-outbox")
    yield
    await cancel_and_wait(outbox, "the notification outbox task")
    if source is not None:
        await source.stop()
    if watcher_client is not None:
        await bounded(watcher_client.close(), "closing the change-stream client")
