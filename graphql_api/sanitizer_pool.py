"""The processes that sanitize message bodies, away from the event loop (issue 20).

A large body costs tens of milliseconds of CPU: the nesting gate and the plain-text pass are
Python, and nh3's parse, which releases the GIL, is most of the rest. In a thread, the Python
steps would still take the GIL from the event loop at every switch interval, and under load for
longer; in processes of their own they take nothing from it. The loop only sends the body and
receives the result (pickled: well under a millisecond for 100 KB).

Two processes: the machine's cores, and the most CPU bodies can take at once, whatever is sent.
They start with the first body (`warm_up` starts them with the application), are spawned (the
server runs threads, which `fork` does not copy safely) and die with the process that started
them. A pool broken by a dead process is replaced once. `shutdown` stops them: a process that
multiprocessing started (a worker of `serve --workers N`) must call it before it exits, since
its exit waits for its children before the pool's own exit hook would have stopped them.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from graphql_api.embedded import die_with_parent

T = TypeVar("T")
log = logging.getLogger(__name__)

SANITIZER_PROCESSES = 2

_pool: ProcessPoolExecutor | None = None


def _executor() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=SANITIZER_PROCESSES,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=die_with_parent,
        )
    return _pool


async def off_loop(work: Callable[..., T], *args: object) -> T:
    """`work(*args)` in a sanitizer process; `work` and its arguments must pickle (a function
    of a module, plain values). Its exceptions are raised here."""
    global _pool
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(_executor(), work, *args)
    except BrokenProcessPool:
        _pool = None  # a process died (killed, out of memory): start afresh, once
        return await loop.run_in_executor(_executor(), work, *args)


def shutdown() -> None:
    """Stop the sanitizer processes (started again by the next body, if any)."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None


def _ready() -> bool:
    return True


async def warm_up() -> None:
    """Start a process now rather than with the first message (spawning takes a while)."""
    try:
        await off_loop(_ready)
    except Exception as exc:  # the first message will try again, and fail visibly
        log.warning("could not start the sanitizer processes: %s", exc)
