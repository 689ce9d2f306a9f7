"""Live delivery to many subscribers: `python -m bench.delivery [--subscribers 1000]
[--rates 25,100] [--messages 200] [--workers 1] [--runs 3] [--profile DIR] [--json FILE]`.

Every (run, rate) gets a fresh server, so that no phase inherits another's state (ended
subscriptions, a longer message table): `python -m graphql_api serve --port P [--workers N]`
with a fresh temporary data directory, no MONGODB_URI (so the embedded nx-27017 server),
MESSAGER_JWT_SECRET set, and MESSAGER_RATE_LIMITS=false (one author floods on purpose). The
script imports a directory (one firm, one company, a practitioner author, a client participant,
and `--readers` practitioners who have the company in their favorites and so may read its
conversations), creates one COMPANY conversation, then opens `--subscribers` WebSocket
connections (graphql-transport-ws, token in `connection_init`), each subscribed to
`messageAdded(conversationId) { id body bodyText createdAt author { id name } }`; subscriber i
is reader i mod `--readers`.

Memory: the summed VmRSS of the serving processes (`serve`, or its N workers) is the median of
1 s of samples before the subscribers connect and again once every subscriber has received one
warm-up message (proof that all are subscribed) and 2 s of quiet; the growth divided by the
subscriber count is the RSS per idle subscriber.

Delivery: `--messages` replies are sent through `sendMessage` by one HTTP client at a fixed
rate, open loop (message i is sent at t0 + i/rate whether or not earlier answers came back),
each body carrying its phase, index and send time. For every (message, subscriber) pair the
latency is the subscriber's receipt time minus the time the `sendMessage` HTTP answer had been
read, both `time.monotonic()` in this process; a delivery that arrives before its HTTP answer is
recorded as is (zero or negative), and the latency from the request's start is printed too. A
message whose `sendMessage` failed is not expected; every other one is expected at every
subscriber. A phase stops when every delivery has arrived, when nothing arrived for `--quiet`
seconds after the last answer, or at `--drain-deadline`; what did not arrive is lost. Frames
other than a successful `next` (a `next` carrying errors, `complete`) are counted and the first
error is printed.

This process is the load generator (one asyncio loop, loopback only) and shares the machine
with the server: the CPU used meanwhile by the server, nx-27017, this process and every other
process of the machine is printed with each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from bench.common import (
    MIB,
    Server,
    cpu_sum,
    machine_cpu_seconds,
    median_rss,
    raise_fd_limit,
    rss_bytes,
    running_server,
)

# What a chat client subscribes to: the text, its time and who wrote it.
SUBSCRIBE = (
    "subscription Bench($id: ID!) { messageAdded(conversationId: $id) "
    "{ id body bodyText createdAt author { id name } } }"
)
SEND = "mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { id } }"
CREATE = (
    "mutation Create($input: CreateConversationInput!) { createConversation(input: $input) { id } }"
)
PROTOCOL = "graphql-transport-ws"

CONNECT_CONCURRENCY = 50
CONNECT_DEADLINE_SECONDS = 300.0
HANDSHAKE_TIMEOUT_SECONDS = 60.0
WARMUP_DEADLINE_SECONDS = 120.0
SETTLE_SECONDS = 2.0
RUN_DEADLINE_SECONDS = 1800.0
SEND_TIMEOUT_SECONDS = 60.0
START_ATTEMPTS = 3
SERVER_ENV = {"MESSAGER_RATE_LIMITS": "false"}
"""One author sends 25 to 100 messages a second on purpose: the per-user write limit is off."""
RETRY_DELAY_SECONDS = 20.0


# -- directory -----------------------------------------------------------------------------------


def directory(readers: int) -> dict[str, list[dict[str, object]]]:
    users: list[dict[str, object]] = [
        {
            "key": "author",
            "firm": "bench",
            "kind": "PRACTITIONER",
            "name": "Ada Author",
            "email": "author@bench.test",
            "favorites": ["acme"],
        },
        {
            "key": "client",
            "firm": "bench",
            "kind": "CLIENT",
            "name": "Carl Client",
            "email": "client@acme.test",
            "companies": ["acme"],
            "favorites": ["acme"],
        },
    ]
    users += [
        {
            "key": f"reader{i:05d}",
            "firm": "bench",
            "kind": "PRACTITIONER",
            "name": f"Reader {i}",
            "email": f"reader{i:05d}@bench.test",
            "favorites": ["acme"],
        }
        for i in range(readers)
    ]
    return {
        "firms": [{"key": "bench", "name": "Bench Accounting"}],
        "companies": [{"key": "acme", "firm": "bench", "name": "Acme Ltd"}],
        "users": users,
    }


# -- GraphQL over HTTP ---------------------------------------------------------------------------


async def graphql(
    session: aiohttp.ClientSession, url: str, token: str, query: str, variables: dict[str, object]
) -> dict[str, object]:
    async with session.post(
        url,
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        answer = await response.json()
    if answer.get("errors") or response.status != 200:
        raise RuntimeError(f"{response.status}: {answer.get('errors')}")
    return answer["data"]


# -- subscribers ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Subscriber:
    index: int
    ws: aiohttp.ClientWebSocketResponse
    frames: list[tuple[float, str]] = field(default_factory=list)
    """Every text frame received, with its receipt time; parsed after each phase."""
    close_code: int | None = None
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        ws, frames, clock = self.ws, self.frames, time.monotonic
        while True:
            msg = await ws.receive()
            now = clock()
            if msg.type is aiohttp.WSMsgType.TEXT:
                frames.append((now, msg.data))
                if len(msg.data) < 64 and '"ping"' in msg.data:  # protocol-level ping
                    await ws.send_str('{"type":"pong"}')
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                self.close_code = ws.close_code if ws.close_code is not None else -1
                return


async def open_subscriber(
    session: aiohttp.ClientSession, url: str, token: str, conversation_id: str, index: int
) -> Subscriber:
    ws = await session.ws_connect(url, protocols=[PROTOCOL], autoping=True, max_msg_size=0)
    try:
        await ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        )
        ack = await ws.receive(timeout=HANDSHAKE_TIMEOUT_SECONDS)
        if ack.type is not aiohttp.WSMsgType.TEXT or json.loads(ack.data).get("type") != (
            "connection_ack"
        ):
            raise RuntimeError(f"no connection_ack: {ack.type} {ack.data!r}")
        await ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": SUBSCRIBE, "variables": {"id": conversation_id}},
            }
        )
    except BaseException:
        await ws.close()
        raise
    subscriber = Subscriber(index, ws)
    subscriber.task = asyncio.get_running_loop().create_task(subscriber.read())
    return subscriber


async def open_subscribers(
    url: str, tokens: list[str], conversation_id: str, count: int
) -> tuple[aiohttp.ClientSession, list[Subscriber], list[str]]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    failures: list[str] = []

    async def one(i: int) -> Subscriber | None:
        async with gate:
            try:
                return await open_subscriber(
                    session, url, tokens[i % len(tokens)], conversation_id, i
                )
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return None

    tasks = [asyncio.ensure_future(one(i)) for i in range(count)]
    done, pending = await asyncio.wait(tasks, timeout=CONNECT_DEADLINE_SECONDS)
    for task in pending:
        task.cancel()
        failures.append("connect deadline passed")
    subscribers = [t.result() for t in done if not t.cancelled() and t.result() is not None]
    return session, [s for s in subscribers if s is not None], failures


async def close_subscribers(session: aiohttp.ClientSession, subscribers: list[Subscriber]) -> None:
    async def close(s: Subscriber) -> None:
        with contextlib.suppress(Exception):
            await s.ws.close()
        if s.task is not None:
            s.task.cancel()

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            await asyncio.gather(*(close(s) for s in subscribers))
    await session.close()


def received_total(subscribers: list[Subscriber], marks: dict[Subscriber, int]) -> int:
    return sum(len(s.frames) - marks[s] for s in subscribers)


# -- one phase: send at a fixed rate, collect deliveries ------------------------------------------


@dataclass
class Phase:
    rate: float
    messages: int
    subscribers: int
    expected: int
    received: int
    lost: int
    unanswered_deliveries: int
    messages_reaching_all: int
    messages_reaching_none: int
    other_frames: dict[str, int]
    """Frames other than a successful `next` (error, complete, next with errors), by type."""
    first_error: str
    """Deliveries of messages whose sendMessage answered an error or timed out (not expected)."""
    duplicates: int
    early: int
    """Deliveries received before their sendMessage answer (latency <= 0)."""
    req_p50_ms: float
    req_p99_ms: float
    req_max_ms: float
    """Latency measured from the start of the sendMessage request instead of its answer."""
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    min_ms: float
    send_errors: int
    """sendMessage calls that answered an error or timed out: their messages are not expected."""
    send_p50_ms: float
    send_p99_ms: float
    max_send_lag_ms: float
    """The latest a send started after its scheduled time (this process's loop lag)."""
    send_seconds: float
    """From the first send to the last sendMessage answer."""
    drain_seconds: float
    """From the last sendMessage answer to the end of the phase."""
    server_cpu_pct: float
    embedded_cpu_pct: float
    load_cpu_pct: float
    others_cpu_pct: float
    """CPU used meanwhile by every other process of the machine (other people's work)."""
    machine_idle_pct: float
    """Idle CPU left on the machine, in % of one core."""
    closed_subscribers: int
    stop_reason: str
    percentiles_ms: dict[str, float] = field(default_factory=dict)
    """Latency at each percentile of `CURVE_PERCENTILES` (keys as text), for the plot."""


CURVE_PERCENTILES = (0, 10, 25, 50, 75, 90, 95, 98, 99, 99.5, 99.9, 100)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def run_phase(
    server: Server,
    author_token: str,
    conversation_id: str,
    subscribers: list[Subscriber],
    tag: str,
    rate: float,
    messages: int,
    quiet_seconds: float,
    drain_deadline_seconds: float,
) -> Phase:
    url = f"{server.base_url}/graphql"
    marks = {s: len(s.frames) for s in subscribers}
    alive = [s for s in subscribers if s.close_code is None]
    answered_at: dict[int, float] = {}
    sent_at: dict[int, float] = {}
    send_ms: list[float] = []
    send_errors: list[str] = []
    lateness: list[float] = []
    """How late each send started against its schedule (the load loop's own lag)."""
    cpu_pids = list(server.server_pids)
    cpu0 = cpu_sum(cpu_pids), cpu_sum([server.embedded_pid]), time.process_time()
    machine0 = machine_cpu_seconds()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_SECONDS),
    )

    async def send(i: int) -> None:
        sent = sent_at[i] = time.monotonic()
        lateness.append(sent - (started + i / rate))
        body = f"<p>{tag} {i} {sent:.6f}</p>"
        try:
            await graphql(
                session,
                url,
                author_token,
                SEND,
                {"input": {"conversationId": conversation_id, "body": body}},
            )
        except Exception as exc:
            send_errors.append(f"{type(exc).__name__}: {exc}")
            return
        now = time.monotonic()
        answered_at[i] = now
        send_ms.append((now - sent) * 1000)

    started = time.monotonic()
    sends: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    for i in range(messages):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sends.append(loop.create_task(send(i)))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS + 5):
            await asyncio.gather(*sends, return_exceptions=True)
    for task in sends:
        task.cancel()
    answers_done = time.monotonic()
    await session.close()

    # A message whose sendMessage failed is not expected anywhere.
    expected = len(alive) * len(answered_at)
    # Drain: until everything arrived, nothing arrived for `quiet_seconds`, or the deadline.
    deadline = answers_done + drain_deadline_seconds
    last_count, last_change = received_total(subscribers, marks), time.monotonic()
    stop_reason = "all delivered"
    while True:
        count = received_total(subscribers, marks)
        now = time.monotonic()
        if count >= expected:
            break
        if count != last_count:
            last_count, last_change = count, now
        elif now - last_change >= quiet_seconds:
            stop_reason = f"nothing for {quiet_seconds:.0f} s"
            break
        if now >= deadline:
            stop_reason = "drain deadline"
            break
        await asyncio.sleep(0.05)
    ended = time.monotonic()
    cpu1 = cpu_sum(cpu_pids), cpu_sum([server.embedded_pid]), time.process_time()
    machine1 = machine_cpu_seconds()
    ours = sum(cpu1) - sum(cpu0)
    wall = ended - started

    latencies: list[float] = []
    from_request: list[float] = []
    seen: set[tuple[int, int]] = set()
    duplicates = early = unanswered = 0
    other_frames: dict[str, int] = {}
    first_error = ""
    per_message: dict[int, int] = dict.fromkeys(answered_at, 0)
    for s in subscribers:
        for received_at, data in s.frames[marks[s] :]:
            frame = json.loads(data)
            if frame.get("type") != "next":
                kind = str(frame.get("type"))
                other_frames[kind] = other_frames.get(kind, 0) + 1
                if kind == "error" and not first_error:
                    first_error = json.dumps(frame.get("payload"))[:1000]
                continue
            if frame.get("payload", {}).get("errors"):
                other_frames["next with errors"] = other_frames.get("next with errors", 0) + 1
                if not first_error:
                    first_error = json.dumps(frame["payload"]["errors"])[:1000]
                continue
            text = ((frame.get("payload") or {}).get("data") or {}).get("messageAdded") or {}
            parts = str(text.get("bodyText", "")).split()
            if len(parts) < 2 or parts[0] != tag:
                continue
            i = int(parts[1])
            if (s.index, i) in seen:
                duplicates += 1
                continue
            seen.add((s.index, i))
            if i not in answered_at:  # stored although its sendMessage failed or timed out
                unanswered += 1
                continue
            per_message[i] += 1
            from_request.append((received_at - sent_at[i]) * 1000)
            latency = (received_at - answered_at[i]) * 1000
            latencies.append(latency)
            if latency <= 0:
                early += 1
    latencies.sort()
    from_request.sort()
    send_ms.sort()
    return Phase(
        rate=rate,
        messages=messages,
        subscribers=len(alive),
        expected=expected,
        received=len(seen) - unanswered,
        lost=expected - (len(seen) - unanswered),
        unanswered_deliveries=unanswered,
        messages_reaching_all=sum(1 for n in per_message.values() if n == len(alive)),
        messages_reaching_none=sum(1 for n in per_message.values() if n == 0),
        other_frames=other_frames,
        first_error=first_error,
        duplicates=duplicates,
        early=early,
        req_p50_ms=percentile(from_request, 50),
        req_p99_ms=percentile(from_request, 99),
        req_max_ms=from_request[-1] if from_request else float("nan"),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else float("nan"),
        min_ms=latencies[0] if latencies else float("nan"),
        send_errors=len(send_errors),
        send_p50_ms=percentile(send_ms, 50),
        send_p99_ms=percentile(send_ms, 99),
        max_send_lag_ms=max(lateness, default=0.0) * 1000,
        send_seconds=answers_done - started,
        drain_seconds=ended - answers_done,
        server_cpu_pct=(cpu1[0] - cpu0[0]) / wall * 100,
        embedded_cpu_pct=(cpu1[1] - cpu0[1]) / wall * 100,
        load_cpu_pct=(cpu1[2] - cpu0[2]) / wall * 100,
        others_cpu_pct=max(machine1[0] - machine0[0] - ours, 0.0) / wall * 100,
        percentiles_ms={f"{q:g}": percentile(latencies, q) for q in CURVE_PERCENTILES},
        machine_idle_pct=((machine1[1] - machine0[1]) - (machine1[0] - machine0[0])) / wall * 100,
        closed_subscribers=sum(1 for s in subscribers if s.close_code is not None),
        stop_reason=stop_reason + (f"; first send error: {send_errors[0]}" if send_errors else ""),
    )


