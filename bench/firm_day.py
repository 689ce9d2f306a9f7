"""A firm's working day, live: `python -m bench.firm_day [--workers 1,2] [--runs 1]
[--users 1000] [--conversations 500] [--rate 20] [--seconds 30] [--warmup 10] [--json FILE]`.

Issue 16's mix. Every run gets a fresh server (`bench.common.running_server`: `serve
[--workers N]`, a fresh data directory, the embedded nx-27017, MESSAGER_RATE_LIMITS=false). It
imports one firm of `--users` practitioners, then creates `--conversations` PRIVATE
conversations of 2 to 10 participants each (sizes uniform, members drawn so that every user is
in at least one), through `createConversation`. Every user then connects one WebSocket
(graphql-transport-ws, token in `connection_init`) carrying the three subscriptions a client
keeps open all day:

- `notificationAdded { id createdAt conversation { id subject } message { id bodyText author
  { id name } } }`;
- `inboxUpdated { id subject lastMessageAt unreadCount lastMessage { id bodyText author
  { id name } } }`;
- `messageAdded(conversationId)` on one of its conversations (the one open on its screen)
  `{ id body bodyText createdAt author { id name } }`.

Then messages are sent through `sendMessage` at `--rate` per second, open loop (message i at
t0 + i/rate whatever the earlier answers), each into a conversation drawn at random by a
participant drawn at random, with that participant's token: `--warmup` seconds whose messages
are not counted (subscriptions still starting), then `--seconds` measured.

Expected, for each measured message whose `sendMessage` answered: `messageAdded` at every user
whose open conversation it is, `notificationAdded` at every participant but the author,
`inboxUpdated` at every participant (the author's inbox moves too). Each frame is matched to its
message by the message id it carries; an `inboxUpdated` frame shows its conversation as it is
when delivered, so one whose last message is m also counts for the conversation's earlier
messages (another process may deliver a message's inbox event with a later state of the
conversation, which a user's inbox rightly shows). Latency is the frame's receipt
time minus the moment the `sendMessage` answer was read (`time.monotonic()` in this process). A
phase ends when all has arrived, after `--quiet` seconds without a delivery, or at
`--drain-deadline`; what has not arrived is lost. Prints every run, then per workers value the
median [min to max] over the runs.

One asyncio loop in this process is the load generator (loopback only): it shares the 2 cores
with the server, and the CPU used meanwhile by the server, nx-27017, this process and the rest of
the machine is printed with each run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from bench.common import Server, cpu_sum, machine_cpu_seconds, raise_fd_limit, running_server
from bench.delivery import PROTOCOL, graphql, median_range, percentile
from graphql_api.pagination import parse_message_cursor

SERVER_ENV = {"MESSAGER_RATE_LIMITS": "false"}
"""A few users send many messages over the day's compressed minute: the write limit is off."""

NOTIFICATIONS = (
    "subscription Notifications { notificationAdded { id createdAt conversation { id subject } "
    "message { id bodyText author { id name } } } }"
)
INBOX = (
    "subscription Inbox { inboxUpdated { id subject lastMessageAt unreadCount "
    "lastMessage { id cursor bodyText author { id name } } } }"
)
OPEN_CONVERSATION = (
    "subscription Open($id: ID!) { messageAdded(conversationId: $id) "
    "{ id body bodyText createdAt author { id name } } }"
)
SEND = "mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { id cursor } }"
CREATE = (
    "mutation Create($input: CreateConversationInput!) { createConversation(input: $input) { id } }"
)
KINDS = {"n": "notificationAdded", "i": "inboxUpdated", "m": "messageAdded"}
"""Subscription id on each socket -> its field."""

CONNECT_CONCURRENCY = 50
CREATE_CONCURRENCY = 8
HANDSHAKE_TIMEOUT_SECONDS = 60.0
SEND_TIMEOUT_SECONDS = 60.0
SETTLE_SECONDS = 3.0


# -- the firm ------------------------------------------------------------------------------------


