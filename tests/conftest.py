"""Fixtures: one real nx-27017 server per session, a fresh database per test, the app over HTTP.

`api` is the way tests talk to the service: real HTTP requests with a bearer token per user key
of the standard directory (`tests/factories.py`).

With `MESSAGER_TEST_MONGODB_URI` set (a replica set, an Atlas cluster: any connection string,
options included), the whole suite runs against that MongoDB instead, one database per test,
and the tests marked `embedded_only` (they stop, restart or start the embedded server itself)
are skipped.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiohttp.test_utils import TestClient
from pymongo import MongoClient, monitoring

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.database import Db, connect, database_of, ensure_schema
from graphql_api.directory.importer import import_directory
from graphql_api.embedded import EmbeddedServer
from graphql_api.settings import Settings
from tests.factories import STANDARD_DIRECTORY
from tests.node_clients import installed_node
from tests.query_log import QUERY_LOG

JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"

# Every client the tests create (the apps' included) reports its commands to the session's query
# log, which the query-plan and sharding checks read (`tests/query_log.py`).
monitoring.register(QUERY_LOG)

# Tests send many writes as one user; tests of the limits turn them on in their own Settings.
# Set in the environment so that servers started as subprocesses inherit it too.
os.environ.setdefault("MESSAGER_RATE_LIMITS", "false")


TEST_MONGODB_URI = os.environ.get("MESSAGER_TEST_MONGODB_URI")
"""A MongoDB to run the suite against instead of the embedded server."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Checks over the whole session's query log run after every other test; with a MongoDB of
    one's own, the tests of the embedded server itself are skipped."""
    items.sort(key=lambda item: item.get_closest_marker("session_check") is not None)
    if TEST_MONGODB_URI:
        skip = pytest.mark.skip(reason="needs the embedded server (MESSAGER_TEST_MONGODB_URI)")
        for item in items:
            if item.get_closest_marker("embedded_only"):
                item.add_marker(skip)


def with_database(server_uri: str, name: str) -> str:
    """`server_uri` naming database `name`: the path is replaced, the options kept
    (`mongodb://a,b/?replicaSet=rs0` -> `mongodb://a,b/name?replicaSet=rs0`)."""
    parts = urlsplit(server_uri)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture(autouse=True)
def leaks_reported_by_the_test_that_made_them() -> Iterator[None]:
    """Collect garbage after each test: an unclosed socket or client then fails the test that
    left it (warnings are errors), not whichever test the collector happens to run in."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if TEST_MONGODB_URI:
        yield TEST_MONGODB_URI
        return
    server = EmbeddedServer(tmp_path_factory.mktemp("nx-27017"))
    yield server.start()
    server.stop()


@pytest.fixture
def mongo_uri(mongo_server: str) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield with_database(mongo_server, name)
    # Dropping closes the embedded server's file and change-stream triggers of this database:
    # it keeps at most 100 files open and, once the others are busy, evicts the newest one.
    client: MongoClient = MongoClient(mongo_server, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
    finally:
        client.close()


@pytest.fixture
def settings(mongo_uri: str, tmp_path: Path) -> Settings:
    return Settings(mongodb_uri=mongo_uri, data_dir=tmp_path / "data", jwt_secret=JWT_SECRET)


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[Db]:
    client = connect(mongo_uri)
    database = database_of(client)
    assert not await ensure_schema(database)
    yield database
    await client.close()


@pytest.fixture
async def ids(db: Db) -> dict[str, dict[str, str]]:
    """The standard directory, imported; `ids["users"]["alice"]` is alice's id."""
    return await import_directory(db, STANDARD_DIRECTORY)


@pytest.fixture
async def http(aiohttp_client: Any, settings: Settings) -> TestClient:
    return await aiohttp_client(init_app(settings))


@dataclass
class Api:
    """GraphQL over real HTTP, as a named user of the standard directory."""

    http: TestClient
    tokens: TokenService
    ids: dict[str, dict[str, str]]

    def token(self, user: str, ttl_seconds: int = 600) -> str:
        return self.tokens.issue(self.ids["users"][user], ttl_seconds=ttl_seconds)

    def headers(self, user: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"} if user else {}

    async def raw(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The whole JSON answer (data and errors)."""
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={**self.headers(as_), **(headers or {})},
        )
        assert response.status == 200, await response.text()
        return await response.json()

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = None
    ) -> dict[str, Any]:
        """The `data` of an answer that must have no errors."""
        body = await self.raw(query, variables, as_=as_)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def error_code(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = None
    ) -> str:
        """The `extensions.code` of the single error an answer must have."""
        body = await self.raw(query, variables, as_=as_)
        assert body.get("errors"), body
        return body["errors"][0]["extensions"]["code"]


@pytest.fixture
async def api(http: TestClient, settings: Settings, ids: dict[str, dict[str, str]]) -> Api:
    return Api(http=http, tokens=TokenService(settings), ids=ids)


@pytest.fixture
def database_server(tmp_path: Path) -> Iterator[Any]:
    """A database of the test's own that the test may stop and restart (`tests/test_faults.py`)."""
    from tests.fault_helpers import RestartableServer  # it needs this module's `Api`

    server = RestartableServer(tmp_path / "nx")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` executable, with tests/js's packages installed (`tests/node_clients.py`)."""
    return installed_node()