# -- profiling (optional) ------------------------------------------------------------------------


@contextlib.contextmanager
def profiling(directory: Path | None, pids: list[int], name: str):  # type: ignore[no-untyped-def]
    """`py-spy record` of every given process for the block: collapsed stacks (`--format raw`),
    non-blocking, idle threads included (a thread waiting on a lock or in `select` shows too)."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    recorders = [
        subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--nonblocking",
                "--idle",
                "--format",
                "raw",
                "--output",
                str(directory / f"{name}-pid{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    time.sleep(1.0)  # let py-spy attach
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            try:
                recorder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                recorder.kill()


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Run:
    started: str
    """Wall-clock start (UTC), to match a run with the code and the machine's load of the time."""
    subscribers: int
    connect_failures: int
    connect_seconds: float
    rss_before_mib: float
    rss_subscribed_mib: float
    rss_after_warmup_mib: float
    rss_per_subscriber_kib: float
    """Growth from before connecting to after the warm-up message, per subscriber."""
    embedded_rss_growth_mib: float
    load_rss_mib: float
    warmup_received: int
    phases: list[Phase]


async def one_run(server: Server, args: argparse.Namespace, run_index: int, rate: float) -> Run:
    started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    url = f"{server.base_url}/graphql"
    ids = server.import_directory(directory(args.readers))
    users = ids["users"]
    author_token, reader_tokens = (
        server.tokens([users["author"]])[0],
        server.tokens([users[f"reader{i:05d}"] for i in range(args.readers)]),
    )
    async with aiohttp.ClientSession() as session:
        created = await graphql(
            session,
            url,
            author_token,
            CREATE,
            {
                "input": {
                    "type": "COMPANY",
                    "companyId": ids["companies"]["acme"],
                    "participantIds": [users["client"]],
                    "subject": "Delivery benchmark",
                    "body": "<p>start</p>",
                }
            },
        )
    conversation_id = created["createConversation"]["id"]

    rss_before = await asyncio.to_thread(median_rss, server.server_pids)
    embedded_before = rss_bytes(server.embedded_pid) or 0
    started = time.monotonic()
    session, subscribers, failures = await open_subscribers(
        server.ws_url, reader_tokens, conversation_id, args.subscribers
    )
    connect_seconds = time.monotonic() - started
    print(
        f"  {len(subscribers)} subscribers connected in {connect_seconds:.1f} s"
        + (f"; {len(failures)} failed, first: {failures[0]}" if failures else ""),
        flush=True,
    )
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        rss_subscribed = await asyncio.to_thread(median_rss, server.server_pids)
        warmup = await run_phase(
            server,
            author_token,
            conversation_id,
            subscribers,
            "warmup",
            1.0,
            1,
            quiet_seconds=WARMUP_DEADLINE_SECONDS,
            drain_deadline_seconds=WARMUP_DEADLINE_SECONDS,
        )
        print(
            f"  warm-up message reached {warmup.received}/{len(subscribers)} subscribers "
            f"(p50 {warmup.p50_ms:.0f} ms, max {warmup.max_ms:.0f} ms)",
            flush=True,
        )
        await asyncio.sleep(SETTLE_SECONDS)
        rss_after = await asyncio.to_thread(median_rss, server.server_pids)
        embedded_after = rss_bytes(server.embedded_pid) or 0
        count = max(len(subscribers), 1)
        # One rate per server: a phase never inherits another phase's state.
        with profiling(
            args.profile,
            [*server.server_pids, server.embedded_pid],
            f"w{server.workers}-run{run_index}-r{rate:g}",
        ):
            phase = await run_phase(
                server,
                author_token,
                conversation_id,
                subscribers,
                f"r{rate:g}",
                rate,
                args.messages,
                args.quiet,
                args.drain_deadline,
            )
        print(f"  {phase_line(phase)}", flush=True)
    finally:
        await close_subscribers(session, subscribers)
    return Run(
        started=started_utc,
        subscribers=len(subscribers),
        connect_failures=len(failures),
        connect_seconds=connect_seconds,
        rss_before_mib=rss_before / MIB,
        rss_subscribed_mib=rss_subscribed / MIB,
        rss_after_warmup_mib=rss_after / MIB,
        rss_per_subscriber_kib=(rss_after - rss_before) / count / 1024,
        embedded_rss_growth_mib=(embedded_after - embedded_before) / MIB,
        load_rss_mib=(rss_bytes(os.getpid()) or 0) / MIB,
        warmup_received=warmup.received,
        phases=[phase],
    )


