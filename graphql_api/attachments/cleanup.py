"""The periodic removal of uploads never attached to a message within 24 hours, and the release
of claims whose message was never stored (`AttachmentStore.settle_stale_claims`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from pymongo.errors import PyMongoError

from graphql_api.keys import SERVICES, SETTINGS
from graphql_api.shutdown import cancel_and_wait

log = logging.getLogger(__name__)


async def _remove_expired_forever(app: web.Application) -> None:
    interval = app[SETTINGS].attachment_cleanup_interval_seconds
    while True:
        try:
            attachments = app[SERVICES].attachments
            released = await attachments.settle_stale_claims()
            if released:
                log.info("released the uploads of %d messages never stored", released)
            removed = await attachments.remove_expired()
            if removed:
                log.info("removed %d expired uploads", removed)
        except PyMongoError as exc:  # the database may be away: try again next time
            log.warning("expired uploads cleanup failed: %s", exc)
        await asyncio.sleep(interval)


async def attachment_cleanup_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_remove_expired_forever(app), name="attachment-cleanup")
    yield
    await cancel_and_wait(task, "the attachment cleanup task")
