"""A small `graphql-transport-ws` client on aiohttp's WebSocket client, for the realtime tests.

It speaks the protocol over a real socket to the running app (no view internals): open a
connection (`connection_init` with the `Authorization` payload key, then `connection_ack`),
`subscribe`, read `next`/`error`/`complete` messages, `complete` an operation, and observe how the
server closes the socket. Every wait is bounded by `WAIT_SECONDS` so that a missing event fails
the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
WAIT_SECONDS = 10.0

_CLOSE_TYPES = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class SocketClosed(Exception):
    """The server closed the socket; `code` is its close code."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"socket closed with code {code} {reason!r}")
        self.code = code
        self.reason = reason


async def receive_json(ws: ClientWebSocketResponse, seconds: float = WAIT_SECONDS) -> Any:
    """The next text message, decoded; `SocketClosed` when the server closes instead."""
    message = await asyncio.wait_for(ws.receive(), seconds)
    if message.type == WSMsgType.TEXT:
        return json.loads(message.data)
    if message.type == WSMsgType.CLOSE:
        # The code the server sent (`ws.close_code` may instead say 1006 when the server drops
        # the transport before the client's closing reply is written).
        raise SocketClosed(message.data, message.extra or "")
    if message.type in _CLOSE_TYPES:
        raise SocketClosed(ws.close_code)
    raise AssertionError(f"unexpected WebSocket message {message!r}")


async def close_code(ws: ClientWebSocketResponse, seconds: float = WAIT_SECONDS) -> int | None:
    """Wait until the server closes the socket and answer its close code; any text message
    before that fails (use `drain_until_closed` when messages may come first)."""
    try:
        message = await receive_json(ws, seconds)
    except SocketClosed as closed:
        return closed.code
    raise AssertionError(f"expected the socket to close, got {message!r}")


async def drain_until_closed(
    ws: ClientWebSocketResponse, seconds: float = WAIT_SECONDS
) -> tuple[list[Any], int | None]:
    """Every text message until the server closes the socket, and the close code."""
    received: list[Any] = []
    while True:
        try:
            received.append(await receive_json(ws, seconds))
        except SocketClosed as closed:
            return received, closed.code


def bearer(token: str) -> str:
    return f"Bearer {token}"


class GraphQLWs:
    """One `graphql-transport-ws` connection."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    @classmethod
    async def connect(
        cls, http: TestClient, authorization: str | None, **ws_options: Any
    ) -> GraphQLWs:
        """Open a connection and complete `connection_init` (answered by `connection_ack`)."""
        client = await cls.open(http, **ws_options)
        try:
            await client.init(authorization)
            ack = await client.receive()
            assert ack["type"] == "connection_ack", ack
        except BaseException:
            await client.close()
            raise
        return client

    @classmethod
    async def open(cls, http: TestClient, **ws_options: Any) -> GraphQLWs:
        """Open a socket without initialising it."""
        ws = await http.ws_connect("/graphql", protocols=[TRANSPORT_WS], **ws_options)
        assert ws.protocol == TRANSPORT_WS
        return cls(ws)

    async def init(self, authorization: str | None) -> None:
        payload = {} if authorization is None else {"Authorization": authorization}
        await self.send({"type": "connection_init", "payload": payload})

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_json(message)

    async def receive(self, seconds: float = WAIT_SECONDS) -> Any:
        return await receive_json(self.ws, seconds)

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        """Start an operation; answers its id."""
        operation_id = str(next(self._ids))
        await self.send(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return operation_id

    async def complete(self, operation_id: str) -> None:
        await self.send({"id": operation_id, "type": "complete"})

    async def next_data(self, operation_id: str, seconds: float = WAIT_SECONDS) -> Any:
        """The `data` of the next message, which must be an error-free `next` of that
        operation."""
        message = await self.receive(seconds)
        assert message.get("id") == operation_id and message["type"] == "next", message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]

    async def receive_until(
        self, stop: Callable[[Any], bool], seconds: float = WAIT_SECONDS
    ) -> list[Any]:
        """Every message up to and including the first one `stop` accepts."""
        received: list[Any] = []
        while True:
            message = await self.receive(seconds)
            received.append(message)
            if stop(message):
                return received

    async def ping(self) -> None:
        """A `ping`/`pong` round trip: the server has read everything sent before it."""
        await self.send({"type": "ping"})
        message = await self.receive()
        assert message == {"type": "pong"}, message

    async def close(self) -> None:
        await self.ws.close()

    async def __aenter__(self) -> GraphQLWs:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def next_message(operation_id: str, data: Any) -> dict[str, Any]:
    """The `next` message an operation answers with `data`."""
    return {"id": operation_id, "type": "next", "payload": {"data": data}}


def error_message(operation_id: str, message: str, code: str) -> dict[str, Any]:
    """The `next` message of an operation that failed with one product error (the product
    answers expected failures with a message and `extensions.code` only)."""
    return {
        "id": operation_id,
        "type": "next",
        "payload": {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]},
    }


def complete_message(operation_id: str) -> dict[str, str]:
    return {"id": operation_id, "type": "complete"}


__all__ = [
    "LEGACY_WS",
    "TRANSPORT_WS",
    "WAIT_SECONDS",
    "GraphQLWs",
    "SocketClosed",
    "bearer",
    "close_code",
    "complete_message",
    "drain_until_closed",
    "error_message",
    "next_message",
    "receive_json",
]
