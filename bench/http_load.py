"""Closed-loop HTTP load on the GraphQL endpoint, and the scenarios of the suite.

`closed_loop` keeps N requests in flight (N workers, each sending its next request as soon as
the previous answer is read) from one asyncio loop over loopback, for a warm-up and then a fixed
measured window. A request counts when it started inside the window; its latency runs from
just before the POST to the last byte of the answer parsed. Any answer other than a 200 whose
JSON has `data` and no `errors` (or a time-out, or a connection error) is an error, over the
whole phase warm-up included, and the first one is kept to print.

Scenarios (each a list of workers; a worker is a function from the previous answer's `data`,
None at the start and after an error, to the next request):
- `floor`: `{ __typename }` with the reader's token: the authenticated floor of a request;
- `send`: `sendMessage` into the fan-out conversation, worker i as participant i, a distinct
  `clientMessageId` per request: each message notifies the other 31 participants;
- `inbox`: the reader's first 50 conversations with their last message, unread count,
  participants and company;
- `history_newest`: the newest 50 messages of the history conversation;
- `history_walk`: from the newest page back to the first by `before` cursor, 50 at a time, then
  again from the newest;
- `search_rare`, `search_common`, `search_absent`: the reader's first page of 20 results for a
  word in about 30 messages, in about one message of five, and in none (`bench.dataset`).

The load generator shares the machine with the server: CPU used meanwhile by the server, nx-27017,
this process and every other process is recorded with each phase (% of one core).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import Server, cpu_sum, machine_cpu_seconds
from bench.dataset import Dataset
from bench.delivery import percentile

Data = dict[str, Any]
Request = tuple[str, str, dict[str, Any]]
"""(token, query, variables); an empty token sends no `Authorization` header."""
Worker = Callable[[Data | None], Request]
"""The next request, from the previous answer's `data` (None at the start and after an error)."""

REQUEST_TIMEOUT_SECONDS = 30.0
PAGE = 50

