"""A scriptable MongoDB wire peer: a real TCP server speaking MongoDB's wire protocol, whose
answers a test writes, for the fail-over paths the embedded server never produces.

It presents itself as a `mongos` (so PyMongo enables retryable writes and change streams) and
answers the handshake, `ping` and `endSessions` itself; every other command goes to the test's
`script`, which answers a reply document, `HANG_UP` (the connection drops before any answer,
as when a primary steps down mid-write) or `QUIET` (the default answer of an empty database).
Every command is kept in `received`, so a test asserts what the driver sent (its resume token,
its transaction number, its write concern).

Written on asyncio with PyMongo's own `bson` rather than on npm's `mongodb-mock-server`: the
tests stay in one language and process, the peer needs no package of its own, and the protocol
part is small (OP_QUERY for the first `hello` of a connection, OP_MSG for everything else).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import bson

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
HEADER = struct.Struct("<iiii")
HANDSHAKE = {"hello", "ismaster", "isMaster"}

Command = dict[str, Any]
HANG_UP = object()
QUIET = object()
Script = Callable[[Command], Awaitable[object] | object]


def error(code: int, name: str, *labels: str) -> Command:
    """A command error as a server answers it."""
    reply: Command = {"ok": 0, "code": code, "codeName": name, "errmsg": f"{name} (scripted)"}
    if labels:
        reply["errorLabels"] = list(labels)
    return reply


def cursor(
    namespace: str,
    batch: list[Command],
    cursor_id: int = 0,
    first: bool = True,
    resume_token: Command | None = None,
) -> Command:
    """A find, aggregate or getMore answer."""
    body: Command = {"id": bson.Int64(cursor_id), "ns": namespace}
    body["firstBatch" if first else "nextBatch"] = batch
    if resume_token is not None:
        body["postBatchResumeToken"] = resume_token
    return {"ok": 1, "cursor": body}


def command_name(command: Command) -> str:
    return next(iter(command))


def quiet_answer(command: Command) -> Command:
    """What an empty database answers: no documents, every write acknowledged."""
    name = command_name(command)
    database = command.get("$db", "test")
    if name == "aggregate" and "$changeStream" in (command.get("pipeline") or [{}])[0]:
        # A change stream stays open and quiet.
        return cursor(f"{database}.{command[name]}", [], 42, resume_token={"_data": "quiet"})
    if name == "getMore" and command["getMore"] == 42:
        return cursor(f"{database}.{command['collection']}", [], 42, False, {"_data": "quiet"})
    if name in ("find", "aggregate", "listCollections", "listIndexes"):
        target = command[name] if isinstance(command[name], str) else "$cmd"
        return cursor(f"{database}.{target}", [])
    if name == "getMore":
        return cursor(f"{database}.{command['collection']}", [], first=False)
    if name in ("insert", "update", "delete"):
        return {"ok": 1, "n": 0, "nModified": 0}
    if name == "findAndModify":
        return {"ok": 1, "value": None, "lastErrorObject": {"n": 0, "updatedExisting": False}}
    if name == "buildInfo":
        return {"ok": 1, "version": "7.0.0", "process": "mongos"}
    return {"ok": 1}


class WirePeer:
    """One listening peer on a loopback port; `uri` is its connection string."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or (lambda _: QUIET)
        self.received: list[Command] = []
        self._server: asyncio.Server | None = None
        self._connections = itertools.count(1)
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def uri(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"mongodb://{host}:{port}/messager?serverSelectionTimeoutMS=5000"

    def commands(self, name: str) -> list[Command]:
        return [c for c in self.received if command_name(c) == name]

    async def __aenter__(self) -> WirePeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        connection = next(self._connections)
        try:
            while True:
                header = await reader.readexactly(HEADER.size)
                length, request_id, _, opcode = HEADER.unpack(header)
                body = await reader.readexactly(length - HEADER.size)
                command = _parse(opcode, body)
                answer = await self._answer(command, connection)
                if answer is HANG_UP:
                    return
                writer.write(_reply(opcode, request_id, answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, command: Command, connection: int) -> object:
        name = command_name(command)
        if name in HANDSHAKE:
            return _hello(connection)
        if name in ("ping", "endSessions"):
            return {"ok": 1}
        self.received.append(command)
        answer = self.script(command)
        if asyncio.iscoroutine(answer):
            answer = await answer
        return quiet_answer(command) if answer is QUIET else answer


def _hello(connection: int) -> Command:
    return {
        "ismaster": True,
        "isWritablePrimary": True,
        "helloOk": True,
        "msg": "isdbgrid",
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": datetime.now(UTC),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": connection,
        "minWireVersion": 0,
        "maxWireVersion": 21,
        "ok": 1,
    }


def _parse(opcode: int, body: bytes) -> Command:
    if opcode == OP_QUERY:
        collection_end = body.index(b"\0", 4)
        query_start = collection_end + 1 + 8  # skip, return
        (size,) = struct.unpack_from("<i", body, query_start)
        return bson.decode(body[query_start : query_start + size])
    if opcode != OP_MSG:
        raise ConnectionError(f"unexpected opcode {opcode}")
    command: Command = {}
    position = 4  # flag bits
    while position < len(body):
        kind = body[position]
        position += 1
        (size,) = struct.unpack_from("<i", body, position)
        if kind == 0:
            command = {**bson.decode(body[position : position + size]), **command}
        else:  # a document sequence (the documents of an insert, the updates of an update)
            section = body[position + 4 : position + size]
            name_end = section.index(b"\0")
            field = section[:name_end].decode()
            command[field] = bson.decode_all(section[name_end + 1 :])
        position += size
    return command


def _reply(opcode: int, request_id: int, answer: object) -> bytes:
    assert isinstance(answer, dict)
    document = bson.encode(answer)
    if opcode == OP_QUERY:
        body = struct.pack("<iqii", 0, 0, 0, 1) + document
        code = OP_REPLY
    else:
        body = struct.pack("<I", 0) + b"\0" + document
        code = OP_MSG
    return HEADER.pack(HEADER.size + len(body), 0, request_id, code) + body