def directory(users: int) -> dict[str, list[dict[str, object]]]:
    return {
        "firms": [{"key": "day", "name": "Firm Day"}],
        "companies": [{"key": "co", "firm": "day", "name": "Day Company"}],
        "users": [
            {
                "key": f"u{i:05d}",
                "firm": "day",
                "kind": "PRACTITIONER",
                "name": f"User {i}",
                "email": f"u{i:05d}@day.test",
            }
            for i in range(users)
        ],
    }


def plan_conversations(users: int, conversations: int, rng: random.Random) -> list[list[int]]:
    """Participant indexes of each conversation: sizes uniform in 2..10, members taken in turn
    from shuffled rounds of all users, so every user is in at least one when there are seats."""
    sizes = [rng.randint(2, 10) for _ in range(conversations)]
    order: list[int] = []
    plans = []
    for size in sizes:
        members: list[int] = []
        while len(members) < size:
            if not order:
                order = list(range(users))
                rng.shuffle(order)
            candidate = order.pop()
            if candidate not in members:
                members.append(candidate)
        plans.append(members)
    return plans


# -- connections ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Client:
    user: int
    ws: aiohttp.ClientWebSocketResponse
    frames: list[tuple[float, str]] = field(default_factory=list)
    close_code: int | None = None
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        ws, frames, clock = self.ws, self.frames, time.monotonic
        while True:
            msg = await ws.receive()
            now = clock()
            if msg.type is aiohttp.WSMsgType.TEXT:
                frames.append((now, msg.data))
                if len(msg.data) < 64 and '"ping"' in msg.data:
                    await ws.send_str('{"type":"pong"}')
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                self.close_code = ws.close_code if ws.close_code is not None else -1
                return


async def connect(
    session: aiohttp.ClientSession, url: str, user: int, token: str, open_conversation: str
) -> Client:
    ws = await session.ws_connect(url, protocols=[PROTOCOL], max_msg_size=0)
    try:
        await ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        )
        ack = await ws.receive(timeout=HANDSHAKE_TIMEOUT_SECONDS)
        if ack.type is not aiohttp.WSMsgType.TEXT or json.loads(ack.data).get("type") != (
            "connection_ack"
        ):
            raise RuntimeError(f"no connection_ack: {ack.type} {ack.data!r}")
        for sub_id, query, variables in (
            ("n", NOTIFICATIONS, {}),
            ("i", INBOX, {}),
            ("m", OPEN_CONVERSATION, {"id": open_conversation}),
        ):
            await ws.send_json(
                {
                    "id": sub_id,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables},
                }
            )
    except BaseException:
        await ws.close()
        raise
    client = Client(user, ws)
    client.task = asyncio.get_running_loop().create_task(client.read())
    return client


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Figures:
    workers: int
    started: str
    users: int
    conversations: int
    connected: int
    connect_seconds: float
    messages: int
    """Measured messages whose sendMessage answered."""
    send_errors: int
    expected: dict[str, int]
    received: dict[str, int]
    lost: dict[str, int]
    duplicates: int
    error_frames: int
    first_error: str
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    p99_by_kind_ms: dict[str, float]
    send_p50_ms: float
    send_p99_ms: float
    drain_seconds: float
    stop_reason: str
    cpu_pct: dict[str, float]
    load_average: list[float]


async def create_conversations(
    url: str, tokens: list[str], user_ids: list[str], plans: list[list[int]]
) -> list[str]:
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)
    async with aiohttp.ClientSession() as session:

        async def create(index: int, members: list[int]) -> str:
            creator, others = members[0], members[1:]
            async with gate:
                data = await graphql(
                    session,
                    url,
                    tokens[creator],
                    CREATE,
                    {
                        "input": {
                            "type": "PRIVATE",
                            "participantIds": [user_ids[u] for u in others],
                            "subject": f"Matter {index}",
                            "body": f"<p>Opening matter {index}.</p>",
                        }
                    },
                )
            return str(data["createConversation"]["id"])  # type: ignore[index]

        return list(await asyncio.gather(*(create(i, m) for i, m in enumerate(plans))))