# -- report --------------------------------------------------------------------------------------


def phase_line(p: Phase) -> str:
    return (
        f"{p.rate:g} msg/s: p50 {p.p50_ms:.1f}  p95 {p.p95_ms:.1f}  p99 {p.p99_ms:.1f}  "
        f"max {p.max_ms:.1f} ms (min {p.min_ms:.1f}, {p.early} <= 0); received "
        f"{p.received}/{p.expected} (from request: p50 {p.req_p50_ms:.1f} p99 "
        f"{p.req_p99_ms:.1f} max {p.req_max_ms:.1f} ms), lost {p.lost}, dup {p.duplicates}, "
        f"deliveries of failed sends {p.unanswered_deliveries}; messages reaching all "
        f"{p.messages_reaching_all}, none {p.messages_reaching_none}; other frames "
        f"{p.other_frames or 'none'} {p.first_error[:200]}; "
        f"sendMessage p50 "
        f"{p.send_p50_ms:.1f} p99 {p.send_p99_ms:.1f} ms, {p.send_errors} errors, send lag max "
        f"{p.max_send_lag_ms:.0f} ms; sending "
        f"{p.send_seconds:.1f} s + drain {p.drain_seconds:.1f} s ({p.stop_reason}); CPU "
        f"server {p.server_cpu_pct:.0f}% nx-27017 {p.embedded_cpu_pct:.0f}% load "
        f"{p.load_cpu_pct:.0f}% others {p.others_cpu_pct:.0f}% idle "
        f"{p.machine_idle_pct:.0f}% (100% = one core); closed subscribers {p.closed_subscribers}"
    )


