"""Keeps a cancelled database operation from locking PyMongo's connection pool for good (issue 20).

On Python 3.11, `asyncio.wait_for` runs what it waits for in a task of its own. PyMongo's async
pool and topology wait on their conditions that way (`pymongo.lock._async_cond_wait`):
`wait_for(condition.wait(), timeout)`. When the waiting task is cancelled twice in a row (a
GraphQL list whose siblings are cancelled level after level does exactly that), `wait_for` gives
up on its inner task while that task is still re-acquiring the condition's lock; the inner task
then takes the lock and ends, and nobody ever releases it. Every later checkout, the `/readyz`
ping included, then waits for that lock forever, and no `timeoutMS` deadline covers the wait:
the process keeps its idle connections and answers nothing but `/healthz`.

Python 3.12 rewrote `wait_for` on `asyncio.timeout`, which runs the awaitable in the caller's
task, so the lock is always released by the `async with` that took it. `install()` gives PyMongo
that implementation on 3.11; on 3.12 and later it does nothing.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

import pymongo.lock

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:  # noqa: ASYNC109
    """`asyncio.wait_for` as Python 3.12 has it: a timeout around a plain `await` (its
    signature is `wait_for`'s, which PyMongo calls)."""
    async with asyncio.timeout(timeout):
        return await awaitable


def install() -> None:
    """Make PyMongo's condition waits use `wait_for` above (idempotent)."""
    if sys.version_info < (3, 12):
        # `_async_cond_wait` looks the name up in its module at every call.
        pymongo.lock.wait_for = wait_for  # type: ignore[assignment]
