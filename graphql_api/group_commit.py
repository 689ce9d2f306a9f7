"""Group commit: concurrent writes of one kind reach the database as one command.

Every `sendMessage` ends with the same small writes (its notifications, clearing its outbox flag,
the author's read mark). Alone, a write goes out at once, as before. While one batch is being
written, the writes that arrive meanwhile wait and then go together in the next command, so under
load the database sees one command per batch instead of one per message. Each caller still
waits until its own write is acknowledged (or gets its error): nothing is fire-and-forget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
MAX_BATCH = 500


class GroupCommit(Generic[Item]):
    def __init__(self, write: Callable[[list[Item]], Awaitable[None]]) -> None:
        self._write = write
        self._waiting: list[tuple[Item, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> None:
        """Write `item` with whatever else is waiting; returns once it is acknowledged."""
        done = asyncio.get_running_loop().create_future()
        # A caller that went away never reads its outcome: read it here, so that a failed
        # batch does not log "exception was never retrieved" for it.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append((item, done))
        if self._writer is None:
            # A task of its own: a caller that goes away must not cancel the others' writes.
            self._writer = asyncio.create_task(self._drain())
        await asyncio.shield(done)

    async def _drain(self) -> None:
        batch: list[tuple[Item, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                try:
                    await self._write([item for item, _ in batch])
                except Exception as exc:  # handed to each waiting caller
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
        finally:
            self._writer = None
            # Cancelled while writing (shutdown): nobody is left to write these.
            for _, done in [*batch, *self._waiting]:
                if not done.done():
                    done.cancel()
            self._waiting = []


def _settle(batch: list[tuple[Any, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, done in batch:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