def median_range(values: list[float], fmt: str = ".1f") -> str:
    if not values:
        return "n/a"
    return (
        f"{format(statistics.median(values), fmt)} "
        f"[{format(min(values), fmt)}–{format(max(values), fmt)}]"  # noqa: RUF001
    )


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print()
    print(
        f"workers {args.workers}, {args.subscribers} subscribers ({args.readers} distinct "
        f"readers), {args.messages} messages per rate, {args.runs} runs; median [min–max]"  # noqa: RUF001
    )
    print(f"  RSS figures over all {len(runs)} servers (every run and rate)")
    print(f"  RSS before subscribers:      {median_range([r.rss_before_mib for r in runs])} MiB")
    print(
        f"  RSS after warm-up:           {median_range([r.rss_after_warmup_mib for r in runs])} MiB"
    )
    print(
        f"  RSS per idle subscriber:     "
        f"{median_range([r.rss_per_subscriber_kib for r in runs])} KiB"
    )
    print(
        f"  nx-27017 RSS growth:         "
        f"{median_range([r.embedded_rss_growth_mib for r in runs])} MiB"
    )
    print(f"  connect time:                {median_range([r.connect_seconds for r in runs])} s")
    for rate in args.rates:
        phases = [p for r in runs for p in r.phases if p.rate == rate]
        print(f"  {rate:g} msg/s:")
        for name, attr in (
            ("p50", "p50_ms"),
            ("p95", "p95_ms"),
            ("p99", "p99_ms"),
            ("max", "max_ms"),
            ("p50 from request", "req_p50_ms"),
            ("p99 from request", "req_p99_ms"),
        ):
            print(f"    {name:<24} {median_range([getattr(p, attr) for p in phases])} ms")
        print(
            f"    {'lost':<24} {median_range([p.lost for p in phases], '.0f')} "
            f"of {median_range([p.expected for p in phases], '.0f')} expected"
        )
        print(f"    {'deliveries <= 0 ms':<24} {median_range([p.early for p in phases], '.0f')}")
        ended = median_range([p.other_frames.get("complete", 0) for p in phases], ".0f")
        print(
            f"    {'subscriptions ended':<24} {ended} (`complete` from the server, after an error)"
        )
        send_errors = median_range([p.send_errors for p in phases], ".0f")
        print(f"    {'sendMessage errors':<24} {send_errors} of {args.messages}")
        print(f"    {'sendMessage p99':<24} {median_range([p.send_p99_ms for p in phases])} ms")
        print(
            f"    {'drain after last answer':<24} "
            f"{median_range([p.drain_seconds for p in phases])} s"
        )
        print(f"    {'server CPU':<24} {median_range([p.server_cpu_pct for p in phases], '.0f')} %")
        load_cpu = median_range([p.load_cpu_pct for p in phases], ".0f")
        print(f"    {'load process CPU':<24} {load_cpu} %")
        others = median_range([p.others_cpu_pct for p in phases], ".0f")
        print(f"    {'other processes CPU':<24} {others} %")
        idle = median_range([p.machine_idle_pct for p in phases], ".0f")
        print(f"    {'machine idle CPU':<24} {idle} % (of {os.cpu_count()}00 %)")


