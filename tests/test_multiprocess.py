"""Several server processes on one database (SPEC §8, §10), as real `messager` subprocesses.

An event produced in one process reaches subscribers on every other: two `messager serve` on one
data directory (the second uses the embedded server the first recorded), and the workers of
`messager serve --workers 2` that share one port. The workers are told apart through /proc (which
process accepted which connection), since the API does not expose a process id.

Then stopping: a SIGKILLed `serve --workers 2` leaves no worker behind (they would keep the
port), and a SIGTERM with a live subscriber closes it (1001) and stops at once instead of
waiting out the 15 s shutdown grace.

Last, permissions cross processes too: each process caches users, and a change made through
another one (a favorite removed through serve A, a client removed by `messager import`) applies
to this one's open sockets and requests as soon as its change stream delivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import http.client
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from graphql_api.auth import TokenService
from graphql_api.database import connect, database_of
from graphql_api.directory.importer import import_directory
from graphql_api.embedded import free_port
from graphql_api.settings import Settings
from tests.cli_helpers import SPEC_DIRECTORY, cli_env, messager, write_json
from tests.conftest import JWT_SECRET
from tests.multiprocess_helpers import (
    CREATE,
    LIVE_DIRECTORY,
    WAIT,
    Subscriber,
    bakery_conversation,
    gql,
    import_live_directory,
    reply,
)
from tests.server_process import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    Serve,
    acceptor,
    listeners,
    parent_of,
    serving,
    wait_until_gone,
)

SEND = """
mutation($input: SendMessageInput!) { sendMessage(input: $input) { id body createdAt } }
"""
MESSAGE_ADDED = """
subscription($conversationId: ID!, $after: String) {
  messageAdded(conversationId: $conversationId, after: $after) {
    id body createdAt author { name } }
}
"""
NOTIFICATION_ADDED = """
subscription { notificationAdded {
  conversation { id } message { id body createdAt } readAt } }
