"""What the multiprocess tests share: talking to a real `messager serve` subprocess.

tests/test_multiprocess.py and tests/test_multiprocess_changes.py both run several serves on one
database and drive them through these: `gql` over HTTP, `Subscriber` over `graphql-transport-ws`,
the spec's directory with paul (`LIVE_DIRECTORY`, imported with `import_live_directory`) and the
bakery conversation the live tests start from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp

from graphql_api.auth import TokenService
from graphql_api.database import connect, database_of
from graphql_api.directory.importer import import_directory
from graphql_api.settings import Settings
from tests.cli_helpers import SPEC_DIRECTORY
from tests.conftest import JWT_SECRET
from tests.server_process import Serve

WAIT = 10.0  # for one event, one answer, one process
GRAPHQL_TRANSPORT_WS = "graphql-transport-ws"

CREATE = """
mutation($input: CreateConversationInput!) {
  createConversation(input: $input) { id messages(first: 1) { edges { cursor node { id } } } }
}
"""

# The spec's directory and paul, a practitioner without favorites: alice reads the bakery's
# conversations through her favorite only, bob as a client of the bakery.
LIVE_DIRECTORY: dict[str, Any] = {
    **SPEC_DIRECTORY,
    "users": [
        *SPEC_DIRECTORY["users"],
        {
            "key": "paul",
            "firm": "acme",
            "kind": "PRACTITIONER",
            "name": "Paul Girard",
            "email": "paul@acme.test",
            "favorites": [],
        },
    ],
}


# -- Talking to a server --------------------------------------------------------------------------


async def gql(
    session: aiohttp.ClientSession, serve: Serve, token: str, query: str, variables: Any = None
) -> dict[str, Any]:
    """The `data` of one request to `serve` as `token`'s user, which must answer no error."""
    async with session.post(
        f"{serve.url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=aiohttp.ClientTimeout(total=WAIT),
    ) as response:
        body = await response.json()
    assert response.status == 200 and not body.get("errors"), body
    return body["data"]


class Subscriber:
    """One `graphql-transport-ws` connection, authenticated in `connection_init`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._operations = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, url: str, token: str) -> Subscriber:
        ws = await asyncio.wait_for(
            session.ws_connect(
                url,
                protocols=[GRAPHQL_TRANSPORT_WS],
                timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
            ),
            WAIT,
        )
        assert ws.protocol == GRAPHQL_TRANSPORT_WS
        await ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        )
        ack = await ws.receive_json(timeout=WAIT)
        assert ack["type"] == "connection_ack", ack
        return cls(ws)

    @property
    def client_port(self) -> int:
        return self.ws.get_extra_info("sockname")[1]

    def _queue(self, operation: str) -> asyncio.Queue[dict[str, Any]]:
        return self.queues.setdefault(operation, asyncio.Queue())

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message["type"] == "ping":
                await self.ws.send_json({"type": "pong"})
            elif "id" in message:
                self._queue(message["id"]).put_nowait(message)
        for queue in self.queues.values():
            queue.put_nowait({"type": "closed", "code": self.ws.close_code})

    async def subscribe(self, operation: str, query: str, variables: Any = None) -> None:
        self._queue(operation)
        await self.ws.send_json(
            {
                "id": operation,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )

    async def next(self, operation: str, within: float = WAIT) -> dict[str, Any] | None:
        """The data of the operation's next event; None when none comes `within` seconds."""
        message = await self.message(operation, within)
        if message is None:
            return None
        assert message["type"] == "next" and not message["payload"].get("errors"), message
        return message["payload"]["data"]

    async def message(self, operation: str, within: float = WAIT) -> dict[str, Any] | None:
        """The operation's next message as sent (`next`, `error`, `complete`); None when none
        comes `within` seconds."""
        try:
            return await asyncio.wait_for(self._queue(operation).get(), within)
        except TimeoutError:
            return None

    async def run(self, query: str, variables: Any = None) -> dict[str, Any]:
        """A query or mutation over the socket: its payload (data, and errors if any)."""
        self._operations += 1
        operation = f"operation-{self._operations}"
        await self.subscribe(operation, query, variables)
        answer = await self.message(operation)
        assert answer is not None and answer["type"] == "next", answer
        assert await self.message(operation) == {"id": operation, "type": "complete"}
        return answer["payload"]

    async def closed_by_server(self, within: float = WAIT) -> int | None:
        """The close code once the server has closed the connection (1006: dropped without a
        close frame); None if it is still open after `within` seconds."""
        done, _ = await asyncio.wait([self.reader], timeout=within)
        return self.ws.close_code if done else None

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.reader, WAIT)


# -- The live tests' directory and conversation --------------------------------------------------


async def import_live_directory(uri: str) -> tuple[dict[str, Any], dict[str, str]]:
    """LIVE_DIRECTORY imported into the database at `uri`; its ids and a token per user key."""
    client = connect(uri)
    try:
        ids = await import_directory(database_of(client), LIVE_DIRECTORY)
    finally:
        await client.close()
    tokens = TokenService(Settings(jwt_secret=JWT_SECRET))
    return ids, {key: tokens.issue(user_id) for key, user_id in ids["users"].items()}


async def bakery_conversation(
    session: aiohttp.ClientSession,
    serve: Serve,
    ids: dict[str, Any],
    token: str,
    participant: str,
) -> tuple[str, str]:
    """A COMPANY conversation of the bakery, created with `token`'s user and `participant` (a
    user key); its id and the cursor of its opening message."""
    variables = {
        "input": {
            "type": "COMPANY",
            "companyId": ids["companies"]["bakery"],
            "participantIds": [ids["users"][participant]],
            "subject": "Bakery books",
            "body": "<p>Opening</p>",
        }
    }
    created = (await gql(session, serve, token, CREATE, variables))["createConversation"]
    return created["id"], created["messages"]["edges"][0]["cursor"]


def reply(conversation_id: str, text: str) -> dict[str, Any]:
    return {"input": {"conversationId": conversation_id, "body": f"<p>{text}</p>"}}
