"""Retention (SPEC §17): conversations whose last activity is older than their firm's
`retentionYears` are purged, with everything that hangs off them; never a company on legal hold.

A conversation's purge, in steps that can each be repeated by any process at any time:
1. A `purges` document records it (`_id` = the conversation's id), with its audit entry
   (`$setOnInsert`: every process that starts the same purge agrees on one entry).
2. The conversation document is deleted if it is still past retention: the commit point. Every
   read reaches messages, notifications and files through a readable conversation, so from here
   nothing of it is visible. A conversation that became active again meanwhile is not purged
   (the `purges` document goes, nothing else was touched).
3. Its messages (and with them their search words), deleted messages' retained content,
   notifications, read marks, and attachments (metadata, GridFS files and chunks) are deleted.
4. The audit entry is chained (idempotent by its id), then the `purges` document goes.
Each pass first finishes the purges that a crash left in `purges`, so a rerun completes the job;
two processes purging the same conversation delete the same things and chain one record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web
from pymongo.errors import PyMongoError

from graphql_api import clock
from graphql_api.attachments.store import AttachmentStore
from graphql_api.compliance import audit, chain
from graphql_api.database import Db, Document
from graphql_api.keys import SERVICES
from graphql_api.shutdown import cancel_and_wait

log = logging.getLogger(__name__)

MAX_PURGES_PER_FIRM = 500  # per pass; the rest waits for the next one
_CONVERSATION_FIELDS = {
    "firm_id": 1,
    "created_by": 1,
    "company_id": 1,
    "type": 1,
    "last_activity_ms": 1,
    "message_count": 1,
}


def retention_cutoff(now: datetime, years: int) -> int:
    """Epoch ms `years` calendar years before `now` (29 February falls back to the 28th)."""
    try:
        then = now.replace(year=now.year - years)
    except ValueError:
        then = now.replace(year=now.year - years, day=28)
    return clock.millis(then)


async def purge_once(db: Db, attachments: AttachmentStore, now: datetime | None = None) -> int:
    """One pass over every firm with a retention; answer how many conversations were purged."""
    now = now or clock.now()
    purged = 0
    leftovers = await db.purges.find({"_id": {"$gte": ""}}).to_list()
    for job in leftovers:
        purged += await _finish(db, attachments, job)
    firms = await db.firms.find({"retention_years": {"$gte": 1}}, {"retention_years": 1}).to_list()
    for firm in firms:
        cutoff = retention_cutoff(now, int(firm["retention_years"]))
        purged += await _purge_firm(db, attachments, firm["_id"], cutoff)
    return purged


async def _purge_firm(db: Db, attachments: AttachmentStore, firm_id: str, cutoff: int) -> int:
    held = {
        doc["_id"]
        async for doc in db.companies.find({"firm_id": {"$eq": firm_id}}, {"legal_hold": 1})
        if doc.get("legal_hold")  # (the embedded server answers a stored `true` as 1)
    }
    expired = (
        await db.conversations.find(
            {"firm_id": {"$eq": firm_id}, "last_activity_ms": {"$lt": cutoff}},
            _CONVERSATION_FIELDS,
        )
        .sort("last_activity_ms", 1)
        .limit(MAX_PURGES_PER_FIRM)
        .to_list()
    )
    purged = 0
    for conversation in expired:
        if conversation.get("company_id") in held:
            continue  # legal hold: kept whatever its age
        job = await _begin(db, conversation, cutoff)
        if job is not None:
            purged += await _finish(db, attachments, job)
    return purged


async def _begin(db: Db, conversation: Document, cutoff: int) -> Document | None:
    entry = audit.new_entry(
        conversation["firm_id"],
        audit.Actor.system(),
        audit.AuditAction.CONVERSATION_PURGED,
        conversation_id=conversation["_id"],
        company_id=conversation.get("company_id"),
        details={
            "type": conversation.get("type"),
            "lastActivityMs": conversation.get("last_activity_ms"),
            "messages": conversation.get("message_count"),
        },
    )
    await db.purges.update_one(
        {"_id": conversation["_id"]},
        {
            "$setOnInsert": {
                "firm_id": conversation["firm_id"],
                "created_by": conversation["created_by"],
                "cutoff_ms": cutoff,
                "entry": entry,
            }
        },
        upsert=True,
    )
    # Read back (what this or another process recorded first): the embedded server's
    # find-and-modify answers an upsert without its `$setOnInsert` fields.
    return await db.purges.find_one({"_id": conversation["_id"]})  # None: finished meanwhile


async def _finish(db: Db, attachments: AttachmentStore, job: Document) -> int:
    """Steps 2 to 4 of one purge; answer 1 if the conversation is purged, 0 if it was kept."""
    conversation_id = job["_id"]
    result = await db.conversations.delete_one(
        {
            "_id": conversation_id,
            "firm_id": {"$eq": job["firm_id"]},
            "created_by": {"$eq": job["created_by"]},
            "last_activity_ms": {"$lt": job["cutoff_ms"]},
        }
    )
    if result.deleted_count == 0:
        still_there = await db.conversations.find_one(
            {"_id": conversation_id, "firm_id": {"$eq": job["firm_id"]}}, {"_id": 1}
        )
        if still_there is not None:  # active again since: not past retention any more
            await db.purges.delete_one({"_id": conversation_id})
            return 0
    of_conversation = {"conversation_id": {"$eq": conversation_id}}
    files = await db.attachments.find(of_conversation, {"_id": 1}).to_list()
    await db.notifications.delete_many(of_conversation)
    await db.read_marks.delete_many(of_conversation)
    await db.retained_messages.delete_many(of_conversation)
    await db.messages.delete_many(of_conversation)
    await attachments.delete([doc["_id"] for doc in files])
    await chain.append(db, job["entry"])
    await db.purges.delete_one({"_id": conversation_id})
    return 1


FIRST_PASS_DELAY_SECONDS = 60.0
"""The first pass waits this long (or the interval, if shorter) after start-up: a process that
starts is busy enough, and a restart loop still purges once a minute at most."""


async def _purge_forever(app: web.Application) -> None:
    services = app[SERVICES]
    interval = services.settings.retention_interval_seconds
    await asyncio.sleep(min(FIRST_PASS_DELAY_SECONDS, interval))
    while True:
        try:
            purged = await purge_once(services.db, services.attachments)
            if purged:
                log.info("purged %d conversations past their firm's retention", purged)
        except PyMongoError as exc:  # the database may be away: try again next time
            log.warning("retention purge failed: %s", exc)
        except Exception:  # a bug must not end the job for the life of the process
            log.exception("retention purge failed")
        await asyncio.sleep(interval)


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_purge_forever(app), name="retention")
    yield
    await cancel_and_wait(task, "the retention purge task")
