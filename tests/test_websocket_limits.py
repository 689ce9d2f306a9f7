"""WebSocket limits (issue 6): cross-site handshakes, subscriptions per connection, message size,
heartbeat, token expiry while connected, and going away on shutdown.

Real app, real sockets (aiohttp's WebSocket client speaking `graphql-transport-ws`, see
`tests/ws_client.py`). Every wait is bounded; none is a measured time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestServer

from graphql_api.app import WS_MAX_MESSAGE_BYTES, init_app
from graphql_api.auth import TokenService
from graphql_api.embedded import free_port
from graphql_api.keys import SERVICES
from graphql_api.realtime.streams import MAX_SUBSCRIPTIONS_PER_CONNECTION
from graphql_api.settings import Settings
from tests.cli_helpers import cli_env
from tests.conftest import Api
from tests.documents import CREATE_CONVERSATION
from tests.server_process import STOP_TIMEOUT, serving
from tests.subscription_helpers import wait_for_subscribers
from tests.ws_client import (
    TRANSPORT_WS,
    WAIT_SECONDS,
    GraphQLWs,
    SocketClosed,
    bearer,
    complete_message,
    receive_json,
)

NOTIFICATION_ADDED = "subscription { notificationAdded { message { bodyText } } }"


async def handshake_status(http, origin: str | None) -> int:
    """101 when the server upgrades the connection, else the HTTP status it answered."""
    headers = {"Origin": origin} if origin is not None else {}
    try:
        ws = await http.ws_connect("/graphql", protocols=[TRANSPORT_WS], headers=headers)
    except aiohttp.WSServerHandshakeError as refused:
        return refused.status
    await ws.close()
    return 101


async def paul_writes_to_alice(api: Api, text: str) -> None:
    """A new PRIVATE conversation from paul to alice: one notification for alice."""
    await api.gql(
        CREATE_CONVERSATION,
        {
            "input": {
                "type": "PRIVATE",
                "participantIds": [api.ids["users"]["alice"]],
                "subject": "Hello",
                "body": f"<p>{text}</p>",
            }
        },
        as_="paul",
    )


@pytest.fixture
async def cors_http(aiohttp_client, settings: Settings):
    return await aiohttp_client(
        init_app(settings.model_copy(update={"cors_origins": ["https://app.example"]}))
    )


# -- cross-site WebSocket hijacking -------------------------------------------------------------


async def test_handshake_from_a_foreign_origin_is_refused_with_403(http):
    headers = {"Origin": "https://evil.example"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect("/graphql", protocols=[TRANSPORT_WS], headers=headers)
    assert refused.value.status == 403


async def test_foreign_origin_refusal_names_the_reason(http):
    response = await http.get(
        "/graphql",
        headers={
            "Origin": "https://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": TRANSPORT_WS,
        },
    )
    assert response.status == 403
    assert await response.json() == {
        "error": {"code": "FORBIDDEN", "message": "origin not allowed"}
    }


async def test_handshake_from_the_apis_own_origin_is_accepted(http):
    own = str(http.make_url("/").origin())
    assert await handshake_status(http, own) == 101


async def test_handshake_without_an_origin_is_accepted(http):
    # Not a browser (a native app, a server): nothing to forge, the token still decides.
    assert await handshake_status(http, None) == 101


async def test_handshake_from_a_configured_cors_origin_is_accepted(cors_http):
    assert await handshake_status(cors_http, "https://app.example") == 101


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.evil.example",
        "http://app.example",
        "https://app.example:8443",
        "null",
    ],
)
async def test_handshake_from_an_origin_near_a_configured_one_is_refused(cors_http, origin):
    assert await handshake_status(cors_http, origin) == 403


# -- subscription floods --------------------------------------------------------------------------


async def test_a_21st_subscription_on_one_connection_is_refused_and_the_first_20_keep_working(
    api,
):
    assert MAX_SUBSCRIPTIONS_PER_CONNECTION == 20
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as client:
        operations = [await client.subscribe(NOTIFICATION_ADDED) for _ in range(20)]
        await wait_for_subscribers(api, 20)
        refused = await client.subscribe(NOTIFICATION_ADDED)
        assert await client.receive() == {
            "id": refused,
            "type": "next",
            "payload": {
                "data": None,
                "errors": [
                    {
                        "message": "a connection may run at most 20 subscriptions",
                        "extensions": {"code": "BAD_USER_INPUT"},
                    }
                ],
            },
        }
        assert await client.receive() == complete_message(refused)

        await paul_writes_to_alice(api, "to all twenty")
        delivered = [await client.receive() for _ in operations]
        assert sorted(m["id"] for m in delivered) == sorted(operations)
        expected = {"data": {"notificationAdded": {"message": {"bodyText": "to all twenty"}}}}
        assert [m["payload"] for m in delivered] == [expected] * 20


async def test_a_completed_subscription_frees_its_place(api):
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as client:
        operations = [await client.subscribe(NOTIFICATION_ADDED) for _ in range(20)]
        await wait_for_subscribers(api, 20)
        await client.complete(operations[0])
        await client.ping()
        await wait_for_subscriber_count(api, 19)
        replacement = await client.subscribe(NOTIFICATION_ADDED)
        await wait_for_subscribers(api, 20)
        await paul_writes_to_alice(api, "after the swap")
        delivered = [await client.receive() for _ in range(20)]
        assert sorted(m["id"] for m in delivered) == sorted([*operations[1:], replacement])


async def wait_for_subscriber_count(api: Api, count: int) -> None:
    """Until the app's hub holds exactly `count` subscriptions (after an unsubscribe)."""
    hub = api.http.app[SERVICES].hub
    async with asyncio.timeout(WAIT_SECONDS):
        while hub.subscriber_count != count:  # noqa: ASYNC110 (the hub offers no event for it)
            await asyncio.sleep(0.01)


