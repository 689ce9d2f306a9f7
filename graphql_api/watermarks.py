"""How far each step of the crash recovery got: one document per step in `recovery_state`.

A step looks at what changed after its watermark and before its cutoff, then moves the watermark
to the cutoff. The watermark is kept in the database, so that a restart after a long stop looks
at everything since the last run of any process, and it only moves forward, since every process
runs the recovery.
"""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from graphql_api.database import Db

FIRST_LOOKBACK_MS = 24 * 3600 * 1000  # where a step never run on this database starts


async def watermark(db: Db, step: str, cutoff_ms: int) -> int:
    """The time up to which `step` has looked at everything."""
    state = await db.recovery_state.find_one({"_id": step})
    return int(state["until_ms"]) if state else cutoff_ms - FIRST_LOOKBACK_MS


async def advance_watermark(db: Db, step: str, reached_ms: int) -> None:
    try:
        await db.recovery_state.update_one(
            {"_id": step, "until_ms": {"$lt": reached_ms}},
            {"$set": {"until_ms": reached_ms}},
            upsert=True,
        )
    except DuplicateKeyError:  # already at or past `reached_ms`
        pass
