"""A process recovers from any single request (issue 20, finding 1): a request past its deadline
is stopped and answers `REQUEST_TIMEOUT`, an abandoned or stopped request gives its connections
back, `/readyz` answers within its bound whatever the pool's state, and a wait for a pooled
connection that is cancelled twice does not lock the pool for good.

The probe of issue 20 wedged a process: afterwards every GraphQL request and `/readyz` hung
until it was killed. The cause was Python 3.11's `asyncio.wait_for` inside PyMongo's pool (see
`graphql_api/pymongo_patch.py`). The outage tests run their own embedded database and stop it
with SIGSTOP (a database that accepts connections but never answers), as `tests/test_faults.py`
does. Waits are bounded, never measured.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import warnings
from pathlib import Path

import aiohttp
import pymongo.lock
import pymongo.pool_shared as pool_shared
import pytest
from pymongo.pool_options import PoolOptions

from graphql_api import pymongo_patch
from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.database import connect, database_of, ensure_schema
from graphql_api.directory.importer import import_directory
from graphql_api.settings import Settings
from tests.conftest import JWT_SECRET, Api
from tests.factories import STANDARD_DIRECTORY
from tests.fault_helpers import (
    ANSWER_BOUND,
    WATCHERS_SETTLE_SECONDS,
    RestartableServer,
    until_ready,
)

VIEWER = "{ viewer { name } }"
REQUEST_TIMEOUT_SECONDS = 1.0
READINESS_BOUND = 5.0  # seconds: /readyz's own bound is 2 s


async def stuck_app(
    database_server: RestartableServer, aiohttp_client, tmp_path: Path, **overrides: object
) -> Api:
    """The app on its own database server, with `overrides` of its settings."""
    settings = Settings(
        **{
            "mongodb_uri": f"{database_server.uri}/messager",
            "data_dir": tmp_path / "data",
            "jwt_secret": JWT_SECRET,
            **overrides,
        }
    )
    client = connect(f"{database_server.uri}/messager")
    try:
        db = database_of(client)
        await ensure_schema(db)
        ids = await import_directory(db, STANDARD_DIRECTORY)
    finally:
        await client.close()
    http = await aiohttp_client(init_app(settings))
    return Api(http=http, tokens=TokenService(settings), ids=ids)


@pytest.fixture
async def deadline_api(database_server: RestartableServer, aiohttp_client, tmp_path: Path):
    """Requests stopped after 1 s; database operations would wait a minute."""
    api = await stuck_app(
        database_server,
        aiohttp_client,
        tmp_path,
        request_timeout_seconds=REQUEST_TIMEOUT_SECONDS,
        db_timeout_ms=60_000,
    )
    yield api
    await settle(api, database_server)


@pytest.fixture
async def one_connection_api(database_server: RestartableServer, aiohttp_client, tmp_path: Path):
    """A pool of one connection (`maxPoolSize=1` in the URI); nothing times out for a minute."""
    database_server_uri = database_server.uri
    api = await stuck_app(
        database_server,
        aiohttp_client,
        tmp_path,
        mongodb_uri=f"{database_server_uri}/messager?maxPoolSize=1",
        request_timeout_seconds=60.0,
        db_timeout_ms=60_000,
    )
    yield api
    await settle(api, database_server)


async def settle(api: Api, database_server: RestartableServer) -> None:
    """Let the database answer again and the app's watchers reopen before the app closes."""
    if database_server.process is not None:
        database_server.process.send_signal(signal.SIGCONT)
    await until_ready(api)
    await asyncio.sleep(WATCHERS_SETTLE_SECONDS)


async def readyz(api: Api) -> int:
    response = await asyncio.wait_for(api.http.get("/readyz"), READINESS_BOUND)
    return response.status


async def post(api: Api, query: str) -> dict:
    response = await asyncio.wait_for(
        api.http.post("/graphql", json={"query": query}, headers=api.headers("alice")),
        ANSWER_BOUND,
    )
    assert response.status == 200, await response.text()
    return await response.json()


# -- a request past its deadline ------------------------------------------------------------------


async def test_a_request_past_its_deadline_answers_request_timeout_and_the_process_serves_on(
    deadline_api, database_server
):
    assert await deadline_api.gql(VIEWER, as_="alice") == {"viewer": {"name": "Alice Roy"}}
    database_server.process.send_signal(signal.SIGSTOP)
    answer = await post(deadline_api, "{ conversations(first: 5) { edges { node { id } } } }")
    assert answer == {
        "data": None,
        "errors": [
            {
                "message": "the request did not finish within 1 seconds and was stopped; ask "
                "for less (smaller pages) or try again (a write may or may not have been saved: "
                "resend it with the same clientMessageId)",
                "extensions": {"code": "REQUEST_TIMEOUT"},
            }
        ],
    }
    assert await readyz(deadline_api) == 503  # the database still does not answer
    database_server.process.send_signal(signal.SIGCONT)
    await until_ready(deadline_api)
    assert await deadline_api.gql(VIEWER, as_="alice") == {"viewer": {"name": "Alice Roy"}}