FLOOR = "query Floor { __typename }"
SEND = "mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { id createdAt } }"
INBOX = """query Inbox {
  conversations(first: 50) {
    edges { cursor node {
      id type subject lastMessageAt unreadCount
      company { id name }
      participants { id name kind }
      lastMessage { id bodyText createdAt author { id name } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""
HISTORY = """query History($id: ID!, $before: String) {
  conversation(id: $id) {
    messages(last: 50, before: $before) {
      edges { cursor node { id body bodyText createdAt author { id name } } }
      pageInfo { hasPreviousPage startCursor }
    }
  }
}"""
SEARCH = """query Search($query: String!) {
  search(query: $query, first: 20) {
    edges { cursor node {
      snippet
      message { id bodyText createdAt author { id name } }
      conversation { id subject }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@dataclass
class LoadResult:
    scenario: str
    concurrency: int
    seconds: float
    """The measured window, from the end of the warm-up to the last counted answer."""
    requests: int
    """Requests started in the measured window and answered without error."""
    errors: int
    """Failed requests over the whole phase, warm-up included."""
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    first_error: str
    cpu_pct: dict[str, float] = field(default_factory=dict)
    """CPU during the window, % of one core: server, embedded, load, others, idle."""
    extra: dict[str, float] = field(default_factory=dict)
    """Scenario-specific figures (full walks of the history, messages walked)."""


def _error_text(status: int, answer: object) -> str:
    if isinstance(answer, dict) and answer.get("errors"):
        return f"{status}: {json.dumps(answer['errors'])[:500]}"
    return f"{status}: {str(answer)[:500]}"


async def closed_loop(
    server: Server,
    scenario: str,
    workers: list[Worker],
    seconds: float,
    warmup: float,
) -> LoadResult:
    """Run `workers` concurrently for `warmup` + `seconds`; the figures of the window."""
    url = f"{server.base_url}/graphql"
    latencies: list[float] = []
    errors = 0
    first_error = ""
    last_answer = 0.0
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=0)  # the worker count is the concurrency
    started = time.perf_counter()
    window = started + warmup
    stop = window + seconds
    cpu: dict[str, tuple[float, ...]] = {}

    def snapshot() -> tuple[float, ...]:
        return (
            cpu_sum(server.server_pids),
            cpu_sum([server.embedded_pid]),
            time.process_time(),
            *machine_cpu_seconds(),
        )

    async def window_start() -> None:
        await asyncio.sleep(warmup)
        cpu["start"] = snapshot()

    async def run(worker: Worker, session: aiohttp.ClientSession) -> None:
        nonlocal errors, first_error, last_answer
        data: Data | None = None
        while (sent := time.perf_counter()) < stop:
            token, query, variables = worker(data)
            body = json.dumps({"query": query, "variables": variables})
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            failure = ""
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    status = response.status
                    answer = await response.json(content_type=None)
                if status != 200 or not isinstance(answer, dict) or answer.get("errors"):
                    failure = _error_text(status, answer)
                    data = None
                else:
                    data = answer.get("data")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                failure, data = f"{type(exc).__name__}: {exc}", None
            answered = time.perf_counter()
            if failure:
                errors += 1
                first_error = first_error or failure
            elif sent >= window:
                latencies.append((answered - sent) * 1000)
                last_answer = max(last_answer, answered)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        marker = asyncio.create_task(window_start())
        await asyncio.gather(*(run(worker, session) for worker in workers))
        await marker
    end = snapshot()
    begin = cpu.get("start", end)
    measured = max(last_answer - window, 1e-9) if latencies else seconds
    wall = max(time.perf_counter() - window, 1e-9)
    ours = sum(end[:3]) - sum(begin[:3])
    busy, total = end[3] - begin[3], end[4] - begin[4]
    latencies.sort()
    return LoadResult(
        scenario=scenario,
        concurrency=len(workers),
        seconds=measured,
        requests=len(latencies),
        errors=errors,
        rps=len(latencies) / measured,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else float("nan"),
        first_error=first_error,
        cpu_pct={
            "server": (end[0] - begin[0]) / wall * 100,
            "embedded": (end[1] - begin[1]) / wall * 100,
            "load": (end[2] - begin[2]) / wall * 100,
            "others": max(busy - ours, 0.0) / wall * 100,
            "idle": (total - busy) / wall * 100,
        },
    )


# -- scenarios ------------------------------------------------------------------------------------


def floor_workers(data: Dataset, concurrency: int) -> list[Worker]:
    request: Request = (data.reader_token, FLOOR, {})
    return [lambda _previous: request for _ in range(concurrency)]


def send_workers(data: Dataset, concurrency: int) -> list[Worker]:
    """Sender i is participant i of the fan-out conversation; every key is new (a repeated
    `clientMessageId` would answer the first message instead of storing one)."""
    if concurrency > len(data.fanout_tokens):
        raise ValueError(f"at most {len(data.fanout_tokens)} distinct senders")
    tag = uuid.uuid4().hex[:12]

    def sender(index: int) -> Worker:
        token = data.fanout_tokens[index]
        count = 0

        def next_request(_previous: Data | None) -> Request:
            nonlocal count
            count += 1
            return (
                token,
                SEND,
                {
                    "input": {
                        "conversationId": data.fanout_conversation_id,
                        "body": f"<p>Load {tag} from sender {index}, message {count}.</p>",
                        "clientMessageId": f"{tag}-{index}-{count}",
                    }
                },
            )

        return next_request

    return [sender(i) for i in range(concurrency)]


def inbox_workers(data: Dataset, concurrency: int) -> list[Worker]:
    request: Request = (data.reader_token, INBOX, {})
    return [lambda _previous: request for _ in range(concurrency)]


def history_newest_workers(data: Dataset, concurrency: int) -> list[Worker]:
    request: Request = (
        data.reader_token,
        HISTORY,
        {"id": data.history_conversation_id, "before": None},
    )
    return [lambda _previous: request for _ in range(concurrency)]


@dataclass
class WalkStats:
    """What the walkers saw: complete walks, and pages that were not full before the first."""

    walks: int = 0
    messages: int = 0
    short_pages: int = 0
    wrong_totals: list[int] = field(default_factory=list)
    """Messages counted by complete walks that did not count `history_messages`."""


def history_walk_workers(
    data: Dataset, concurrency: int, stats: WalkStats | None = None
) -> list[Worker]:
    """Each walker pages back from the newest page to the first by `before`, then starts again;
    a walker that got an error starts again from the newest page."""
    stats = stats if stats is not None else WalkStats()
    conversation_id = data.history_conversation_id

    def walker() -> Worker:
        walked = 0

        def next_request(previous: Data | None) -> Request:
            nonlocal walked
            before = None
            if previous is not None and previous.get("conversation") is not None:
                page = previous["conversation"]["messages"]
                count = len(page["edges"])
                walked += count
                stats.messages += count
                if page["pageInfo"]["hasPreviousPage"]:
                    if count != PAGE:
                        stats.short_pages += 1
                    before = page["pageInfo"]["startCursor"]
                else:  # the first page: a complete walk
                    stats.walks += 1
                    if walked != data.history_messages:
                        stats.wrong_totals.append(walked)
                    walked = 0
            else:
                walked = 0
            return (data.reader_token, HISTORY, {"id": conversation_id, "before": before})

        return next_request

    return [walker() for _ in range(concurrency)]


async def history_walk(
    server: Server, data: Dataset, concurrency: int, seconds: float, warmup: float
) -> LoadResult:
    """The walk back, with the count of complete walks and their check."""
    stats = WalkStats()
    result = await closed_loop(
        server,
        "history_walk",
        history_walk_workers(data, concurrency, stats),
        seconds,
        warmup,
    )
    result.extra = {
        "complete_walks": stats.walks,
        "messages_walked": stats.messages,
        "short_pages": stats.short_pages,
        "wrong_totals": len(stats.wrong_totals),
    }
    if stats.wrong_totals and not result.first_error:
        result.first_error = (
            f"walks counted {stats.wrong_totals[:3]} messages, not {data.history_messages}"
        )
    return result


async def search(
    server: Server,
    data: Dataset,
    scenario: str,
    word: str,
    concurrency: int,
    seconds: float,
    warmup: float,
) -> LoadResult:
    """The reader's first page of results for `word`, and what the last answer held."""
    last: dict[str, Any] = {}

    def worker(previous: Data | None) -> Request:
        if previous is not None:
            last.update(previous["search"])
        return (data.reader_token, SEARCH, {"query": word})

    result = await closed_loop(server, scenario, [worker] * concurrency, seconds, warmup)
    if last:
        result.extra = {
            "results": len(last["edges"]),
            "more_pages": int(last["pageInfo"]["hasNextPage"]),
        }
    return result


def line(result: LoadResult) -> str:
    """One printed line per phase."""
    unit = "msgs/s" if result.scenario.startswith("send") else "req/s"
    cpu = result.cpu_pct
    text = (
        f"{result.scenario} x{result.concurrency}: {result.rps:.1f} {unit} "
        f"({result.requests} in {result.seconds:.1f} s), p50 {result.p50_ms:.1f} p95 "
        f"{result.p95_ms:.1f} p99 {result.p99_ms:.1f} max {result.max_ms:.1f} ms, "
        f"{result.errors} errors; CPU server {cpu.get('server', 0):.0f}% nx-27017 "
        f"{cpu.get('embedded', 0):.0f}% load {cpu.get('load', 0):.0f}% others "
        f"{cpu.get('others', 0):.0f}% idle {cpu.get('idle', 0):.0f}%"
    )
    if result.extra:
        text += " " + ", ".join(f"{k} {v:g}" for k, v in result.extra.items())
    if result.first_error:
        text += f"\n    first error: {result.first_error}"
    return text