async def one_run(server: Server, args: argparse.Namespace) -> Figures:
    started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rng = random.Random(args.seed)
    url = f"{server.base_url}/graphql"
    ids = server.import_directory(directory(args.users))
    user_ids = [ids["users"][f"u{i:05d}"] for i in range(args.users)]
    tokens = server.tokens(user_ids)
    plans = plan_conversations(args.users, args.conversations, rng)
    conversation_ids = await create_conversations(url, tokens, user_ids, plans)
    memberships: dict[int, list[int]] = {}
    for index, members in enumerate(plans):
        for user in members:
            memberships.setdefault(user, []).append(index)
    open_of = {user: rng.choice(convs) for user, convs in memberships.items()}
    print(f"  {len(conversation_ids)} conversations created; connecting", flush=True)

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    failures: list[str] = []

    async def one(user: int) -> Client | None:
        async with gate:
            try:
                return await connect(
                    session, server.ws_url, user, tokens[user], conversation_ids[open_of[user]]
                )
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return None

    connect_started = time.monotonic()
    connected = [c for c in await asyncio.gather(*(one(u) for u in open_of)) if c is not None]
    connect_seconds = time.monotonic() - connect_started
    print(
        f"  {len(connected)} users connected in {connect_seconds:.1f} s"
        + (f"; {len(failures)} failed, first: {failures[0]}" if failures else ""),
        flush=True,
    )
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        return await send_and_collect(
            server,
            args,
            url,
            tokens,
            plans,
            conversation_ids,
            open_of,
            connected,
            started_utc,
            connect_seconds,
        )
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.gather(*(c.ws.close() for c in connected), return_exceptions=True)
        for c in connected:
            if c.task is not None:
                c.task.cancel()
        await session.close()


