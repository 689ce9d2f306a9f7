"""How long hostile message bodies hold the event loop: `python -m bench.sanitizer_stall`.

`--runs N` (default 5) sets how many times each body is sent.
Issue 20 found that 100 KB of nested list tags held the loop about 5 s (two sanitizer passes),
so every other request of the process waited. This runs the real application (`init_app`) on a
free port with an embedded nx-27017 server, in this process, next to a ticker task that sleeps
1 ms at a time on the same event loop: the longest gap between two ticks, less the 1 ms, is the
longest the loop was held. Each body is sent through `sendMessage` over real HTTP, the ticker
watching; a run is one send per body, and the figure printed is the median over the runs of
the worst stall per body, with what the server answered and how much CPU the body's checks
and sanitizing take (`clean_body_now` timed in this thread: the time of a sanitizer process, not
of the loop). The first row is the ticker alone, nothing sent: what the machine itself adds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.attachments import free_port
from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.conversations.validation import clean_body_now
from graphql_api.database import connect, database_of, ensure_schema
from graphql_api.directory.importer import import_directory
from graphql_api.embedded import EmbeddedServer
from graphql_api.errors import ApiError
from graphql_api.settings import Settings

TICK_SECONDS = 0.001
KB = 1024
DIRECTORY = {
    "firms": [{"key": "bench", "name": "Bench Accounting"}],
    "users": [
        {"key": key, "firm": "bench", "kind": "PRACTITIONER", "name": key, "email": f"{key}@b.test"}
        for key in ("ada", "bob")
    ],
}

BODIES: dict[str, str] = {
    "a short message (for comparison)": "<p>Hello, see you <b>tomorrow</b></p>",
    "nested lists, 100 KB (issue 20)": "x" + "<ul><li>" * 12_799,
    "nested quotes, 100 KB": "<blockquote>" * 8_000,
    "unclosed divs, 100 KB": "<div>" * 20_000,
    "end tags hidden in comments": "<ul><li><!-- </li></ul> -->" * 3_000,
    "links growing past 100 KB (issue 20)": "<a>x" * 25_599,
    "lists 100 deep, repeated to 100 KB": ("<ul><li>" * 50 + "x" + "</li></ul>" * 50) * 109,
    "quotes 100 deep, repeated to 100 KB": ("<blockquote>" * 100 + "</blockquote>" * 100) * 40,
    "paragraphs, 100 KB": "<p>a</p>" * 12_800,
    "links with attributes, 100 KB": '<a href="https://example.com/" title="x">y</a>' * 2_200,
    "ampersands, 100 KB once escaped": "&" * 20_480,
    "plain text, 100 KB": "word " * 20_480,
}

SEND = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
CREATE = "mutation($i: CreateConversationInput!) { createConversation(input: $i) { id } }"


class Ticker:
    """Sleeps 1 ms at a time on the loop and remembers the longest gap since `reset`."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.worst = 0.0

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - TICK_SECONDS)
            last = now

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


@asynccontextmanager
async def application(data_dir: Path) -> AsyncIterator[tuple[str, dict[str, str], str]]:
    """(base URL, Authorization headers of ada, bob's id) of the app on a fresh database."""
    embedded = EmbeddedServer(data_dir / "db")
    uri = f"{embedded.start()}/bench_stall"
    try:
        client = connect(uri)
        db = database_of(client)
        await ensure_schema(db)
        ids = await import_directory(db, DIRECTORY)
        await client.close()
        settings = Settings(
            mongodb_uri=uri,
            data_dir=data_dir,
            jwt_secret=secrets.token_urlsafe(32),
            rate_limits=False,
        )
        port = free_port()
        # As `messager serve` sets them (graphql_api.workers.serve_forever).
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        runner = web.AppRunner(init_app(settings), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        token = TokenService(settings).issue(ids["users"]["ada"])
        try:
            yield (
                f"http://127.0.0.1:{port}",
                {"Authorization": f"Bearer {token}"},
                ids["users"]["bob"],
            )
        finally:
            await runner.cleanup()
    finally:
        embedded.stop()


async def graphql(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], query: str, i: object
) -> dict:
    async with session.post(
        f"{url}/graphql", json={"query": query, "variables": {"i": i}}, headers=headers
    ) as response:
        return await response.json()


def outcome(answer: dict) -> str:
    if answer.get("errors"):
        message = answer["errors"][0]["message"]
        return f"{answer['errors'][0]['extensions']['code']}: {message[:48]}"
    return "stored"


def sanitizer_cpu_ms(body: str) -> float:
    started = time.thread_time()
    try:
        clean_body_now(body, 0)
    except ApiError:
        pass
    return (time.thread_time() - started) * 1000


async def measure(runs: int) -> None:
    ticker = Ticker()
    with tempfile.TemporaryDirectory(prefix="bench-stall-") as tmp:
        async with (
            application(Path(tmp)) as (url, headers, bob),
            aiohttp.ClientSession() as session,
        ):
            created = await graphql(
                session,
                url,
                headers,
                CREATE,
                {"type": "PRIVATE", "participantIds": [bob], "subject": "s", "body": "b"},
            )
            conversation = created["data"]["createConversation"]["id"]
            ticker.start()
            stalls: dict[str, list[float]] = {name: [] for name in BODIES}
            idle: list[float] = []
            answers: dict[str, str] = {}
            for _ in range(runs):
                # The machine's own noise: the same ticker while nothing is sent.
                ticker.reset()
                await asyncio.sleep(0.3)
                idle.append(ticker.worst)
                for name, body in BODIES.items():
                    await asyncio.sleep(0.05)  # let the loop settle between bodies
                    ticker.reset()
                    answer = await graphql(
                        session, url, headers, SEND, {"conversationId": conversation, "body": body}
                    )
                    stalls[name].append(ticker.worst)
                    answers[name] = outcome(answer)
            ticker.stop()
    print(f"Event-loop stall per hostile body: median of {runs} runs (worst gap of a 1 ms ticker)")
    print(f"{'body':<40} {'KB':>5} {'stall ms':>9} {'pool CPU ms':>12}  answer")
    noise = statistics.median(idle) * 1000
    print(f"{'(nothing sent: the machine noise)':<40} {'':>5} {noise:9.1f}")
    for name, body in BODIES.items():
        stall = statistics.median(stalls[name]) * 1000
        cpu = statistics.median(sanitizer_cpu_ms(body) for _ in range(runs))
        size = len(body.encode()) / KB
        print(f"{name:<40} {size:5.0f} {stall:9.1f} {cpu:12.1f}  {answers[name]}")
    worst = max(statistics.median(values) for values in stalls.values()) * 1000
    print(f"worst median stall: {worst:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(measure(args.runs))


if __name__ == "__main__":
    main()
