"""Preparing the collections and indexes at start-up, without the request deadline.

Index builds run on a client of their own with no per-operation deadline: building an index on
a populated collection takes as long as it takes, and the requests' 10 s deadline would fail it.
Start-up waits for them (a process must not write before its unique indexes exist). A collection
that cannot be prepared is logged on one line, the others are still prepared, and the process
starts anyway: `/readyz` answers 503 naming the collections, and a background task tries them
again with backoff until they are done (a database that was away at start-up, a build that
failed). A conflicting index (an operator's change) keeps failing there, visibly, until fixed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from pymongo import AsyncMongoClient

from graphql_api.database import Document, connect, database_of, ensure_schema
from graphql_api.keys import READINESS, SETTINGS
from graphql_api.readiness import Readiness
from graphql_api.shutdown import bounded, cancel_and_wait

log = logging.getLogger(__name__)

SCHEMA = "schema"
FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 60.0


def _describe(failed: dict[str, str]) -> str:
    """One line: the collections grouped by why (all of them, when the database is away)."""
    by_reason: dict[str, list[str]] = {}
    for name, why in sorted(failed.items()):
        by_reason.setdefault(why, []).append(name)
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())


async def _finish(
    client: AsyncMongoClient[Document], failed: dict[str, str], ready: Readiness
) -> None:
    delay = FIRST_RETRY_SECONDS
    while failed:
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_SECONDS)
        failed = await ensure_schema(database_of(client), failed)
        if failed:
            ready.problem(SCHEMA, f"collections not prepared: {_describe(failed)}")
    log.info("every collection and index is prepared")
    ready.clear(SCHEMA)


async def schema_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    readiness = app[READINESS]
    client = connect(settings.mongodb_uri or "", write_concern=settings.write_concern_setting)
    failed = await ensure_schema(database_of(client))
    retry: asyncio.Task[None] | None = None
    if failed:
        log.error("collections not prepared at start-up: %s", _describe(failed))
        readiness.problem(SCHEMA, f"collections not prepared: {_describe(failed)}")
        retry = asyncio.create_task(_finish(client, failed, readiness), name="schema")
    yield
    if retry is not None:
        await cancel_and_wait(retry, "the schema preparation task")
    await bounded(client.close(), "closing the schema client")