async def send_and_collect(
    server: Server,
    args: argparse.Namespace,
    url: str,
    tokens: list[str],
    plans: list[list[int]],
    conversation_ids: list[str],
    open_of: dict[int, int],
    clients: list[Client],
    started_utc: str,
    connect_seconds: float,
) -> Figures:
    rng = random.Random(args.seed + 1)
    warmup_count = round(args.warmup * args.rate)
    total = warmup_count + round(args.seconds * args.rate)
    sent_in: dict[int, tuple[int, int]] = {}
    """message index -> (conversation index, author)."""
    answered_at: dict[int, float] = {}
    index_of_id: dict[str, int] = {}
    seq_of: dict[int, int] = {}
    """message index -> its number in its conversation."""
    sent_to: dict[int, list[int]] = {}
    """conversation index -> the indexes of its answered messages."""
    send_ms: list[float] = []
    send_errors: list[str] = []
    marks = {c: len(c.frames) for c in clients}
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_SECONDS),
    )

    async def send(i: int) -> None:
        conversation = rng.randrange(len(plans))
        author = rng.choice(plans[conversation])
        sent_in[i] = (conversation, author)
        sent = time.monotonic()
        try:
            data = await graphql(
                http,
                url,
                tokens[author],
                SEND,
                {
                    "input": {
                        "conversationId": conversation_ids[conversation],
                        "body": f"<p>Day message {i} from user {author}.</p>",
                    }
                },
            )
        except Exception as exc:
            send_errors.append(f"{type(exc).__name__}: {exc}")
            return
        now = time.monotonic()
        index_of_id[str(data["sendMessage"]["id"])] = i  # type: ignore[index]
        seq_of[i] = parse_message_cursor(str(data["sendMessage"]["cursor"]), "cursor")  # type: ignore[index]
        sent_to.setdefault(conversation, []).append(i)
        answered_at[i] = now
        if i >= warmup_count:
            send_ms.append((now - sent) * 1000)

    cpu0: tuple[float, ...] = ()
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    tasks = []
    for i in range(total):
        if i == warmup_count:
            cpu0 = (
                cpu_sum(server.server_pids),
                cpu_sum([server.embedded_pid]),
                time.process_time(),
                *machine_cpu_seconds(),
            )
            measured_from = time.monotonic()
        delay = started + i / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(send(i)))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS + 5):
            await asyncio.gather(*tasks, return_exceptions=True)
    answers_done = time.monotonic()
    await http.close()

    # What each measured, answered message should reach: (user, kind, message index).
    measured = [i for i in answered_at if i >= warmup_count]
    watchers: dict[int, list[int]] = {}
    for user, conversation in open_of.items():
        watchers.setdefault(conversation, []).append(user)
    alive = {c.user for c in clients}
    expected: set[tuple[int, str, int]] = set()
    for i in measured:
        conversation, author = sent_in[i]
        for user in plans[conversation]:
            if user in alive:
                expected.add((user, "i", i))
                if user != author:
                    expected.add((user, "n", i))
        for user in watchers.get(conversation, []):
            if user in alive:
                expected.add((user, "m", i))

    def parsed() -> tuple[dict[tuple[int, str, int], float], int, int, str]:
        received: dict[tuple[int, str, int], float] = {}
        duplicates = errors = 0
        first_error = ""
        for c in clients:
            for at, text in c.frames[marks[c] :]:
                frame = json.loads(text)
                kind = frame.get("id")
                payload = frame.get("payload") or {}
                if frame.get("type") != "next" or payload.get("errors"):
                    if frame.get("type") not in ("ping", "pong"):
                        errors += 1
                        first_error = first_error or text[:300]
                    continue
                data = (payload.get("data") or {}).get(KINDS.get(kind, ""), None) or {}
                if kind == "m":
                    message_id = data.get("id")
                elif kind == "n":
                    message_id = (data.get("message") or {}).get("id")
                else:
                    message_id = (data.get("lastMessage") or {}).get("id")
                i = index_of_id.get(str(message_id))
                if i is None:
                    continue
                if kind == "i":
                    # An inbox row shows its conversation as it is now: a frame whose last
                    # message is i also tells of the earlier ones of the conversation.
                    shown = [j for j in sent_to.get(sent_in[i][0], ()) if seq_of[j] <= seq_of[i]]
                else:
                    shown = [i]
                new = [(c.user, kind, j) for j in shown if j >= warmup_count]
                new = [key for key in new if key not in received]
                if not new and i >= warmup_count:
                    duplicates += 1
                for key in new:
                    received[key] = at
        return received, duplicates, errors, first_error

    deadline = answers_done + args.drain_deadline
    last_count, last_change = -1, time.monotonic()
    stop_reason = "all delivered"
    while True:
        count = sum(len(c.frames) for c in clients)
        now = time.monotonic()
        if count != last_count:
            last_count, last_change = count, now
            received, *_ = parsed()
            if expected <= received.keys():
                break
        elif now - last_change >= args.quiet:
            stop_reason = f"nothing for {args.quiet:g} s"
            break
        if now >= deadline:
            stop_reason = "drain deadline"
            break
        await asyncio.sleep(0.25)
    ended = time.monotonic()
    cpu1 = (
        cpu_sum(server.server_pids),
        cpu_sum([server.embedded_pid]),
        time.process_time(),
        *machine_cpu_seconds(),
    )
    received, duplicates, errors, first_error = parsed()
    wall = max(ended - measured_from, 1e-9)
    ours = sum(cpu1[:3]) - sum(cpu0[:3])
    busy, all_cpu = cpu1[3] - cpu0[3], cpu1[4] - cpu0[4]

    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for (_user, kind, i), at in received.items():
        if (_user, kind, i) in expected:
            latencies[kind].append((at - answered_at[i]) * 1000)
    every = sorted(x for values in latencies.values() for x in values)
    for values in latencies.values():
        values.sort()
    send_ms.sort()
    by_kind = {KINDS[k]: sum(1 for key in expected if key[1] == k) for k in KINDS}
    got = {KINDS[k]: sum(1 for key in expected if key[1] == k and key in received) for k in KINDS}
    return Figures(
        workers=server.workers,
        started=started_utc,
        users=len(open_of),
        conversations=len(plans),
        connected=len(clients),
        connect_seconds=round(connect_seconds, 1),
        messages=len(measured),
        send_errors=len(send_errors),
        expected=by_kind,
        received=got,
        lost={k: by_kind[k] - got[k] for k in by_kind},
        duplicates=duplicates,
        error_frames=errors,
        first_error=first_error or (send_errors[0] if send_errors else ""),
        p50_ms=percentile(every, 50),
        p95_ms=percentile(every, 95),
        p99_ms=percentile(every, 99),
        max_ms=every[-1] if every else float("nan"),
        p99_by_kind_ms={KINDS[k]: percentile(v, 99) for k, v in latencies.items()},
        send_p50_ms=percentile(send_ms, 50),
        send_p99_ms=percentile(send_ms, 99),
        drain_seconds=round(ended - answers_done, 1),
        stop_reason=stop_reason,
        cpu_pct={
            "server": (cpu1[0] - cpu0[0]) / wall * 100,
            "embedded": (cpu1[1] - cpu0[1]) / wall * 100,
            "load": (cpu1[2] - cpu0[2]) / wall * 100,
            "others": max(busy - ours, 0.0) / wall * 100,
            "idle": (all_cpu - busy) / wall * 100,
        },
        load_average=[round(x, 2) for x in os.getloadavg()],
    )