async def test_requests_abandoned_by_their_clients_leave_the_process_serving(
    deadline_api, database_server
):
    database_server.process.send_signal(signal.SIGSTOP)
    # Clients that give up (a closed tab, a proxy's timeout) before the answer comes.
    async with aiohttp.ClientSession(str(deadline_api.http.make_url("/"))) as session:
        for _ in range(20):
            with pytest.raises(TimeoutError):
                await session.post(
                    "/graphql",
                    json={"query": "{ conversations(first: 5) { edges { node { id } } } }"},
                    headers=deadline_api.headers("alice"),
                    timeout=aiohttp.ClientTimeout(total=0.2),
                )
    database_server.process.send_signal(signal.SIGCONT)
    await until_ready(deadline_api)
    answers = await asyncio.gather(*(post(deadline_api, VIEWER) for _ in range(20)))
    assert answers == [{"data": {"viewer": {"name": "Alice Roy"}}}] * 20


# -- readiness ------------------------------------------------------------------------------------


async def test_readyz_answers_503_within_its_bound_while_no_pooled_connection_is_free(
    one_connection_api, database_server
):
    assert await readyz(one_connection_api) == 200
    database_server.process.send_signal(signal.SIGSTOP)
    # A request takes the pool's only connection and waits for the stopped database.
    stuck = asyncio.create_task(post(one_connection_api, VIEWER))
    await asyncio.sleep(0.5)
    assert await readyz(one_connection_api) == 503
    database_server.process.send_signal(signal.SIGCONT)
    assert await stuck == {"data": {"viewer": {"name": "Alice Roy"}}}
    await until_ready(one_connection_api)


# -- the pool's lock -------------------------------------------------------------------------------


async def test_a_wait_for_a_pooled_connection_cancelled_twice_leaves_the_pool_unlocked(
    database_server,
):
    """The wedge of issue 20, on the primitives PyMongo's pool waits with: a checkout waiting
    for a free connection (`_async_cond_wait` on the pool's condition), whose request is
    cancelled once and then again while another task holds the pool's lock. On Python 3.11
    without `graphql_api.pymongo_patch` the lock stays taken when the dust settles, and every
    later checkout waits for it forever."""
    client = connect(database_server.uri)  # the app's client: installs the patch
    lock = pymongo.lock._async_create_lock()
    pool_condition = pymongo.lock._async_create_condition(lock)

    async def checkout() -> None:
        async with pool_condition:
            await pymongo.lock._async_cond_wait(pool_condition, 10.0)

    waiting = asyncio.create_task(checkout())
    await asyncio.sleep(0.05)  # waiting for a connection to come back
    await lock.acquire()  # another checkout holds the pool's lock...
    waiting.cancel()  # ...when the request is cancelled (a sibling field failed)...
    await asyncio.sleep(0.05)
    waiting.cancel()  # ...and cancelled again (its parent list is cancelled too)
    lock.release()  # the other checkout is done with the lock
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0.05)
    assert not lock.locked()
    try:
        assert (await database_of(client).command("ping"))["ok"] == 1
    finally:
        await client.close()


async def test_a_connection_attempt_cancelled_as_it_connects_closes_its_socket():
    """A request's cleanup or a stopped change stream cancels connection attempts: the socket
    an attempt created is closed, even when its connect had already succeeded. (Without
    `graphql_api.pymongo_patch` the connected socket stays open until the collector finds it.)"""
    pymongo_patch.install()  # as `graphql_api.database.connect` does
    listener = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)
    address = listener.sockets[0].getsockname()[:2]
    leaked: list[str] = []
    try:
        for delay in range(60):  # the cancellation lands before, during or after the connect
            attempt = asyncio.create_task(
                pool_shared._async_create_connection(address, PoolOptions(connect_timeout=5))
            )
            await asyncio.sleep(delay * 0.0001)
            attempt.cancel()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    sock = await attempt
                except asyncio.CancelledError:
                    pass
                else:
                    sock.close()
                del attempt
                gc.collect()
            leaked += [str(w.message) for w in caught if w.category is ResourceWarning]
    finally:
        listener.close()
        await listener.wait_closed()
    assert leaked == []
