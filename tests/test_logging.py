"""JSON log lines (SPEC §19): with `MESSAGER_LOG_FORMAT=json`, `messager serve` writes one JSON
object per line on stderr, and every line written for a request carries that request's id (the
`X-Request-Id` its client received), from the failure's traceback to the access line."""

from __future__ import annotations

import json

import aiohttp

from graphql_api.auth import TokenService
from graphql_api.embedded import free_port
from graphql_api.settings import Settings
from tests.cli_helpers import cli_env
from tests.conftest import JWT_SECRET
from tests.server_process import serving


async def test_json_logs_carry_the_request_id_on_every_line_of_a_request(
    tmp_path, mongo_uri, db, ids
):
    env = {**cli_env(tmp_path / "data", mongo_uri, JWT_SECRET), "MESSAGER_LOG_FORMAT": "json"}
    # A firm reference the database refuses in a query: alice's company query fails unexpectedly.
    await db.users.update_one({"_id": ids["users"]["alice"]}, {"$set": {"firm_id": {"$foo": 1}}})
    token = TokenService(Settings(jwt_secret=JWT_SECRET, data_dir=tmp_path)).issue(
        ids["users"]["alice"]
    )
    with serving(env=env, log_dir=tmp_path, name="serve", port=free_port()) as serve:
        await serve.until_healthy()
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{serve.url}/graphql?sig=secret-in-the-query",
                json={"query": "query Companies { companies { name } }"},
                headers={"Authorization": f"Bearer {token}"},
            ) as answer:
                request_id = answer.headers["X-Request-Id"]
                body = await answer.json()
            async with session.get(f"{serve.url}/healthz") as answer:  # the next request
                assert answer.status == 200
        stderr = (tmp_path / "serve.err").read_text()

    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert [line["level"] for line in mine] == ["ERROR", "INFO"], mine
    failure, access = mine
    assert failure["logger"] == "graphql_api.errors"
    assert "Traceback" in failure["exception"]
    assert access["logger"] == "aiohttp.access"
    assert (access["method"], access["path"], access["status"]) == ("POST", "/graphql", 200)
    assert "secret-in-the-query" not in stderr  # query strings may hold signed links
    # The lines that speak of this request all carry its id.
    assert all(line in mine for line in lines if request_id in line["message"])
    healthz = [line for line in lines if line.get("path") == "/healthz"]
    assert healthz and all(line["request_id"] != request_id for line in healthz)
