"""Subscribing over a real WebSocket: connecting as a user, a conversation to listen to, and
waiting until subscribers are registered."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from graphql_api.keys import SERVICES
from tests.conversation_helpers import create as create_conversation
from tests.ws_client import (
    WAIT_SECONDS,
    GraphQLWs,
    bearer,
)


def uid(api: Any, key: str) -> str:
    return api.ids["users"][key]


def company(api: Any, key: str) -> str:
    return api.ids["companies"][key]


async def create(
    api: Any,
    as_: str,
    kind: str,
    participants: list[str],
    *,
    company_key: str | None = None,
    subject: str = "Subject",
    body: str = "<p>First</p>",
) -> str:
    """Create a conversation through the API; answers its id."""
    created = await create_conversation(
        api, as_, kind, participants, company=company_key, subject=subject, body=body
    )
    return created["id"]


async def bakery_conversation(api: Any, subject: str = "Bakery books") -> str:
    """A COMPANY conversation of bakery created by bob with paul. Readers: bob and paul
    (participants), alice (practitioner, bakery in favorites). Not carla nor dan."""
    return await create(api, "bob", "COMPANY", ["paul"], company_key="bakery", subject=subject)


async def connect(api: Any, user: str, http: TestClient | None = None) -> GraphQLWs:
    return await GraphQLWs.connect(http or api.http, bearer(api.token(user)))


async def wait_for_subscribers(api: Any, count: int) -> None:
    """Until the app's event hub holds `count` subscriptions (a subscription is live once
    registered there)."""
    hub = api.http.app[SERVICES].hub
    async with asyncio.timeout(WAIT_SECONDS):
        while hub.subscriber_count < count:  # noqa: ASYNC110 (the hub offers no event for it)
            await asyncio.sleep(0.01)
