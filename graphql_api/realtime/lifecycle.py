"""Start-up and shutdown of live events (the change-stream watchers).

Whether the deployment offers change streams is asked at start-up. An answer is final (a
standalone server says no); no answer (an election outlasting server selection, the network) is
not: the question is asked again with backoff, and `/readyz` answers 503 ("change streams")
until the streams are open or the deployment has said it has none. With
`MESSAGER_CHANGE_STREAMS=required` a "no" keeps the process not ready, for deployments where
other processes' events must reach this one's subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from graphql_api.database import connect, database_of
from graphql_api.keys import READINESS, SERVICES
from graphql_api.realtime.sources import (
    MAX_RETRY_DELAY_SECONDS,
    RETRY_DELAY_SECONDS,
    ChangeStreamSource,
    change_streams_supported,
)
from graphql_api.shutdown import bounded, cancel_and_wait

log = logging.getLogger(__name__)

CHANGE_STREAM_READY_TIMEOUT_SECONDS = 10.0
CHANGE_STREAMS = "change streams"


class LiveEvents:
    """The change-stream side of one process: probe, start, and readiness."""

    def __init__(self, app: web.Application) -> None:
        services = app[SERVICES]
        self.required = services.settings.change_streams == "required"
        self.readiness = app[READINESS]
        # Its own client: long-polling change streams must not hold the request pool's
        # connections (nor show in the request's command counts), nor its deadline.
        self.client = connect(
            services.settings.mongodb_uri or "",
            write_concern=services.settings.write_concern_setting,
        )
        self.source = ChangeStreamSource(
            database_of(self.client),
            services.hub,
            services.directory.cache,
            services.directory.company_cache,
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        supported = await change_streams_supported(self.source.db)
        if supported is None:
            self.readiness.problem(CHANGE_STREAMS, "the database has not answered; asking again")
            self._tasks.append(asyncio.create_task(self._ask_until_answered(), name="probe"))
            return
        await self._settle(supported)

    async def _ask_until_answered(self) -> None:
        delay = RETRY_DELAY_SECONDS
        while True:
            await asyncio.sleep(delay)
            supported = await change_streams_supported(self.source.db)
            if supported is not None:
                await self._settle(supported)
                return
            delay = min(delay * 2, MAX_RETRY_DELAY_SECONDS)

    async def _settle(self, supported: bool) -> None:
        if not supported:
            if self.required:
                log.error(
                    "this MongoDB offers no change streams, and MESSAGER_CHANGE_STREAMS=required: "
                    "not ready (use a replica set or a sharded cluster)"
                )
                self.readiness.problem(CHANGE_STREAMS, "this MongoDB offers no change streams")
                return
            log.warning(
                "this MongoDB offers no change streams (a replica set does): live events reach "
                "the subscribers of this process only, and every request reads its user from the "
                "database (no user cache)"
            )
            self.readiness.clear(CHANGE_STREAMS)
            return
        self.readiness.problem(CHANGE_STREAMS, "opening")
        self.source.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.source.ready.wait(), CHANGE_STREAM_READY_TIMEOUT_SECONDS)
        if self.source.ready.is_set():
            self.readiness.clear(CHANGE_STREAMS)
        else:
            self._tasks.append(asyncio.create_task(self._ready_once_open(), name="streams-open"))

    async def _ready_once_open(self) -> None:
        await self.source.ready.wait()
        self.readiness.clear(CHANGE_STREAMS)

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task, f"the {task.get_name()} task")
        await self.source.stop()
        await bounded(self.client.close(), "closing the change-stream client")


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    live = LiveEvents(app)
    await live.start()
    yield
    await live.stop()
