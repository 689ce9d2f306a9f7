"""The in-process caches of users and companies: authenticating a request on a warm process
reads no database, and neither do the authors, participants and companies a page shows.

Every request and every WebSocket operation needs its viewer's user document, and the access
policy reads its firm, kind, companies and favorites. Those change rarely but must take effect at
once, on every process. So the cache serves only while something tells it about every change:

- this process's own writes evict the user at once (`evict`, from the favorites mutations);
- every other process's writes arrive through the `users` change stream (updates, replaces and
  deletes), which evicts the user before the change is published to live subscriptions.

The change-stream source turns the cache on when its `users` stream opens (`serve`) and off when
the stream breaks (`stop_serving`); both empty it, since changes may have been missed meanwhile.
Until then, and for good on a MongoDB without change streams (a standalone server), nothing is
kept: every read goes to the database, because a cache that is not told about another process's
writes would keep serving a permission that was taken away.

A read still in flight when its user is evicted answers its callers but is not kept: it may have
read the document as it was before the change. Users are keyed by id (unique across firms: a hit
is exactly the document a database read would answer); at most `max_users` are kept, the least
recently used going first.

Companies are kept the same way (`CompanyCache`), while the `companies` change stream is open:
`messager import` writes them from another process.

Many users at once (`get_many`: the authors of a history page, an inbox's participants) are
served the same way: those kept cost nothing, the others are read in one command and kept.

    cache = UserCache(directory.user_by_id, max_users=10_000, load_many=directory.users_by_ids)
    cache.serve()                 # the users change stream is open
    await cache.get(user_id)      # a database read, then kept
    await cache.get(user_id)      # no database command
    await cache.get_many(ids)     # one database read for those not kept
    cache.evict(user_id)          # the user changed
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Generic, TypeVar

from graphql_api.directory.models import Company, User

R = TypeVar("R", User, Company)
Load = Callable[[str], Awaitable[R | None]]
LoadMany = Callable[[Iterable[str]], Awaitable[dict[str, R]]]


class RecordCache(Generic[R]):
    """Records by id, kept only while every change to them is known to reach `evict`."""

    def __init__(self, load: Load[R], max_users: int, load_many: LoadMany[R] | None = None) -> None:
        self._load = load
        self._load_many = load_many
        self.max_users = max_users
        self._users: OrderedDict[str, R] = OrderedDict()
        # One read per user at a time; a read evicted meanwhile is dropped from here, and only
        # the read found here when it ends may keep its answer.
        self._reads: dict[str, asyncio.Future[R | None]] = {}
        self.serving = False

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    async def get(self, user_id: str) -> R | None:
        """The user as stored (None when there is none); a database read unless it is kept."""
        user = self._users.get(user_id)
        if user is not None:
            self._users.move_to_end(user_id)
            return user
        if not self.serving or self.max_users == 0:
            # Not even shared with a read in flight: it may have started before a change that
            # nothing will report.
            return await self._load(user_id)
        read = self._reads.get(user_id)
        if read is None:
            read = asyncio.ensure_future(self._load(user_id))
            self._reads[user_id] = read
            read.add_done_callback(lambda done: self._keep(user_id, done))
        # Shielded: a caller that gives up must not cancel the read the others wait for.
        return await asyncio.shield(read)

    async def get_many(self, user_ids: list[str]) -> list[R | None]:
        """The users as stored, in the order asked (None for those there are none of): one
        database read for all those neither kept nor already being read."""
        found = {user_id: self._users.get(user_id) for user_id in user_ids}
        missing = [user_id for user_id, user in found.items() if user is None]
        if missing and self._load_many is None:
            for user_id in missing:
                found[user_id] = await self.get(user_id)
        elif missing:
            assert self._load_many is not None
            if not self.serving or self.max_users == 0:
                read = await self._load_many(missing)
                found.update((user_id, read.get(user_id)) for user_id in missing)
            else:
                reads = {user_id: self._reads.get(user_id) for user_id in missing}
                unread = [user_id for user_id, read in reads.items() if read is None]
                if unread:
                    loop = asyncio.get_running_loop()
                    futures = {user_id: loop.create_future() for user_id in unread}
                    for user_id, future in futures.items():
                        self._reads[user_id] = reads[user_id] = future
                        future.add_done_callback(partial(self._keep, user_id))
                    batch = asyncio.ensure_future(self._load_many(unread))
                    batch.add_done_callback(partial(_settle_each, futures))
                # Shielded, as in `get`: a caller that gives up must not cancel shared reads.
                answers = await asyncio.shield(asyncio.gather(*reads.values()))  # type: ignore[arg-type]
                found.update(zip(reads, answers, strict=True))
        for user_id in user_ids:
            if found[user_id] is not None and user_id in self._users:
                self._users.move_to_end(user_id)
        return [found[user_id] for user_id in user_ids]

    def _keep(self, user_id: str, read: asyncio.Future[R | None]) -> None:
        failed = read.cancelled() or read.exception() is not None  # (retrieved: never warned)
        if self._reads.get(user_id) is not read:
            return  # evicted (or the cache emptied) while it ran: its answer may be stale
        del self._reads[user_id]
        if failed:
            return
        user = read.result()
        if user is not None and self.serving:
            self._users[user_id] = user
            self._users.move_to_end(user_id)
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)

    def evict(self, user_id: str) -> None:
        """Forget a user that changed (or was deleted), and any read of it in flight."""
        self._users.pop(user_id, None)
        self._reads.pop(user_id, None)

    def clear(self) -> None:
        """Forget every user (a change whose user is unknown, such as a dropped collection)."""
        self._users.clear()
        self._reads.clear()

    def serve(self) -> None:
        """Keep users from now on: the `users` change stream is open (and reports every change
        made from here on). Starts empty: changes made before it opened were not reported."""
        self.clear()
        self.serving = True

    def stop_serving(self) -> None:
        """Keep nothing: the `users` change stream is interrupted or closed."""
        self.serving = False
        self.clear()


def _settle_each(
    futures: dict[str, asyncio.Future[R | None]], batch: asyncio.Future[dict[str, R]]
) -> None:
    """Hands one batch read's answer (or failure) to the per-user reads waiting on it."""
    for user_id, future in futures.items():
        if future.done():
            continue
        if batch.cancelled():
            future.cancel()
        elif (error := batch.exception()) is not None:
            future.set_exception(error)
        else:
            future.set_result(batch.result().get(user_id))


class UserCache(RecordCache[User]):
    """Users by id: the viewer of every request, authors and participants; evicted by the
    `users` change stream and by this process's favorites writes."""


class CompanyCache(RecordCache[Company]):
    """Companies by id (names on the inbox and history): evicted by the `companies` change
    stream (`messager import` writes them, from another process)."""
