"""Keeps a cancelled database operation from locking PyMongo's connection pool for good (issue 20),
or from leaving a socket open.

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

A connection being opened when its task is cancelled (a short request's cleanup, a change stream
stopped at shutdown) leaks its socket: PyMongo's `_async_create_connection` closes the socket it
created on a timeout or an OS error, not on a cancellation, and the socket may already be
connected (the cancellation won the race against the connect's result). `install()` closes
every socket an interrupted call created.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import types
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import pymongo.lock
import pymongo.pool_shared

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:  # noqa: ASYNC109
    """`asyncio.wait_for` as Python 3.12 has it: a timeout around a plain `await` (its
    signature is `wait_for`'s, which PyMongo calls)."""
    async with asyncio.timeout(timeout):
        return await awaitable


_sockets_of_this_call: ContextVar[list[socket.socket] | None] = ContextVar(
    "sockets_of_this_call", default=None
)


class _RecordedSocket(socket.socket):
    """A socket that an async connection attempt of this task records as it is created."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        created = _sockets_of_this_call.get()
        if created is not None:
            created.append(self)


def _closing_on_cancellation(
    create: Callable[..., Awaitable[socket.socket]],
) -> Callable[..., Awaitable[socket.socket]]:
    async def create_connection(*args: Any, **kwargs: Any) -> socket.socket:
        created: list[socket.socket] = []
        token = _sockets_of_this_call.set(created)
        try:
            return await create(*args, **kwargs)
        except BaseException:
            for sock in created:
                sock.close()
            raise
        finally:
            _sockets_of_this_call.reset(token)

    create_connection.__wrapped__ = create  # type: ignore[attr-defined]
    return create_connection


def install() -> None:
    """Make PyMongo's condition waits use `wait_for` above, and its interrupted connection
    attempts close their sockets (idempotent)."""
    if sys.version_info < (3, 12):
        # `_async_cond_wait` looks the name up in its module at every call.
        pymongo.lock.wait_for = wait_for  # type: ignore[assignment]
    pool = pymongo.pool_shared
    if not hasattr(pool._async_create_connection, "__wrapped__"):
        # The module looks both names up at every call: its `socket` becomes the socket module
        # with `socket.socket` recording, and its connection attempts close what they recorded.
        recording = types.ModuleType("socket")
        recording.__dict__.update(socket.__dict__)
        recording.socket = _RecordedSocket  # type: ignore[attr-defined]
        pool.socket = recording  # type: ignore[attr-defined]
        pool._async_create_connection = _closing_on_cancellation(  # type: ignore[assignment]
            pool._async_create_connection
        )