"""
VIEWER = "{ viewer { email } }"


# -- Setting up a data directory ------------------------------------------------------------------


async def import_and_sign_in(env: dict[str, str], cwd: Path) -> tuple[dict[str, Any], str, str]:
    """Import the spec's directory with `messager import`; answers its ids and the tokens of
    alice and bob from `messager token` (all through the data directory's database)."""
    file = write_json(cwd / "directory.json", SPEC_DIRECTORY)
    imported = await messager("import", str(file), env=env, cwd=cwd)
    assert imported.returncode == 0, imported.stderr
    alice, bob = await asyncio.gather(
        messager("token", "alice@acme.test", env=env, cwd=cwd),
        messager("token", "bob@bakery.test", env=env, cwd=cwd),
    )
    assert (alice.returncode, bob.returncode) == (0, 0), alice.stderr + bob.stderr
    return json.loads(imported.stdout), alice.stdout.strip(), bob.stdout.strip()


def command_line(pid: int) -> str:
    """A process's command line, its arguments joined by spaces ("" once it has exited)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def wait_for_record(serve: Serve) -> dict[str, Any]:
    """What `serve` recorded of its embedded server in the data directory, once it has."""
    path = Path(serve.env["MESSAGER_DATA_DIR"]) / "embedded.json"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError):
            recorded = json.loads(path.read_text())
            assert recorded["owner_pid"] == serve.pid, recorded
            return recorded
        if serve.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"serve {serve.name} recorded no embedded server:\n{serve.output()}")
        time.sleep(0.02)


async def import_in_process(uri: str) -> tuple[dict[str, Any], str, str]:
    """The spec's directory imported straight into the database at `uri`, and tokens for alice
    and bob (quicker than `messager import` and `messager token`, which the two-serve test
    runs)."""
    client = connect(uri)
    try:
        ids = await import_directory(database_of(client), SPEC_DIRECTORY)
    finally:
        await client.close()
    tokens = TokenService(Settings(jwt_secret=JWT_SECRET))
    users = ids["users"]
    return ids, tokens.issue(users["alice"]), tokens.issue(users["bob"])


def conversation_input(ids: dict[str, Any], subject: str) -> dict[str, Any]:
    """alice's conversation about the bakery with bob."""
    return {
        "input": {
            "type": "COMPANY",
            "companyId": ids["companies"]["bakery"],
            "participantIds": [ids["users"]["bob"]],
            "subject": subject,
            "body": "<p>Opening</p>",
        }
    }


# -- Talking to a server --------------------------------------------------------------------------


def gql_on_fresh_connection(
    port: int, token: str, query: str, variables: Any, workers: list[int]
) -> tuple[dict[str, Any], int]:
    """One request on a new connection; answers its `data` and the worker that accepted it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        connection.request(
            "POST",
            "/graphql",
            body=json.dumps({"query": query, "variables": variables or {}}),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == 200 and not body.get("errors"), body
        # Still open (keep-alive): the worker that accepted it still holds its server side.
        client_port = connection.sock.getsockname()[1]
        return body["data"], accepted_by(port, client_port, workers)
    finally:
        connection.close()


def accepted_by(port: int, client_port: int, workers: list[int]) -> int:
    deadline = time.monotonic() + WAIT
    while (worker := acceptor(port, client_port, workers)) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"no worker of {workers} holds the connection from port {client_port}")
        time.sleep(0.02)
    return worker


# -- Two serves on one data directory -------------------------------------------------------------


@pytest.mark.embedded_only
async def test_a_message_sent_through_one_serve_reaches_a_subscriber_of_another(tmp_path):
    data_dir = tmp_path / "data"
    env = cli_env(data_dir, mongodb_uri=None)
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(serving(env=env, log_dir=tmp_path, name="a", port=free_port()))
        # a records its embedded server before it loads the app: b can start from there.
        recorded = await asyncio.to_thread(wait_for_record, a)
        b = stack.enter_context(serving(env=env, log_dir=tmp_path, name="b", port=free_port()))
        await a.until_healthy()
        (ids, alice, bob), _ = await asyncio.gather(
            import_and_sign_in(env, tmp_path), b.until_healthy()
        )
        # b works on a's embedded server (it started none), and both watch change streams.
        assert "embedded database listening" not in b.output()
        assert [p for p in b.descendants() if "graphql_api.embedded_main" in command_line(p)] == []
        assert json.loads((data_dir / "embedded.json").read_text()) == recorded
        for serve in (a, b):
            assert "offers no change streams" not in serve.output(), serve.output()

        async with aiohttp.ClientSession() as session:
            created = await gql(session, a, alice, CREATE, conversation_input(ids, "Two serves"))
            conversation_id = created["createConversation"]["id"]
            opening = created["createConversation"]["messages"]["edges"][0]

            async def send(body: str) -> dict[str, Any]:
                message = {"conversationId": conversation_id, "body": body}
                return (await gql(session, a, alice, SEND, {"input": message}))["sendMessage"]

            subscriber = await Subscriber.connect(session, f"ws://127.0.0.1:{b.port}/graphql", bob)
            try:
                # messageAdded replays from `after` (nothing missed); notificationAdded has no
                # replay, so messages go until it is live: the first notification proves it.
                await subscriber.subscribe(
                    "messages",
                    MESSAGE_ADDED,
                    {"conversationId": conversation_id, "after": opening["cursor"]},
                )
                await subscriber.subscribe("notifications", NOTIFICATION_ADDED)
                sent = []
                for attempt in range(10):
                    sent.append(await send(f"<p>Warm-up {attempt}</p>"))
                    notified = await subscriber.next("notifications", within=2.0)
                    if notified is not None:
                        break
                else:
                    pytest.fail("no notificationAdded reached b in 10 messages sent through a")
                notifications = [notified]
                messages = []
                for _ in sent:  # replayed or live: messageAdded is live once they are in
                    added = await subscriber.next("messages")
                    assert added is not None, f"only {messages} of {sent} reached b"
                    messages.append(added["messageAdded"])

                # Both subscriptions are live: this message reaches b as a live event.
                final = await send("<p>Sent through <em>a</em>, received on <em>b</em></p>")
                sent.append(final)
                added = await subscriber.next("messages")
                assert added is not None, f"{final} did not reach b"
                messages.append(added["messageAdded"])
                while notifications[-1]["notificationAdded"]["message"]["id"] != final["id"]:
                    notified = await subscriber.next("notifications")
                    assert notified is not None, f"no notification of {final} on b"
                    notifications.append(notified)

                # A new conversation through a: its first message is notified on b too (it is
                # stored before its conversation, and the notification must wait for it).
                second = await gql(session, a, alice, CREATE, conversation_input(ids, "Second"))
                opened = second["createConversation"]["messages"]["edges"][0]["node"]["id"]
                notified_new = await subscriber.next("notifications")
            finally:
                await subscriber.close()

    assert notified_new is not None, "no notification of a new conversation's first message on b"
    assert notified_new["notificationAdded"]["message"]["id"] == opened
    assert messages == [{**message, "author": {"name": "Alice Roy"}} for message in sent]
    # In order and without duplicates from the first one b saw (the opening message's
    # notification may be the first, when it is written after the subscription started).
    all_ids = [opening["node"]["id"], *(message["id"] for message in sent)]
    notified_ids = [n["notificationAdded"]["message"]["id"] for n in notifications]
    assert notified_ids[0] in all_ids, notifications
    assert notified_ids == all_ids[all_ids.index(notified_ids[0]) :]
    assert notifications[-1] == {
        "notificationAdded": {
            "conversation": {"id": conversation_id},
            "message": final,
            "readAt": None,
        }
    }


# -- serve --workers 2 ----------------------------------------------------------------------------


def wait_for_workers(serve: Serve, count: int) -> list[int]:
    """The processes below `serve` that listen on its port, once there are `count` of them."""
    deadline = time.monotonic() + WAIT * 3
    while True:
        found = listeners(serve.port, serve.descendants())
        if len(found) >= count:
            return sorted(found)
        if serve.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"{len(found)} of {count} workers listen on {serve.port}:\n{serve.output()}"
            )
        time.sleep(0.05)


@pytest.mark.embedded_only
async def test_workers_share_one_port_and_every_workers_subscribers_get_every_message(tmp_path):
    data_dir = tmp_path / "data"
    env = cli_env(data_dir, mongodb_uri=None)
    port = free_port()
    with serving("--workers", "2", env=env, log_dir=tmp_path, name="workers", port=port) as serve:
        recorded = await asyncio.to_thread(wait_for_record, serve)
        (ids, alice, bob), workers = await asyncio.gather(
            import_in_process(recorded["uri"]), asyncio.to_thread(wait_for_workers, serve, 2)
        )
        await serve.until_healthy()
        assert [parent_of(worker) for worker in workers] == [serve.pid, serve.pid]
        assert listeners(port, [serve.pid]) == []  # the parent only supervises
        everyone = serve.descendants()  # workers, embedded server, multiprocessing's tracker
        embedded = json.loads((data_dir / "embedded.json").read_text())
        assert embedded["owner_pid"] == serve.pid and embedded["server_pid"] in everyone

        # Fresh connections are spread over both workers, and each answers.
        answered_by = []
        for _ in range(20):
            data, worker = await asyncio.to_thread(
                gql_on_fresh_connection, port, bob, VIEWER, None, workers
            )
            assert data == {"viewer": {"email": "bob@bakery.test"}}
            answered_by.append(worker)
        assert set(answered_by) == set(workers), answered_by

        created, _ = await asyncio.to_thread(
            gql_on_fresh_connection,
            port,
            alice,
            CREATE,
            conversation_input(ids, "Workers"),
            workers,
        )
        conversation_id = created["createConversation"]["id"]
        after = created["createConversation"]["messages"]["edges"][0]["cursor"]

        async def send(number: int) -> tuple[dict[str, Any], int]:
            message = {"conversationId": conversation_id, "body": f"<p>Message {number}</p>"}
            data, worker = await asyncio.to_thread(
                gql_on_fresh_connection, port, alice, SEND, {"input": message}, workers
            )
            return {**data["sendMessage"], "author": {"name": "Alice Roy"}}, worker

        async def receive(subscriber: Subscriber, worker: int, count: int) -> list[dict]:
            received = []
            for _ in range(count):
                added = await subscriber.next("messages")
                assert added is not None, f"a subscriber on worker {worker} got only {received}"
                received.append(added["messageAdded"])
            return received

        # Subscribers until each worker has one, then messages until each worker took one: every
        # subscriber must get every message, so events cross workers both ways.
        subscribers: dict[int, list[Subscriber]] = {worker: [] for worker in workers}
        sent: list[dict[str, Any]] = []
        sent_through: set[int] = set()
        async with aiohttp.ClientSession() as session:
            try:
                for _ in range(20):
                    subscriber = await Subscriber.connect(
                        session, f"ws://127.0.0.1:{port}/graphql", bob
                    )
                    worker = await asyncio.to_thread(
                        accepted_by, port, subscriber.client_port, workers
                    )
                    subscribers[worker].append(subscriber)
                    await subscriber.subscribe(
                        "messages",
                        MESSAGE_ADDED,
                        {"conversationId": conversation_id, "after": after},
                    )
                    if all(subscribers.values()):
                        break
                assert all(subscribers.values()), {w: len(s) for w, s in subscribers.items()}
                # Once a subscription has delivered a message (replayed from `after` or live),
                # it is live: the messages after this one reach it as live events.
                warm_up, _ = await send(0)
                for worker, on_worker in subscribers.items():
                    for subscriber in on_worker:
                        assert await receive(subscriber, worker, 1) == [warm_up]
                for number in range(1, 21):
                    message, worker = await send(number)
                    sent.append(message)
                    sent_through.add(worker)
                    if sent_through == set(workers):
                        break
                assert sent_through == set(workers)
                for worker, on_worker in subscribers.items():
                    for subscriber in on_worker:
                        assert await receive(subscriber, worker, len(sent)) == sent
            finally:
                for subscriber in [s for on_worker in subscribers.values() for s in on_worker]:
                    await subscriber.close()

        # SIGTERM to the parent stops the workers and the embedded server, and exits 0.
        serve.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(serve.process.wait, STOP_TIMEOUT)
        assert code == 0, serve.output()
        assert await asyncio.to_thread(wait_until_gone, everyone) == [], serve.output()
        assert not (data_dir / "embedded.json").exists()


def test_killed_serve_leaves_no_worker_behind(tmp_path, mongo_uri):
    # Orphaned workers would keep the port (SO_REUSEPORT) and keep answering: on a dead
    # database with the embedded server, which dies with the serve. MONGODB_URI (the session's
    # server) spares this test an embedded server of its own.
    env = cli_env(tmp_path / "data", mongo_uri)
    port = free_port()
    with serving("--workers", "2", env=env, log_dir=tmp_path, name="workers", port=port) as serve:
        workers = wait_for_workers(serve, 2)
        everyone = serve.descendants()
        serve.process.send_signal(signal.SIGKILL)
        serve.process.wait(timeout=STOP_TIMEOUT)
        left = wait_until_gone(everyone, timeout=15.0)  # generous: a loaded machine is slow
        # (`serving` kills what is left, orphans included.)
    assert left == [], f"still running after the serve was killed: {left} (workers: {workers})"


PROMPT_STOP = 6.0  # seconds for a stop that closes its WebSockets at once (the grace is 15)


async def test_sigterm_closes_live_subscriptions_and_stops_promptly(tmp_path, mongo_uri):
    env = cli_env(tmp_path / "data", mongo_uri)
    with serving(env=env, log_dir=tmp_path, name="serve", port=free_port()) as serve:
        ids, alice, bob = await import_in_process(mongo_uri)
        await serve.until_healthy()
        async with aiohttp.ClientSession() as session:
            created = (await gql(session, serve, alice, CREATE, conversation_input(ids, "Stop")))[
                "createConversation"
            ]
            opening = created["messages"]["edges"][0]
            subscriber = await Subscriber.connect(
                session, f"ws://127.0.0.1:{serve.port}/graphql", bob
            )
            try:
                variables = {"conversationId": created["id"], "after": opening["cursor"]}
                await subscriber.subscribe("messages", MESSAGE_ADDED, variables)
                reply = {"conversationId": created["id"], "body": "<p>Before the stop</p>"}
                await gql(session, serve, alice, SEND, {"input": reply})
                assert await subscriber.next("messages") is not None  # live by now
                started = time.monotonic()
                serve.process.send_signal(signal.SIGTERM)
                close_code = await subscriber.closed_by_server(within=PROMPT_STOP)
                left = max(PROMPT_STOP - (time.monotonic() - started), 0.1)
                try:
                    exit_code = await asyncio.to_thread(serve.process.wait, left)
                except subprocess.TimeoutExpired:
                    exit_code = None
            finally:
                await subscriber.close()
    assert close_code in (1001, 1012), f"the subscriber's connection: close code {close_code}"
    assert exit_code == 0, f"serve: exit {exit_code} {PROMPT_STOP:.0f} s after SIGTERM"


# -- Live permissions across processes ------------------------------------------------------------

# LIVE_DIRECTORY (tests/multiprocess_helpers.py): alice reads the bakery's conversations through
# her favorite only, bob as a client of the bakery, paul has no favorite.
HISTORY = """
query($id: ID!) { conversation(id: $id) { messages(last: 10) { edges { node { body } } } } }
"""
REMOVE_FAVORITE = "mutation($id: ID!) { removeFavoriteCompany(companyId: $id) { isFavorite } }"
NOT_FOUND = {"message": "conversation not found", "extensions": {"code": "NOT_FOUND"}}


def bodies(payload: dict[str, Any]) -> list[str] | None:
    conversation = payload["data"]["conversation"]
    if conversation is None:
        return None
    return [edge["node"]["body"] for edge in conversation["messages"]["edges"]]


def refused_as(payload: dict[str, Any]) -> dict[str, Any]:
    """The single error of an answer without data, without its location."""
    assert payload["data"] is None, payload
    (error,) = payload["errors"]
    return {"message": error["message"], "extensions": error["extensions"]}


async def test_a_favorite_removed_through_one_serve_applies_on_another_serves_socket_and_http(
    tmp_path, mongo_uri
):
    env = cli_env(tmp_path / "data", mongo_uri)
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(serving(env=env, log_dir=tmp_path, name="a", port=free_port()))
        b = stack.enter_context(serving(env=env, log_dir=tmp_path, name="b", port=free_port()))
        ids, tokens = await import_live_directory(mongo_uri)
        await asyncio.gather(a.until_healthy(), b.until_healthy())
        async with aiohttp.ClientSession() as session:
            cid, opening = await bakery_conversation(session, a, ids, tokens["bob"], "paul")
            alice_on_b = await Subscriber.connect(
                session, f"ws://127.0.0.1:{b.port}/graphql", tokens["alice"]
            )
            try:
                variables = {"conversationId": cid, "after": opening}
                await alice_on_b.subscribe("messages", MESSAGE_ADDED, variables)
                await gql(session, a, tokens["bob"], SEND, reply(cid, "Sent through a"))
                assert await alice_on_b.next("messages") is not None  # live on b
                assert bodies(await alice_on_b.run(HISTORY, {"id": cid})) == [
                    "<p>Opening</p>",
                    "<p>Sent through a</p>",
                ]
                assert (await gql(session, b, tokens["alice"], HISTORY, {"id": cid}))[
                    "conversation"
                ] is not None

                removed = await gql(
                    session, a, tokens["alice"], REMOVE_FAVORITE, {"id": ids["companies"]["bakery"]}
                )
                assert removed == {"removeFavoriteCompany": {"isFavorite": False}}
                # b learns it from its change stream: the subscription ends and says why.
                assert await alice_on_b.message("messages") == {
                    "id": "messages",
                    "type": "next",
                    "payload": {"data": None, "errors": [NOT_FOUND]},
                }
                assert await alice_on_b.message("messages") == {
                    "id": "messages",
                    "type": "complete",
                }
                assert bodies(await alice_on_b.run(HISTORY, {"id": cid})) is None
                refused = await alice_on_b.run(SEND, reply(cid, "Through b's socket"))
                assert refused_as(refused) == NOT_FOUND
                assert await gql(session, b, tokens["alice"], HISTORY, {"id": cid}) == {
                    "conversation": None
                }
            finally:
                await alice_on_b.close()


async def test_a_client_removed_from_its_company_by_messager_import_stops_reading_on_its_socket(
    tmp_path, mongo_uri
):
    env = cli_env(tmp_path / "data", mongo_uri)
    with serving(env=env, log_dir=tmp_path, name="serve", port=free_port()) as serve:
        ids, tokens = await import_live_directory(mongo_uri)
        await serve.until_healthy()
        async with aiohttp.ClientSession() as session:
            cid, opening = await bakery_conversation(session, serve, ids, tokens["alice"], "bob")
            bob = await Subscriber.connect(
                session, f"ws://127.0.0.1:{serve.port}/graphql", tokens["bob"]
            )
            try:
                await bob.subscribe(
                    "messages", MESSAGE_ADDED, {"conversationId": cid, "after": opening}
                )
                await gql(session, serve, tokens["alice"], SEND, reply(cid, "Before"))
                assert await bob.next("messages") is not None  # live
                assert bodies(await bob.run(HISTORY, {"id": cid})) == [
                    "<p>Opening</p>",
                    "<p>Before</p>",
                ]

                # The firm's next import no longer lists bob at the bakery.
                directory = copy.deepcopy(LIVE_DIRECTORY)
                (entry,) = [u for u in directory["users"] if u["key"] == "bob"]
                entry.update(companies=[], favorites=[])
                file = write_json(tmp_path / "directory.json", directory)
                imported = await messager("import", str(file), env=env, cwd=tmp_path)
                assert imported.returncode == 0, imported.stderr

                assert await bob.message("messages") == {
                    "id": "messages",
                    "type": "next",
                    "payload": {"data": None, "errors": [NOT_FOUND]},
                }
                assert await bob.message("messages") == {"id": "messages", "type": "complete"}
                await gql(session, serve, tokens["alice"], SEND, reply(cid, "After"))
                assert bodies(await bob.run(HISTORY, {"id": cid})) is None
                refused = await bob.run(SEND, reply(cid, "Still a client?"))
                assert refused_as(refused) == NOT_FOUND
                assert await gql(session, serve, tokens["bob"], HISTORY, {"id": cid}) == {
                    "conversation": None
                }
            finally:
                await bob.close()


COMPANY_NAMES = "{ conversations { edges { node { company { name } } } } }"
NAME_CHANGE_WAIT_SECONDS = 30.0
"""How long the test waits for the serve process's change stream to report a rename."""


async def test_a_company_renamed_by_messager_import_shows_its_new_name_on_a_warm_serve(
    tmp_path, mongo_uri
):
    # The serve process keeps companies in its cache: the import, another process, must
    # still reach it (through the companies change stream), as the favorites do.
    env = cli_env(tmp_path / "data", mongo_uri)
    with serving(env=env, log_dir=tmp_path, name="serve", port=free_port()) as serve:
        ids, tokens = await import_live_directory(mongo_uri)
        await serve.until_healthy()
        async with aiohttp.ClientSession() as session:
            await bakery_conversation(session, serve, ids, tokens["alice"], "bob")

            async def names() -> list[str]:
                data = await gql(session, serve, tokens["alice"], COMPANY_NAMES, {})
                return [e["node"]["company"]["name"] for e in data["conversations"]["edges"]]

            assert await names() == ["Martin Bakery"]  # read, and now kept
            directory = copy.deepcopy(LIVE_DIRECTORY)
            directory["companies"][0]["name"] = "Martin Bakery & Sons"
            file = write_json(tmp_path / "directory.json", directory)
            imported = await messager("import", str(file), env=env, cwd=tmp_path)
            assert imported.returncode == 0, imported.stderr
            deadline = time.monotonic() + NAME_CHANGE_WAIT_SECONDS
            shown = await names()
            while shown == ["Martin Bakery"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                shown = await names()
            assert shown == ["Martin Bakery & Sons"]


# -- Notes and lifecycle changes across processes (SPEC §13) --------------------------------------

KIND_ADDED = """
subscription($conversationId: ID!, $after: String) {
  messageAdded(conversationId: $conversationId, after: $after) { kind body }
}
"""
NOTE = """
mutation($input: SendMessageInput!) { sendMessage(input: $input) { kind } }
"""
REMOVE_PARTICIPANT = """
mutation($c: ID!, $u: ID!) { removeParticipant(conversationId: $c, userId: $u) { id } }
"""


async def test_notes_and_a_removal_through_one_serve_reach_another_serves_subscribers_rightly(
    tmp_path, mongo_uri
):
    env = cli_env(tmp_path / "data", mongo_uri)
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(serving(env=env, log_dir=tmp_path, name="a", port=free_port()))
        b = stack.enter_context(serving(env=env, log_dir=tmp_path, name="b", port=free_port()))
        ids, tokens = await import_live_directory(mongo_uri)
        await asyncio.gather(a.until_healthy(), b.until_healthy())
        async with aiohttp.ClientSession() as session:
            cid, opening = await bakery_conversation(session, a, ids, tokens["bob"], "paul")
            url = f"ws://127.0.0.1:{b.port}/graphql"
            bob_on_b = await Subscriber.connect(session, url, tokens["bob"])
            paul_on_b = await Subscriber.connect(session, url, tokens["paul"])
            try:
                # After the opening message: replayed or live, nothing is missed meanwhile.
                since = {"conversationId": cid, "after": opening}
                await bob_on_b.subscribe("live", KIND_ADDED, since)
                await paul_on_b.subscribe("live", KIND_ADDED, since)
                # Live on b once a plain message sent through a arrives to both.
                await gql(session, a, tokens["paul"], SEND, reply(cid, "Ready"))
                ready = {"messageAdded": {"kind": "MESSAGE", "body": "<p>Ready</p>"}}
                assert await bob_on_b.next("live") == ready
                assert await paul_on_b.next("live") == ready

                note = {"input": {**reply(cid, "Internal")["input"], "internal": True}}
                assert await gql(session, a, tokens["paul"], NOTE, note) == {
                    "sendMessage": {"kind": "NOTE"}
                }
                await gql(session, a, tokens["paul"], SEND, reply(cid, "Visible"))
                visible = {"messageAdded": {"kind": "MESSAGE", "body": "<p>Visible</p>"}}
                assert await bob_on_b.next("live") == visible  # the note never shows
                assert await paul_on_b.next("live") == {
                    "messageAdded": {"kind": "NOTE", "body": "<p>Internal</p>"}
                }
                assert await paul_on_b.next("live") == visible

                removal = {"c": cid, "u": ids["users"]["bob"]}
                await gql(session, a, tokens["paul"], REMOVE_PARTICIPANT, removal)
                assert await bob_on_b.message("live") == {
                    "id": "live",
                    "type": "next",
                    "payload": {"data": None, "errors": [NOT_FOUND]},
                }
                assert await bob_on_b.message("live") == {"id": "live", "type": "complete"}
                assert await paul_on_b.next("live") == {
                    "messageAdded": {"kind": "EVENT", "body": ""}
                }
            finally:
                await bob_on_b.close()
                await paul_on_b.close()
