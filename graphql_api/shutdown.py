"""Bounded shutdown steps: a stop must never hang on a task or a client stuck in the driver.

Seen: a task cancelled inside PyMongo's server selection right after the database came back
never finished, and the application's cleanup waited on it forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

log = logging.getLogger(__name__)

STEP_TIMEOUT_SECONDS = 5.0


async def cancel_and_wait(task: asyncio.Task[None], what: str) -> None:
    task.cancel()
    await asyncio.wait([task], timeout=STEP_TIMEOUT_SECONDS)
    if not task.done():
        log.warning("%s did not stop within %.0f s; leaving it", what, STEP_TIMEOUT_SECONDS)


async def bounded(step: Awaitable[object], what: str) -> None:
    try:
        async with asyncio.timeout(STEP_TIMEOUT_SECONDS):
            await step
    except TimeoutError:
        log.warning("%s did not finish within %.0f s; going on", what, STEP_TIMEOUT_SECONDS)
