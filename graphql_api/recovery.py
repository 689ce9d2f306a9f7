"""The crash recovery task: at start-up and then periodically, complete or undo what a process
that died (kill -9, power loss) left half-done (docs/reliability.md).

- Notification fan-outs of stored messages (`Notifications.complete_pending_fanouts`).
- First messages of conversations whose creation died before the conversation was written
  (`remove_interrupted_creations`).
- Numbers taken by replies never stored, and the last message they named
  (`reconcile_conversations`).
- Attachments claimed by messages never stored (`AttachmentStore.settle_stale_claims`).
- Audit entries that an action's write carried and its process never chained
  (`audit.complete_pending`), and erasures a crash interrupted (`erasure.finish_erasures`).

Every step only touches what is older than `recovery_grace_seconds`, so that writes still in
progress on other live processes are left to finish, and every step is idempotent, so that the
processes sharing a database can all run it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from pymongo.errors import PyMongoError

from graphql_api.compliance import audit
from graphql_api.compliance.erasure import finish_erasures
from graphql_api.conversations.recovery import (
    reconcile_conversations,
    remove_interrupted_creations,
)
from graphql_api.keys import SERVICES
from graphql_api.services import Services
from graphql_api.shutdown import cancel_and_wait

log = logging.getLogger(__name__)


async def recover_once(services: Services) -> None:
    """One pass of every recovery step."""
    settings = services.settings
    now_ms = int(time.time() * 1000)
    grace_ms = int(settings.recovery_grace_seconds * 1000)
    completed = await services.notifications.complete_pending_fanouts(now_ms, grace_ms)
    if completed:
        log.info("completed %d interrupted notification fan-outs", completed)
    removed = await remove_interrupted_creations(
        services.db, services.attachments, now_ms - grace_ms
    )
    if removed:
        log.info("removed the first message of %d conversations never created", removed)
    repaired = await reconcile_conversations(services.db, now_ms, grace_ms)
    if repaired:
        log.info("reconciled %d conversations with replies a crash interrupted", repaired)
    released = await services.attachments.settle_stale_claims(now_ms, grace_ms)
    if released:
        log.info("released the attachments of %d messages never stored", released)
    finished = await finish_erasures(services.db, services.attachments, now_ms - grace_ms)
    if finished:
        log.info("finished %d erasures a crash interrupted", finished)
    chained = await audit.complete_pending(services.db, now_ms - grace_ms)
    if chained:
        log.info("chained %d audit records whose action's process died first", chained)


async def _recover_forever(app: web.Application) -> None:
    services = app[SERVICES]
    try:
        migrated = await services.notifications.complete_missing_companies()
        if migrated:
            log.info("gave %d older notifications their conversation's company", migrated)
    except PyMongoError as exc:
        log.warning("notification company migration failed: %s", exc)
    while True:
        try:
            await recover_once(services)
        except PyMongoError as exc:  # the database may be away: try again next time
            log.warning("crash recovery failed: %s", exc)
        except Exception:  # a bug must not end the recovery for the life of the process
            log.exception("crash recovery failed")
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A stop's cancellation that the driver swallowed or turned into its own error.
            raise asyncio.CancelledError
        await asyncio.sleep(services.settings.recovery_interval_seconds)


async def recovery_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_recover_forever(app), name="crash-recovery")
    yield
    await cancel_and_wait(task, "the crash recovery task")
