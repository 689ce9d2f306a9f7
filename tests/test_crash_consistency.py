"""kill -9 at random moments (issue 18): the service comes back at the first try, and what users
see is exact once the clients have retried with the same keys.

Real `messager serve` processes on one data directory with their embedded database, real HTTP
clients. Each crash is a SIGKILL at a random moment of a storm of writes, alternately of the
serve's whole process group (the serve and its embedded database at once) and of the serve
alone (its database then dies of its parent's death), then a restart on the same data directory
and port, then every client retries everything it attempted, with the same keys. After each:

- sends: every attempted message exists exactly once, the ids acknowledged before the crash are
  the ones answered on retry, each recipient has exactly one notification per message, unread
  counts are exact, and the inbox is in the order of the newest messages;
- uploads killed mid-body: nothing of the interrupted upload can be downloaded or attached, and
  the retry succeeds;
- a `markConversationRead` storm: every conversation marked read has nothing unread.

The recovery's grace period is shortened to one second (MESSAGER_RECOVERY_GRACE_SECONDS), so
that what it settles after a crash is settled within the test's bounded waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from graphql_api.auth import TokenService
from graphql_api.database import connect, database_of
from graphql_api.directory.importer import import_directory
from graphql_api.embedded import free_port
from graphql_api.settings import Settings
from tests.cli_helpers import cli_env
from tests.conftest import JWT_SECRET
from tests.documents import CREATE_CONVERSATION, SEND_MESSAGE
from tests.factories import STANDARD_DIRECTORY
from tests.server_process import STOP_TIMEOUT, Serve, start_serve
from tests.upload_helpers import MULTIPART, PART_TAIL, generated_bytes, part_head

SEND_CRASHES = 14
UPLOAD_CRASHES = 2
MARK_CRASHES = 4  # 20 crashes in all
CLIENTS = 6  # enough sends in flight that some crashes land between a number and its message
SENDS_PER_CLIENT = 12  # per storm; the kill usually comes first
KILL_WINDOW_SECONDS = (0.05, 0.6)  # after the storm starts
SETTLE_SECONDS = 30.0  # bound of the wait for the recovery to settle the counts
REQUEST_SECONDS = 15.0

MARK_READ = "mutation($id: ID!) { markConversationRead(conversationId: $id) { id } }"
HISTORY = """
query($id: ID!, $after: String) { conversation(id: $id) {
  unreadCount
  messages(first: 100, after: $after) {
    edges { node { id bodyText createdAt } } pageInfo { hasNextPage endCursor } }
} }
"""
UNREAD = "query($id: ID!) { conversation(id: $id) { unreadCount } }"
NOTIFICATIONS = """
query($after: String) { notifications(first: 100, after: $after) {
  edges { node { message { id } } } pageInfo { hasNextPage endCursor }
} }
"""
UNREAD_INBOX = """
query { conversations(first: 100, unreadOnly: true) { edges { node { id unreadCount } } } }
"""
INBOX = """
query { conversations(first: 100) { edges { node { id lastMessage { id createdAt } } } } }
"""


# -- one data directory, served, killed and served again -------------------------------------


@dataclass
class Service:
    """`messager serve` on one data directory and port, across crashes."""

    tmp_path: Path
    env: dict[str, str]
    port: int
    serve: Serve | None = None
    starts: int = 0
    everything: list[Serve] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return Path(self.env["MESSAGER_DATA_DIR"])

    async def start(self) -> None:
        """Start serve and wait until it answers; failing the test if it exits: a restart must
        succeed at the first try."""
        self.starts += 1
        self.serve = start_serve(
            env=self.env,
            log_dir=self.tmp_path,
            name=f"serve-{self.starts}",
            port=self.port,
            own_group=True,
        )
        self.everything.append(self.serve)
        await self.serve.until_healthy()

    async def crash(self, whole_group: bool) -> None:
        """SIGKILL the serve's process group, or the serve alone, and reap the serve (as a
        supervisor does before restarting it). Its embedded database may still be dying, or
        not reaped yet: the restart comes at once, as a supervisor's would."""
        serve = self.serve
        assert serve is not None
        serve.descendants()  # remembered, for `kill_all` at the end
        if whole_group:
            os.killpg(serve.pid, signal.SIGKILL)
        else:
            serve.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(serve.process.wait, STOP_TIMEOUT)

    def database_uri(self) -> str:
        return json.loads((self.data_dir / "embedded.json").read_text())["uri"]

    def close(self) -> None:
        for serve in self.everything:
            serve.kill_all()


