"""Subscriptions driven by the client library frontends use: `graphql-ws` on `ws`, under Node.

`tests/js/subscribe.mjs` subscribes to `messageAdded` and prints one JSON line per event on stdout
(see its header). The packages are pinned in `tests/js/package-lock.json` and installed here with
`npm ci` when `tests/js/node_modules` is missing, so a fresh machine needs only Node.js and npm.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from graphql_api.auth import TokenService
from graphql_api.settings import Settings
from tests.conftest import Api

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "subscribe.mjs"
PACKAGES = ("graphql", "graphql-ws", "ws")
NPM_TIMEOUT = 300.0
CLIENT_TIMEOUT = 20.0  # the script's own bound on a run
WAIT = 15.0  # our bound on waiting for one line of it

CREATE = """
mutation($input: CreateConversationInput!) {
  createConversation(input: $input) { id messages(first: 1) { edges { cursor node { id } } } }
}
"""
SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) { id body bodyText author { id name } conversation { id } createdAt }
}
"""


# -- Installing the reference client ------------------------------------------------------------


def _installed() -> bool:
    return all((JS_DIR / "node_modules" / name / "package.json").is_file() for name in PACKAGES)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH: these tests need Node.js 20+ and npm")
    return path


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` executable, with tests/js's packages installed (`npm ci`) when missing."""
    node = _tool("node")
    if _installed():
        return node
    # Several pytest runs may share this checkout: install under a lock, then check again.
    key = hashlib.sha256(str(JS_DIR.resolve()).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"messager-tests-js-{key}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed():
            command = [_tool("npm"), "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund"]
            try:
                done = subprocess.run(
                    command,
                    cwd=JS_DIR,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=NPM_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                pytest.fail(f"`{' '.join(command)}` did not finish in {NPM_TIMEOUT:.0f} s: {exc}")
            if done.returncode != 0 or not _installed():
                pytest.fail(
                    f"`{' '.join(command)}` failed (exit {done.returncode}); the reference client "
                    f"tests need the npm registry once to install {', '.join(PACKAGES)}:\n"
                    f"{done.stdout}\n{done.stderr}"
                )
    return node


# -- Running it ----------------------------------------------------------------------------------


@dataclass
class ReferenceClient:
    """One run of subscribe.mjs; `lines` collects its stdout, parsed, as they arrive."""

    process: asyncio.subprocess.Process
    lines: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)
    stderr: bytearray = field(default_factory=bytearray)

    async def pump(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            text = raw.decode().strip()
            if text:
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:
                    line = {"type": "unparsable", "text": text}
                self.seen.append(line)
                self.lines.put_nowait(line)

    async def drain_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(4096):
            self.stderr.extend(chunk)

    def report(self) -> str:
        return f"stdout lines: {self.seen}\nstderr: {self.stderr.decode(errors='replace')}"

    async def next_line(self, within: float = WAIT) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.lines.get(), within)
        except TimeoutError:
            pytest.fail(f"the reference client printed nothing for {within:.0f} s\n{self.report()}")

    async def expect(self, kind: str) -> dict[str, Any]:
        line = await self.next_line()
        assert line["type"] == kind, f"expected a {kind!r} line\n{self.report()}"
        return line

    async def exit_code(self, within: float = WAIT) -> int:
        try:
            return await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            pytest.fail(f"the reference client did not exit in {within:.0f} s\n{self.report()}")


@contextlib.asynccontextmanager
async def reference_client(node: str, *args: str):
    env = {**os.environ, "MESSAGER_TIMEOUT_MS": str(int(CLIENT_TIMEOUT * 1000))}
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        *args,
        cwd=JS_DIR,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    client = ReferenceClient(process)
    readers = [asyncio.create_task(client.pump()), asyncio.create_task(client.drain_stderr())]
    try:
        yield client
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await asyncio.wait(readers, timeout=5)
        for reader in readers:
            reader.cancel()


def ws_url(api: Api) -> str:
    return str(api.http.make_url("/graphql").with_scheme("ws"))


# -- Tests ---------------------------------------------------------------------------------------


async def test_graphql_ws_client_receives_sent_messages_in_order(api: Api, node: str):
    created = (
        await api.gql(
            CREATE,
            {
                "input": {
                    "type": "PRIVATE",
                    "participantIds": [api.ids["users"]["bob"]],
                    "subject": "Year-end documents",
                    "body": "<p>Opening</p>",
                }
            },
            as_="alice",
        )
    )["createConversation"]
    conversation_id = created["id"]
    opening_cursor = created["messages"]["edges"][0]["cursor"]
    bodies = [
        "<p>First: the <strong>balance sheet</strong></p>",
        "<p>Second — accents éàü &amp; emoji 🍞</p>",
        "<p>Third</p><ul><li>invoices</li><li>receipts</li></ul>",
    ]

    async def send(body: str) -> dict[str, Any]:
        message = {"conversationId": conversation_id, "body": body}
        return (await api.gql(SEND, {"input": message}, as_="alice"))["sendMessage"]

    # `after` (the opening message's cursor) makes the subscription replay whatever it did not
    # see live, so no message is lost to the time the client takes to subscribe.
    args = (ws_url(api), api.token("bob"), conversation_id, str(len(bodies)), opening_cursor)
    async with reference_client(node, *args) as client:
        await client.expect("connected")
        sent = [await send(bodies[0])]
        first = await client.expect("next")
        # The subscription is live by now: the others arrive as live events.
        sent += [await send(body) for body in bodies[1:]]
        rest = [await client.expect("next") for _ in bodies[1:]]
        assert await client.exit_code() == 0, client.report()

    assert [message["body"] for message in sent] == bodies  # stored as sent
    assert [line["payload"] for line in [first, *rest]] == [
        {"data": {"messageAdded": message}} for message in sent
    ]
    alice = api.ids["users"]["alice"]
    assert {line["payload"]["data"]["messageAdded"]["author"]["id"] for line in rest} == {alice}


@pytest.mark.parametrize("token", ["garbage", "wrong-secret", "expired"])
async def test_graphql_ws_client_with_a_bad_token_is_closed_with_4401(
    api: Api, node: str, settings: Settings, token: str
):
    bob = api.ids["users"]["bob"]
    if token == "wrong-secret":
        other = Settings(data_dir=settings.data_dir, jwt_secret="another-secret-" + "x" * 32)
        token = TokenService(other).issue(bob)
    elif token == "expired":
        token = TokenService(settings).issue(bob, ttl_seconds=-60)
    created = (
        await api.gql(
            CREATE,
            {
                "input": {
                    "type": "PRIVATE",
                    "participantIds": [bob],
                    "subject": "Refused",
                    "body": "<p>Hello</p>",
                }
            },
            as_="alice",
        )
    )["createConversation"]

    async with reference_client(node, ws_url(api), token, created["id"], "1") as client:
        code = await client.exit_code()
    lines = client.seen
    assert code == 1, client.report()
    closed = [line for line in lines if line.get("type") == "closed"]
    assert [line["code"] for line in closed] == [4401], client.report()
    assert closed[0]["reason"].startswith("Unauthorized: "), client.report()
    assert not [line for line in lines if line["type"] in ("connected", "next")], client.report()