# -- main ----------------------------------------------------------------------------------------


def measure(args: argparse.Namespace, index: int, rate: float) -> Run | None:
    """One run at one rate on a fresh server; None when it passed its deadline."""
    with running_server(
        workers=args.workers,
        prefix="bench-delivery-",
        keep_logs=args.keep_logs,
        extra_env=SERVER_ENV,
    ) as server:
        print(
            f"  server pids {server.server_pids} (nx-27017 {server.embedded_pid}) on port "
            f"{server.port}",
            flush=True,
        )

        async def bounded() -> Run:
            async with asyncio.timeout(RUN_DEADLINE_SECONDS):
                return await one_run(server, args, index, rate)

        try:
            return asyncio.run(bounded())
        except TimeoutError:
            print(f"  run {index} passed its {RUN_DEADLINE_SECONDS:.0f} s deadline; dropped")
            return None


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.delivery",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--readers", type=int, help="distinct reader users (default: one each)")
    parser.add_argument("--rates", default="25,100", help="messages per second, comma-separated")
    parser.add_argument("--messages", type=int, default=200, help="messages sent per rate")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--quiet",
        type=float,
        default=15.0,
        help="end a phase when nothing arrived for this many seconds",
    )
    parser.add_argument(
        "--drain-deadline",
        type=float,
        default=180.0,
        help="hard limit on waiting for deliveries after the last answer (s)",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the server's processes and nx-27017 per phase"
    )
    parser.add_argument("--keep-logs", type=Path, help="copy the server logs here after each run")
    parser.add_argument("--json", type=Path, help="write every run's figures to this file")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    args.readers = args.readers or args.subscribers
    if args.subscribers < 1 or args.messages < 1 or not args.rates or args.runs < 1:
        parser.error("subscribers, messages, runs and rates must be positive")

    limit = raise_fd_limit(args.subscribers * 2 + 256)
    print(
        f"{os.cpu_count()} CPUs; open-file limit {limit}; workers {args.workers}; "
        f"{args.subscribers} subscribers; rates {args.rates}; {args.messages} messages per rate",
        flush=True,
    )
    runs: list[Run] = []
    hard_stop = time.monotonic() + RUN_DEADLINE_SECONDS * args.runs * len(args.rates)
    for index, rate in itertools.product(range(1, args.runs + 1), args.rates):
        if time.monotonic() >= hard_stop:
            print("overall deadline passed; no more runs")
            break
        print(f"run {index}, {rate:g} msg/s (fresh server):", flush=True)
        run: Run | None = None
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                run = measure(args, index, rate)
                break
            except SystemExit as exc:  # the server did not start, or a command failed
                print(f"  attempt {attempt} failed: {exc}", flush=True)
                if attempt < START_ATTEMPTS:
                    time.sleep(RETRY_DELAY_SECONDS)
        if run is None:
            print(f"  run {index} at {rate:g} msg/s dropped", flush=True)
            continue
        print(
            f"  RSS {run.rss_before_mib:.1f} MiB before, {run.rss_subscribed_mib:.1f} MiB "
            f"subscribed, {run.rss_after_warmup_mib:.1f} MiB after warm-up: "
            f"{run.rss_per_subscriber_kib:.1f} KiB per subscriber; nx-27017 "
            f"{run.embedded_rss_growth_mib:+.1f} MiB; load process {run.load_rss_mib:.0f} MiB",
            flush=True,
        )
        runs.append(run)
    if runs:
        report(runs, args)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": {
                        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                    },
                    "runs": [asdict(r) for r in runs],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