@contextlib.asynccontextmanager
async def service(tmp_path: Path) -> AsyncIterator[tuple[Service, dict[str, Any]]]:
    """A started service with the standard directory imported; answers it and the ids."""
    env = cli_env(tmp_path / "data", mongodb_uri=None)
    env["MESSAGER_RECOVERY_GRACE_SECONDS"] = "1"
    env["MESSAGER_RECOVERY_INTERVAL_SECONDS"] = "0.25"
    env["MESSAGER_RATE_LIMITS"] = "false"  # one user sends every storm
    running = Service(tmp_path, env, free_port())
    try:
        await running.start()
        client = connect(running.database_uri())
        try:
            ids = await import_directory(database_of(client), STANDARD_DIRECTORY)
        finally:
            await client.close()
        yield running, ids
    finally:
        running.close()


def tokens_for(ids: dict[str, Any], *users: str) -> Iterator[str]:
    tokens = TokenService(Settings(jwt_secret=JWT_SECRET))
    return (tokens.issue(ids["users"][user], ttl_seconds=3600) for user in users)


class GraphQLError(Exception):
    pass


async def gql(
    session: aiohttp.ClientSession, url: str, token: str, query: str, variables: Any = None
) -> dict[str, Any]:
    """The data of an answer; GraphQLError for an answer with errors."""
    async with session.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS),
    ) as response:
        body = await response.json()
    if body.get("errors"):
        raise GraphQLError(body["errors"])
    return body["data"]


async def create(
    session, url: str, token: str, ids: dict[str, Any], participants: list[str], subject: str
) -> str:
    """A conversation about the bakery; its first message is its subject."""
    conversation = {
        "type": "COMPANY",
        "companyId": ids["companies"]["bakery"],
        "participantIds": [ids["users"][user] for user in participants],
        "subject": subject,
        "body": subject,
    }
    created = await gql(session, url, token, CREATE_CONVERSATION, {"input": conversation})
    return created["createConversation"]["id"]


CONNECTION_LOST = (aiohttp.ClientError, TimeoutError, ConnectionError, GraphQLError)


def kill_at_random(rng: random.Random) -> float:
    return rng.uniform(*KILL_WINDOW_SECONDS)


# -- sends -------------------------------------------------------------------------------------


@dataclass
class Sender:
    """One client: alice on its own connection, keys `c<n>-r<round>-<i>`."""

    name: str
    token: str
    attempted: dict[str, str] = field(default_factory=dict)  # key -> conversation id
    acknowledged: dict[str, str] = field(default_factory=dict)  # key -> message id
    unconfirmed: list[str] = field(default_factory=list)  # attempted since the last restart

    async def storm(self, session, url: str, round_: int, conversations: list[str]) -> None:
        for i in range(SENDS_PER_CLIENT):
            key = f"{self.name}-r{round_}-{i}"
            conversation_id = conversations[i % len(conversations)]
            self.attempted[key] = conversation_id
            self.unconfirmed.append(key)
            try:
                self.acknowledged[key] = await self.send(session, url, key, conversation_id)
            except CONNECTION_LOST:
                return  # the service is gone: what is unanswered is retried after the restart

    async def retry_everything(self, session, url: str) -> None:
        """Send again everything attempted since the last restart, with the same keys."""
        for key in self.unconfirmed:
            answered = await self.send(session, url, key, self.attempted[key])
            if key in self.acknowledged:
                assert answered == self.acknowledged[key], f"{key}: another id on retry"
            self.acknowledged[key] = answered
        self.unconfirmed.clear()

    async def send(self, session, url: str, key: str, conversation_id: str) -> str:
        message = {"conversationId": conversation_id, "body": key, "clientMessageId": key}
        data = await gql(session, url, self.token, SEND_MESSAGE, {"input": message})
        return data["sendMessage"]["id"]


