"""Changing a user document straight in the database, as another process would (an import, an
admin script, another `serve`), and returning once the app under test has been told.

The app keeps users in a cache that its `users` change stream evicts: a change made elsewhere
takes effect once the stream has delivered it, within milliseconds. So that a test can assert
the effect at once, each helper subscribes to the user's topic on the app's event hub before
writing and returns when the change stream's `UserChanged` has come through: a wait on the
event, bounded, never on a clock. A write that changes nothing sends no event and is not waited
for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from graphql_api.database import Db, Document
from graphql_api.keys import SERVICES
from graphql_api.realtime.events import UserChanged, user_topic

WAIT_SECONDS = 10.0


async def changed_elsewhere(
    app: web.Application, user_id: str, write: Callable[[], Awaitable[bool]]
) -> None:
    """Run `write` (which answers whether it changed the user), then wait until `app` has
    received the change from its change stream."""
    hub = app[SERVICES].hub
    subscriber = hub.subscribe([user_topic(user_id)])
    try:
        if not await write():
            return
        async with asyncio.timeout(WAIT_SECONDS):
            while not isinstance(await subscriber.next(), UserChanged):
                pass
    finally:
        hub.unsubscribe(subscriber)


async def update_user(db: Db, app: web.Application, user_id: str, update: Document) -> None:
    """`update_one` on the user, seen by `app`."""

    async def write() -> bool:
        result = await db.users.update_one({"_id": user_id}, update)
        assert result.matched_count == 1, f"no user {user_id}"
        return result.modified_count == 1

    await changed_elsewhere(app, user_id, write)


async def replace_user(db: Db, app: web.Application, user_id: str, document: Document) -> None:
    """`replace_one` of the user's whole document (its `_id` kept), seen by `app`."""

    async def write() -> bool:
        result = await db.users.replace_one({"_id": user_id}, document)
        assert result.matched_count == 1, f"no user {user_id}"
        return result.modified_count == 1

    await changed_elsewhere(app, user_id, write)


async def delete_user(db: Db, app: web.Application, user_id: str) -> None:
    """`delete_one` of the user, seen by `app`."""

    async def write() -> bool:
        result = await db.users.delete_one({"_id": user_id})
        assert result.deleted_count == 1, f"no user {user_id}"
        return True

    await changed_elsewhere(app, user_id, write)


def app_of(api: Any) -> web.Application:
    """The application behind the tests' `api` fixture."""
    return api.http.app