# -- report --------------------------------------------------------------------------------------


def line(f: Figures) -> str:
    cpu = f.cpu_pct
    lost = sum(f.lost.values())
    kinds = ", ".join(f"{k} {f.received[k]}/{f.expected[k]}" for k in f.expected)
    return (
        f"workers {f.workers}: {f.messages} messages, deliveries {sum(f.received.values())}/"
        f"{sum(f.expected.values())} ({kinds}), "
        f"lost {lost}, duplicates {f.duplicates}, error frames {f.error_frames}; delivery p50 "
        f"{f.p50_ms:.1f} p95 {f.p95_ms:.1f} p99 {f.p99_ms:.1f} max {f.max_ms:.1f} ms (p99 "
        + ", ".join(f"{k} {v:.1f}" for k, v in f.p99_by_kind_ms.items())
        + f"); sendMessage p50 {f.send_p50_ms:.1f} p99 {f.send_p99_ms:.1f} ms, "
        f"{f.send_errors} errors; drain {f.drain_seconds:g} s ({f.stop_reason}); CPU server "
        f"{cpu['server']:.0f}% nx-27017 {cpu['embedded']:.0f}% load {cpu['load']:.0f}% others "
        f"{cpu['others']:.0f}% idle {cpu['idle']:.0f}%; load average {f.load_average}"
        + (f"\n    first error: {f.first_error}" if f.first_error else "")
    )


def report(runs: list[Figures], rate: float) -> None:
    print(f"\nfirm-day mix, {rate:g} msgs/s; median [min–max] over the runs:")  # noqa: RUF001
    for workers in sorted({f.workers for f in runs}):
        group = [f for f in runs if f.workers == workers]
        lost = [sum(f.lost.values()) for f in group]
        p99 = [f.p99_ms for f in group]
        ok = statistics.median(p99) <= 100 and max(lost) == 0
        print(
            f"  --workers {workers}: delivery p99 {median_range(p99)} ms, p50 "
            f"{median_range([f.p50_ms for f in group])} ms, lost {median_range(lost, '.0f')} of "
            f"{median_range([sum(f.expected.values()) for f in group], '.0f')}, sendMessage p99 "
            f"{median_range([f.send_p99_ms for f in group])} ms, CPU server "
            f"{median_range([f.cpu_pct['server'] for f in group], '.0f')}% nx-27017 "
            f"{median_range([f.cpu_pct['embedded'] for f in group], '.0f')}%; target p99 ≤ 100 "
            f"ms and nothing lost: {'met' if ok else 'missed'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured sending time")
    parser.add_argument("--warmup", type=float, default=10.0, help="sending before measuring")
    parser.add_argument("--quiet", type=float, default=15.0)
    parser.add_argument("--drain-deadline", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    raise_fd_limit(args.users * 2 + 512)
    print(
        f"{os.cpu_count()} CPUs, load average {[round(x, 2) for x in os.getloadavg()]}; "
        f"{args.users} users, {args.conversations} conversations, {args.rate:g} msgs/s",
        flush=True,
    )
    runs: list[Figures] = []
    for workers in [int(w) for w in args.workers.split(",")]:
        for index in range(1, args.runs + 1):
            print(f"workers {workers}, run {index}", flush=True)
            with running_server(
                workers=workers, prefix="bench-firm-day-", extra_env=SERVER_ENV
            ) as server:
                figures = asyncio.run(one_run(server, args))
            print(f"  {line(figures)}", flush=True)
            runs.append(figures)
    report(runs, args.rate)
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in runs], indent=2))


if __name__ == "__main__":
    main()