# -- oversized messages, dead peers ---------------------------------------------------------------


async def test_a_message_over_64_kib_closes_the_connection_with_1009(api):
    assert WS_MAX_MESSAGE_BYTES == 64 * 1024
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as client:
        await client.ws.send_str("x" * (WS_MAX_MESSAGE_BYTES + 1))
        with pytest.raises(SocketClosed) as closed:
            await client.receive()
        assert closed.value.code == 1009


async def test_a_message_just_under_64_kib_is_read(api):
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as client:
        envelope = json.dumps({"type": "ping", "payload": {"pad": ""}})
        pad = WS_MAX_MESSAGE_BYTES - 1 - len(envelope)
        message = json.dumps({"type": "ping", "payload": {"pad": "x" * pad}})
        assert len(message) == WS_MAX_MESSAGE_BYTES - 1
        await client.ws.send_str(message)
        assert await client.receive() == {"type": "pong"}


@pytest.fixture
async def fast_heartbeat_http(aiohttp_client, settings: Settings):
    return await aiohttp_client(init_app(settings.model_copy(update={"ws_heartbeat_seconds": 0.5})))


async def test_a_peer_that_never_answers_pings_is_dropped(api, fast_heartbeat_http):
    ws = await fast_heartbeat_http.ws_connect("/graphql", protocols=[TRANSPORT_WS], autoping=False)
    try:
        await ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": bearer(api.token("alice"))}}
        )
        kinds = []
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                message = await ws.receive()
                kinds.append(message.type)
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        assert WSMsgType.PING in kinds  # the server asked...
        assert kinds[-1] in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)  # ...then hung up
    finally:
        await ws.close()


# -- token expiry while connected -----------------------------------------------------------------


async def test_a_token_that_expires_while_connected_closes_the_socket_with_4401(api, settings):
    token = TokenService(settings).issue(api.ids["users"]["alice"], ttl_seconds=2)
    async with await GraphQLWs.connect(api.http, bearer(token)) as client:
        await client.subscribe(NOTIFICATION_ADDED)
        with pytest.raises(SocketClosed) as closed:
            await client.receive(seconds=15)
        assert (closed.value.code, closed.value.reason) == (4401, "Unauthorized: token expired")


