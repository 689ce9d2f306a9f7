"""Replays the probe of issue 20 against a real `messager serve` and prints what follows.

    python -m bench.probe_wedge [--max-cost N] [--abandon S] [--source DIR]

It starts an embedded nx-27017 server, stores 40 conversations of 100 messages for one user,
starts `python -m graphql_api serve` on it, and sends the probe: three aliases of
`conversations(first: 40) { … messages(first: 100) { … conversation { messages(first: 100) } } }`.
The client gives up after `--abandon` seconds. Then, every 5 s, it asks `/readyz` and
`{ viewer { name } }` (each bounded by 10 s) and prints the answers and how long they took.

`--max-cost 1000000000` lifts the cost limit, to see what the rest of the process does with
such a query; `--source` runs another checkout's code (e.g. the commit before the fix).
Before the fix, every probe after the query timed out; see docs/security.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from pymongo import MongoClient

from graphql_api.auth import TokenService
from graphql_api.embedded import EmbeddedServer, free_port
from graphql_api.ids import new_id
from graphql_api.settings import Settings

SECRET = "probe-wedge-secret-0123456789abcdef0123456789"
CONVERSATIONS = 40
MESSAGES = 100
DIRECTORY = {
    "firms": [{"key": "acme", "name": "Acme"}],
    "companies": [],
    "users": [
        {
            "key": k,
            "firm": "acme",
            "kind": "PRACTITIONER",
            "name": k.title(),
            "favorites": [],
            "email": f"{k}@acme.test",
        }
        for k in ("alice", "paul")
    ],
}
INNER = (
    "edges { node { id body conversation { id messages(first: 100) "
    "{ edges { node { id body } } } } } }"
)
PROBE = (
    "{ "
    + " ".join(
        f"a{n}: conversations(first: 40) {{ edges {{ node {{ id messages(first: 100) "
        f"{{ {INNER} }} }} }} }}"
        for n in range(3)
    )
    + " }"
)


def seed(uri: str, source: Path, env: dict[str, str], directory_file: Path) -> str:
    """Import the directory with the CLI, store the conversations; answers alice's id."""
    subprocess.run(
        [sys.executable, "-m", "graphql_api", "import", str(directory_file)],
        env=env,
        cwd=source,
        check=True,
        capture_output=True,
    )
    db = MongoClient(uri).get_default_database()
    alice = db.users.find_one({"email": "alice@acme.test"})
    paul = db.users.find_one({"email": "paul@acme.test"})
    now = datetime.now(UTC)
    conversations, messages = [], []
    for n in range(CONVERSATIONS):
        conversation_id = new_id()
        ids = [new_id() for _ in range(MESSAGES)]
        conversations.append(
            {
                "_id": conversation_id,
                "firm_id": alice["firm_id"],
                "type": "PRIVATE",
                "company_id": None,
                "subject": f"Conversation {n}",
                "participant_ids": [alice["_id"], paul["_id"]],
                "created_by": alice["_id"],
                "created_at": now,
                "last_activity_ms": 1_700_000_000_000 + n,
                "last_message_id": ids[-1],
                "message_count": MESSAGES,
                "client_visible": False,
            }
        )
        messages.extend(
            {
                "_id": message_id,
                "firm_id": alice["firm_id"],
                "conversation_id": conversation_id,
                "seq": seq,
                "author_id": alice["_id"],
                "body": "<p>" + "hello " * 20 + "</p>",
                "body_text": "hello " * 20,
                "attachment_ids": [],
                "created_at": now,
                "created_ms": 0,
                "fanout": "done",
                "recipients": [],
            }
            for seq, message_id in enumerate(ids, 1)
        )
    db.conversations.insert_many(conversations)
    db.messages.insert_many(messages)
    return str(alice["_id"])


async def probe(base: str, token: str, abandon: float, rounds: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    bound = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{base}/healthz") as answer:
                    if answer.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)

        async def check(label: str) -> None:
            started = time.monotonic()
            try:
                async with session.get(f"{base}/readyz", timeout=bound) as answer:
                    ready = str(answer.status)
            except TimeoutError:
                ready = "no answer in 10 s"
            ready_seconds = time.monotonic() - started
            started = time.monotonic()
            try:
                async with session.post(
                    f"{base}/graphql",
                    json={"query": "{ viewer { name } }"},
                    headers=headers,
                    timeout=bound,
                ) as answer:
                    viewer = f"{answer.status} {(await answer.text())[:60]}"
            except TimeoutError:
                viewer = "no answer in 10 s"
            print(
                f"{label}: /readyz {ready} ({ready_seconds:.1f} s); "
                f"viewer {viewer} ({time.monotonic() - started:.1f} s)",
                flush=True,
            )

        await check("before the probe")
        started = time.monotonic()
        try:
            async with session.post(
                f"{base}/graphql",
                json={"query": PROBE},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=abandon),
            ) as answer:
                text = await answer.text()
                print(f"probe: {answer.status} in {time.monotonic() - started:.1f} s: {text[:200]}")
        except (TimeoutError, aiohttp.ClientError) as error:
            waited = time.monotonic() - started
            print(f"probe: no answer ({type(error).__name__}) after {waited:.1f} s")
        for n in range(rounds):
            await check(f"{5 * n:>3} s after")
            await asyncio.sleep(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-cost", type=int, default=None, help="MESSAGER_MAX_QUERY_COST")
    parser.add_argument("--abandon", type=float, default=30.0, help="seconds before giving up")
    parser.add_argument("--rounds", type=int, default=6, help="probes after the query")
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="probe-wedge-") as tmp:
        work = Path(tmp)
        server = EmbeddedServer(work / "nx")
        uri = f"{server.start()}/messager"
        env = {
            **os.environ,
            "MONGODB_URI": uri,
            "MESSAGER_JWT_SECRET": SECRET,
            "MESSAGER_DATA_DIR": str(work / "app"),
            "PYTHONPATH": str(args.source),
        }
        if args.max_cost is not None:
            env["MESSAGER_MAX_QUERY_COST"] = str(args.max_cost)
        directory_file = work / "directory.json"
        directory_file.write_text(json.dumps(DIRECTORY))
        port = free_port()
        serve = None
        try:
            alice = seed(uri, args.source, env, directory_file)
            token = TokenService(Settings(jwt_secret=SECRET)).issue(alice, ttl_seconds=3600)
            with (work / "serve.log").open("wb") as log:
                serve = subprocess.Popen(
                    [sys.executable, "-m", "graphql_api", "serve", "--port", str(port)],
                    env=env,
                    cwd=args.source,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            asyncio.run(probe(f"http://127.0.0.1:{port}", token, args.abandon, args.rounds))
            status = Path(f"/proc/{serve.pid}/status").read_text()
            print("serve RSS:", status.split("VmRSS:")[1].split("\n")[0].strip())
        finally:
            if serve is not None:
                serve.kill()
                serve.wait()
            server.stop()


if __name__ == "__main__":
    main()