async def history(session, url: str, token: str, conversation_id: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    after = None
    while True:
        data = await gql(session, url, token, HISTORY, {"id": conversation_id, "after": after})
        page = data["conversation"]["messages"]
        messages += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return messages
        after = page["pageInfo"]["endCursor"]


async def notified_messages(session, url: str, token: str) -> Counter[str]:
    """How many notifications the user has of each message."""
    notified: Counter[str] = Counter()
    after = None
    while True:
        page = (await gql(session, url, token, NOTIFICATIONS, {"after": after}))["notifications"]
        notified.update(edge["node"]["message"]["id"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return notified
        after = page["pageInfo"]["endCursor"]


async def unread(session, url: str, token: str, conversation_id: str) -> int:
    data = await gql(session, url, token, UNREAD, {"id": conversation_id})
    return data["conversation"]["unreadCount"]


async def until_settled(
    session, url: str, expected: dict[tuple[str, str], int], names: dict[str, str]
) -> None:
    """Wait (bounded) until every (token, conversation) has its expected unread count; fail
    with the counts seen otherwise."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        seen = {key: await unread(session, url, *key) for key in expected}
        if seen == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert {(names[t], c): n for (t, c), n in seen.items()} == {
        (names[t], c): n for (t, c), n in expected.items()
    }


async def check_sends(
    session, url: str, senders: list[Sender], conversations: list[str], tokens: dict[str, str]
) -> None:
    """What every user sees of the storms so far is exact (see the module docstring)."""
    alice, bob, carla = tokens["alice"], tokens["bob"], tokens["carla"]
    histories = {cid: await history(session, url, alice, cid) for cid in conversations}
    # Every attempted message exactly once, in its conversation, with the acknowledged id.
    stored = {cid: Counter(m["bodyText"] for m in h[1:]) for cid, h in histories.items()}
    expected = {cid: Counter() for cid in conversations}
    for sender in senders:
        for key, cid in sender.attempted.items():
            expected[cid][key] += 1
    assert stored == expected
    ids = {m["bodyText"]: m["id"] for h in histories.values() for m in h[1:]}
    for sender in senders:
        assert {key: ids[key] for key in sender.acknowledged} == sender.acknowledged
    # One notification per message for each recipient, none for the author.
    every_message = Counter(m["id"] for h in histories.values() for m in h)
    for recipient in (bob, carla):
        assert await notified_messages(session, url, recipient) == every_message
    assert await notified_messages(session, url, alice) == Counter()
    # Unread counts: the recipients never read, alice wrote everything.
    names = {alice: "alice", bob: "bob", carla: "carla"}
    counts = {(t, cid): len(histories[cid]) for t in (bob, carla) for cid in conversations}
    counts |= {(alice, cid): 0 for cid in conversations}
    await until_settled(session, url, counts, names)
    # The inbox: newest message first, each conversation's last message its newest one.
    inbox = (await gql(session, url, bob, INBOX))["conversations"]["edges"]
    newest = {cid: histories[cid][-1] for cid in conversations}
    in_order = sorted(conversations, key=lambda c: newest[c]["createdAt"], reverse=True)
    assert [edge["node"]["id"] for edge in inbox] == in_order
    for edge in inbox:
        last = newest[edge["node"]["id"]]
        assert edge["node"]["lastMessage"] == {"id": last["id"], "createdAt": last["createdAt"]}


async def test_sends_killed_at_random_moments_are_exact_after_restart_and_retries(tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    async with service(tmp_path) as (running, ids), aiohttp.ClientSession() as session:
        alice, bob, carla = tokens_for(ids, "alice", "bob", "carla")
        tokens = {"alice": alice, "bob": bob, "carla": carla}
        conversations = [
            await create(session, running.url, alice, ids, ["bob", "carla"], subject)
            for subject in ("Storm A", "Storm B")
        ]
        senders = [Sender(f"c{n}", alice) for n in range(CLIENTS)]
        for round_ in range(SEND_CRASHES):
            storms = [
                asyncio.create_task(s.storm(session, running.url, round_, conversations))
                for s in senders
            ]
            await asyncio.sleep(kill_at_random(rng))
            await running.crash(whole_group=round_ % 2 == 0)
            await asyncio.gather(*storms)
            await running.start()
            await asyncio.gather(*(s.retry_everything(session, running.url) for s in senders))
            try:
                await check_sends(session, running.url, senders, conversations, tokens)
            except AssertionError as failure:
                raise AssertionError(f"after crash {round_ + 1} (seed {seed})") from failure
    assert running.starts == SEND_CRASHES + 1


# -- uploads -----------------------------------------------------------------------------------


UPLOAD_BYTES = 6 << 20
SENT_BEFORE_THE_CRASH = 3 << 20


async def upload_until_stored_in_part(
    running: Service, token: str, earlier: set[str]
) -> tuple[asyncio.StreamWriter, str]:
    """Start an upload of UPLOAD_BYTES and send half of it; answers once the server has stored
    some of it (the crash then interrupts it mid-body), with the connection, still open, and
    the upload's id (not one of the `earlier` ones)."""
    head = part_head()
    _, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(
        (
            "POST /attachments HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{running.port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: {MULTIPART}\r\n"
            f"Content-Length: {len(head) + UPLOAD_BYTES + len(PART_TAIL)}\r\n\r\n"
        ).encode()
        + head
        + generated_bytes(SENT_BEFORE_THE_CRASH, seed=7)
    )
    await writer.drain()
    client = connect(running.database_uri())
    try:
        db = client.get_default_database("messager")
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            ids = set(await interrupted_uploads(db)) - earlier
            # (The embedded server's GridFS matches `files_id` by equality only.)
            for upload_id in ids:
                if await db["fs.chunks"].find_one({"files_id": upload_id, "n": 0}):
                    return writer, upload_id
            assert time.monotonic() < deadline, "the server never stored any of the upload"
            await asyncio.sleep(0.02)
    finally:
        await client.close()


async def interrupted_uploads(db: Any) -> list[str]:
    """The ids of the uploads still being stored, or whose storing was interrupted (their
    record stays `uploading` until the cleanup removes it)."""
    return [doc["_id"] async for doc in db.attachments.find({"state": "uploading"})]


async def uploads_in_storage(running: Service) -> set[str]:
    client = connect(running.database_uri())
    try:
        return set(await interrupted_uploads(client.get_default_database("messager")))
    finally:
        await client.close()


async def upload(session, url: str, token: str, data: bytes) -> tuple[int, dict[str, Any]]:
    body = io.BytesIO(part_head() + data + PART_TAIL)
    async with session.post(
        f"{url}/attachments",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": MULTIPART},
        timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS * 4),
    ) as response:
        return response.status, await response.json()


async def download(session, url: str, token: str, attachment_id: str) -> tuple[int, bytes]:
    async with session.get(
        f"{url}/attachments/{attachment_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS * 4),
    ) as response:
        return response.status, await response.read()


async def attach(session, url: str, token: str, conversation_id: str, attachment_id: str):
    """Send a message with the attachment; answers the GraphQL error code, or None."""
    message = {
        "conversationId": conversation_id,
        "body": "with a file",
        "attachmentIds": [attachment_id],
    }
    try:
        await gql(session, url, token, SEND_MESSAGE, {"input": message})
    except GraphQLError as error:
        return error.args[0][0]["extensions"]["code"]
    return None


async def test_an_upload_killed_mid_body_leaves_nothing_visible_and_its_retry_succeeds(tmp_path):
    data = generated_bytes(UPLOAD_BYTES, seed=7)
    async with service(tmp_path) as (running, ids), aiohttp.ClientSession() as session:
        alice, bob = tokens_for(ids, "alice", "bob")
        conversation = await create(session, running.url, alice, ids, ["bob"], "Files")
        seen_interrupted: set[str] = set()
        for crash in range(UPLOAD_CRASHES):
            writer, half_stored = await upload_until_stored_in_part(
                running, alice, seen_interrupted
            )
            await running.crash(whole_group=crash % 2 == 0)
            writer.transport.abort()
            await running.start()
            assert await uploads_in_storage(running) - seen_interrupted == {half_stored}
            seen_interrupted.add(half_stored)
            # Nothing of it can be downloaded or attached, by its uploader or anyone.
            for token in (alice, bob):
                status, _ = await download(session, running.url, token, half_stored)
                assert status == 404
            code = await attach(session, running.url, alice, conversation, half_stored)
            assert code == "NOT_FOUND"

            # The retry succeeds: the whole file, attached and downloaded by the recipient.
            status, answer = await upload(session, running.url, alice, data)
            assert (status, answer["size"]) == (201, UPLOAD_BYTES)
            assert await attach(session, running.url, alice, conversation, answer["id"]) is None
            assert await download(session, running.url, bob, answer["id"]) == (200, data)
    assert running.starts == UPLOAD_CRASHES + 1


# -- markConversationRead ------------------------------------------------------------------------


MARKED_CONVERSATIONS = 8


@dataclass
class Reader:
    """One of bob's clients, marking conversations read."""

    token: str
    attempted: set[str] = field(default_factory=set)

    async def storm(self, session, url: str, conversations: list[str], rng: random.Random):
        for conversation_id in rng.sample(conversations, len(conversations)):
            self.attempted.add(conversation_id)
            try:
                await gql(session, url, self.token, MARK_READ, {"id": conversation_id})
            except CONNECTION_LOST:
                return

    async def retry_everything(self, session, url: str) -> None:
        for conversation_id in sorted(self.attempted):
            await gql(session, url, self.token, MARK_READ, {"id": conversation_id})
        self.attempted.clear()


async def test_mark_read_storms_killed_at_random_moments_leave_exact_unread_counts(tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    async with service(tmp_path) as (running, ids), aiohttp.ClientSession() as session:
        alice, bob = tokens_for(ids, "alice", "bob")
        conversations = [
            await create(session, running.url, alice, ids, ["bob"], f"Read {n}")
            for n in range(MARKED_CONVERSATIONS)
        ]
        readers = [Reader(bob) for _ in range(CLIENTS)]
        unread_by_bob = dict.fromkeys(conversations, 1)
        for crash in range(MARK_CRASHES):
            for conversation_id in conversations:  # something new in each
                message = {"conversationId": conversation_id, "body": f"news {crash}"}
                await gql(session, running.url, alice, SEND_MESSAGE, {"input": message})
                unread_by_bob[conversation_id] += 1
            storms = [
                asyncio.create_task(r.storm(session, running.url, conversations, rng))
                for r in readers
            ]
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await running.crash(whole_group=crash % 2 == 0)
            await asyncio.gather(*storms)
            await running.start()
            for conversation_id in set().union(*(r.attempted for r in readers)):
                unread_by_bob[conversation_id] = 0  # marked before the crash or on retry
            await asyncio.gather(*(r.retry_everything(session, running.url) for r in readers))

            unread_now = {
                edge["node"]["id"]: edge["node"]["unreadCount"]
                for edge in (await gql(session, running.url, bob, UNREAD_INBOX))["conversations"][
                    "edges"
                ]
            }
            expected = {c: n for c, n in unread_by_bob.items() if n}
            assert unread_now == expected, f"after crash {crash + 1} (seed {seed})"
            for conversation_id in conversations:
                assert await unread(session, running.url, alice, conversation_id) == 0
    assert running.starts == MARK_CRASHES + 1