# -- going away -----------------------------------------------------------------------------------


async def test_server_shutdown_closes_open_sockets_with_1001(settings: Settings, ids):
    server = TestServer(init_app(settings))
    await server.start_server()
    token = TokenService(settings).issue(ids["users"]["alice"])
    stopping = None
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(server.make_url("/graphql"), protocols=[TRANSPORT_WS])
            await ws.send_json(
                {"type": "connection_init", "payload": {"Authorization": bearer(token)}}
            )
            assert await receive_json(ws) == {"type": "connection_ack", "payload": None}
            await ws.send_json(
                {"id": "1", "type": "subscribe", "payload": {"query": NOTIFICATION_ADDED}}
            )
            stopping = asyncio.create_task(server.close())
            with pytest.raises(SocketClosed) as closed:
                await receive_json(ws)
            assert (closed.value.code, closed.value.reason) == (1001, "server shutting down")
            await asyncio.wait_for(stopping, WAIT_SECONDS)
    finally:
        if stopping is None:
            await server.close()


def multipart_upload(first: bytes, rest: bytes, go_on: asyncio.Event):
    """A multipart body sent in two halves: the second once `go_on` is set."""
    boundary = "hardening-boundary"

    async def body():
        yield (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="late.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode() + first
        await go_on.wait()
        yield rest + f"\r\n--{boundary}--\r\n".encode()

    return body(), f"multipart/form-data; boundary={boundary}"


async def until_an_upload_is_in_progress(db) -> None:
    """Until the upload handler runs: it stores an "uploading" record before reading the file."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not await db.attachments.count_documents({"state": "uploading"}):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


UPLOAD_FINISH = 5.0  # seconds for the last 11 bytes of an upload; the shutdown grace is 15


async def test_sigterm_finishes_an_upload_in_flight(tmp_path, mongo_uri, db, ids):
    """SIGTERM to `messager serve` while an upload is half sent and a client is connected: the
    client is told 1001 at once, the upload still completes (201), and serve exits 0."""
    env = cli_env(tmp_path / "data", mongo_uri)
    port = free_port()
    secret = env["MESSAGER_JWT_SECRET"]
    token = TokenService(Settings(jwt_secret=secret)).issue(ids["users"]["alice"])
    with serving(env=env, log_dir=tmp_path, name="serve", port=port) as serve:
        await serve.until_healthy()
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(
                f"ws://127.0.0.1:{port}/graphql", protocols=[TRANSPORT_WS]
            )
            await ws.send_json(
                {"type": "connection_init", "payload": {"Authorization": bearer(token)}}
            )
            assert await receive_json(ws) == {"type": "connection_ack", "payload": None}

            go_on = asyncio.Event()
            body, content_type = multipart_upload(b"first half, ", b"second half", go_on)
            upload = asyncio.create_task(
                session.post(
                    f"http://127.0.0.1:{port}/attachments",
                    data=body,
                    headers={"Authorization": bearer(token), "Content-Type": content_type},
                )
            )
            try:
                await until_an_upload_is_in_progress(db)
                serve.process.send_signal(signal.SIGTERM)
                with pytest.raises(SocketClosed) as closed:
                    await receive_json(ws)
                assert closed.value.code == 1001  # the server is shutting down
                go_on.set()  # now the rest of the upload
                response = await asyncio.wait_for(upload, UPLOAD_FINISH)
                assert response.status == 201, await response.text()
                assert (await response.json())["size"] == len(b"first half, second half")
            finally:
                go_on.set()
                upload.cancel()
                with contextlib.suppress(BaseException):
                    await upload
            exit_code = await asyncio.to_thread(serve.process.wait, STOP_TIMEOUT)
    assert exit_code == 0, serve.output()
