"""Start-up on a MongoDB that builds indexes slowly or refuses one (a scripted wire peer,
`tests/wire_peer.py`): index builds are not bounded by the requests' deadline, a refused
collection does not stop the others, and /readyz names what is not prepared."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from graphql_api.app import init_app
from graphql_api.database import GRIDFS_INDEXES, INDEXES
from graphql_api.settings import Settings
from tests.conftest import JWT_SECRET
from tests.wire_peer import QUIET, Command, WirePeer, command_name, cursor, error

REQUEST_DEADLINE_MS = 300


def settings_for(peer: WirePeer, tmp_path: Path) -> Settings:
    return Settings(
        mongodb_uri=peer.uri,
        data_dir=tmp_path / "data",
        jwt_secret=JWT_SECRET,
        db_timeout_ms=REQUEST_DEADLINE_MS,
    )


async def readyz(http: Any) -> tuple[int, dict]:
    response = await http.get("/readyz")
    return response.status, await response.json()


async def test_an_index_build_longer_than_the_request_deadline_completes_at_start_up(
    aiohttp_client, tmp_path
):
    async def slow_builds(command: Command) -> object:
        if command_name(command) == "createIndexes" and command["createIndexes"] == "messages":
            await asyncio.sleep(REQUEST_DEADLINE_MS / 1000 * 3)  # a populated collection
        return QUIET

    async with WirePeer(slow_builds) as peer:
        http = await aiohttp_client(init_app(settings_for(peer, tmp_path)))
        assert await readyz(http) == (200, {"status": "ready"})
        builds = peer.commands("createIndexes")
        assert {c["createIndexes"] for c in builds} >= set(INDEXES)
        assert all("maxTimeMS" not in c for c in builds)  # no deadline on a build
        await http.close()


async def test_a_refused_index_leaves_the_other_collections_prepared_and_readyz_names_it(
    aiohttp_client, tmp_path
):
    def refuse_conversations(command: Command) -> object:
        if command_name(command) == "createIndexes" and command["createIndexes"] == "conversations":
            return error(86, "IndexKeySpecsConflict")
        return QUIET

    async with WirePeer(refuse_conversations) as peer:
        http = await aiohttp_client(init_app(settings_for(peer, tmp_path)))
        status, body = await readyz(http)
        assert status == 503
        assert body["reason"].startswith("schema: collections not prepared: conversations: ")
        assert "IndexKeySpecsConflict" in body["reason"]
        prepared = {c["createIndexes"] for c in peer.commands("createIndexes")}
        assert prepared == set(INDEXES) | set(GRIDFS_INDEXES)  # those after it too
        await http.close()


def standalone(command: Command) -> object:
    """What a standalone mongod answers to a change stream."""
    if command_name(command) == "aggregate" and "$changeStream" in command["pipeline"][0]:
        return error(40573, "Location40573")
    return QUIET


async def test_a_standalone_server_is_ready_without_change_streams_by_default(
    aiohttp_client, tmp_path
):
    async with WirePeer(standalone) as peer:
        http = await aiohttp_client(init_app(settings_for(peer, tmp_path)))
        assert await readyz(http) == (200, {"status": "ready"})
        await http.close()


async def test_a_standalone_server_is_not_ready_when_change_streams_are_required(
    aiohttp_client, tmp_path
):
    async with WirePeer(standalone) as peer:
        required = settings_for(peer, tmp_path).model_copy(update={"change_streams": "required"})
        http = await aiohttp_client(init_app(required))
        assert await readyz(http) == (
            503,
            {
                "status": "unavailable",
                "reason": "change streams: this MongoDB offers no change streams",
            },
        )
        await http.close()


async def test_an_index_of_an_earlier_version_is_replaced_under_its_new_name(
    aiohttp_client, tmp_path
):
    earlier = {"v": 2, "key": {"created_by": 1, "client_message_id": 1}, "name": "idempotency"}

    def upgraded_database(command: Command) -> object:
        if command_name(command) == "listIndexes" and command["listIndexes"] == "conversations":
            return cursor(
                "messager.conversations", [{"v": 2, "key": {"_id": 1}, "name": "_id_"}, earlier]
            )
        return QUIET

    async with WirePeer(upgraded_database) as peer:
        http = await aiohttp_client(init_app(settings_for(peer, tmp_path)))
        assert await readyz(http) == (200, {"status": "ready"})
        changes = [
            (command_name(c), c.get("index"))
            for c in peer.received
            if c.get(command_name(c)) == "conversations"
            and command_name(c) in ("dropIndexes", "createIndexes")
        ]
        assert changes == [("dropIndexes", "idempotency"), ("createIndexes", None)]
        await http.close()
