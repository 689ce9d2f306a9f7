"""The benchmark directory and its history, loaded fast into a running server:
`python -m bench.dataset [--quick] [--direct-directory] [--check]` loads it into a fresh server,
prints the timings, and with `--check` compares it with what the API itself writes.

One firm, `companies` companies, `users` users (a fifth practitioners, the rest clients of one or
two companies each), `conversations` conversations (COMPANY, CONFIDENTIAL and PRIVATE, each valid
under SPEC §4: participants eligible for their type, the creator one of them) and `messages`
messages. Three shapes are made for the measurements of `bench.suite`:

- the reader, a practitioner who may read exactly `reader_conversations` conversations (favorite
  companies chosen to come close, then participations in conversations he could not read);
- the history conversation, `history_messages` messages, which the reader may read;
- the fan-out conversation, `fanout_participants` participants (clients of its company and
  practitioners, not the reader), with a token each: a reply notifies all the others.

The directory goes in through `messager import` (`Server.import_directory`): 2,000 users take
about 3 s, so the real importer is used (`--direct-directory` inserts the same documents with
`insert_many` instead). Conversations, messages and read marks are always bulk-inserted
(`insert_many`, unordered, in batches) with the documents `graphql_api/conversations/service.py`
writes: the message of `models.new_message_doc` with its search fields (its notification
fan-out done), the conversation of
`create` with the counter (`message_count`) and the last-message fields its replies left, and
the read marks `_move_read_mark` leaves (each author's own last message; some participants have
read it all). The conversations go in before their messages, unlike the service: nothing reads
during the load. Notifications are not written: no measurement lists them, and 100,000 messages
would make about 300,000 of them (and as many change-stream events, below).

Every insert is also an event on each server process's change streams: the messages go in
chunks of `CHUNK`, and after each the load waits until every server process has delivered a
`Sentinel` written after it. Chunks, because nx-27017's change-event table has no index on the
collection name: a poll of an idle stream (users, notifications: every 50 ms in each process)
scans the whole backlog. With the product of 06:10 on 2026-11-25, which re-read every inserted
document, 100,000 messages inserted at once drained at about 30 events/s (8,666 of 102,000 after
5 minutes). The waiting is timed apart from the inserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import MongoClient, ReturnDocument
from pymongo.database import Database

from bench.common import Server, running_server, tcp_sockets
from graphql_api.conversations.models import (
    COMPANY_KINDS,
    Conversation,
    ConversationType,
    Message,
    new_message_doc,
)
from graphql_api.conversations.read_marks import read_mark_id
from graphql_api.conversations.validation import clean_body_now
from graphql_api.database import DEFAULT_DATABASE
from graphql_api.directory.models import User, UserKind
from graphql_api.ids import new_id
from graphql_api.notifications.service import notification_docs
from graphql_api.policy import can_read, is_client_visible
from graphql_api.search.index import search_fields

Doc = dict[str, Any]

BATCH = 2_000
"""Documents per `insert_many`: the embedded server takes about 7,700 messages/s whatever the
batch (1,000 and 5,000 measured the same); 2,000 messages are about 1 MB."""
CHUNK = 10_000
"""Messages inserted before waiting for every server process to work through their events."""
PRACTITIONER_SHARE = 0.2
SECOND_COMPANY_EVERY = 10
"""Every 10th client belongs to a second company too."""
CLIENT_FAVORITE_SHARE = 0.8
HISTORY_DAYS = 90
FANOUT_INITIAL_MESSAGES = 20
PROTOCOL = "graphql-transport-ws"
SENTINEL_MESSAGES = (
    "subscription SentinelMessages($id: ID!) { messageAdded(conversationId: $id) { bodyText } }"
)
SENTINEL_NOTIFICATIONS = "subscription SentinelNotifications { notificationAdded { id } }"
SENTINEL_RETRY_SECONDS = 5.0
"""A new sentinel every 5 s while waiting: one written before the subscriptions were in place
would never arrive."""
SENTINEL_DEADLINE_SECONDS = 1_800.0
OWNER_ATTEMPTS = 64
"""WebSocket connections tried until every server process holds one (the kernel spreads them)."""

BODIES = [
    "<p>Here is the <strong>VAT return</strong> for the quarter, please check it.</p>",
    "<p>Thanks, received.</p>",
    "<p>Could you send the bank statements for <em>March</em> and April?</p>",
    "<p>The payroll run is scheduled for Friday.</p><ul><li>12 employees</li>"
    "<li>2 leavers</li></ul>",
    "<p>See <a href='https://example.test/guide'>the filing guide</a> before signing.</p>",
    "<p>We need the invoices of the following suppliers:</p><ol><li>Bakery Supplies</li>"
    "<li>Flour &amp; Co</li><li>City Energy</li></ol>",
    "<blockquote>Is the deadline still the 15th?</blockquote><p>Yes, the 15th.</p>",
    "<p>I have booked the expense claims; two receipts are missing.</p>",
    "<p>Meeting notes:<br>1. annual accounts<br>2. dividend<br>3. next steps</p>",
    "<p>The tax office answered: the <u>refund</u> will arrive next month.</p>",
]
RARE_BODY = "<p>The kombucha supplier's invoice is attached for the quarter.</p>"
RARE_WORD = "kombucha"
RARE_SHARE = 0.0003
"""36 of the 100,000 messages say `RARE_WORD` (drawn apart from the rest: the other messages
stay as they were); `bench.suite`'s search phase looks for it, and for a common and an absent
word."""
COMMON_WORD = "payroll"
"""In one body of ten and one subject of ten: 22,379 of the 100,000 messages."""
ABSENT_WORD = "zanzibar"
SUBJECTS = [
    "VAT return",
    "Annual accounts",
    "Payroll",
    "Bank statements",
    "Expense claims",
    "Dividend",
    "Tax refund",
    "Onboarding",
    "Invoices",
    "Year-end closing",
]


@dataclass(frozen=True)
class Scale:
    companies: int = 200
    users: int = 2_000
    conversations: int = 5_000
    messages: int = 100_000
    reader_conversations: int = 2_000
    history_messages: int = 5_000
    fanout_participants: int = 32


FULL = Scale()
QUICK = Scale(
    companies=20,
    users=200,
    conversations=500,
    messages=10_000,
    reader_conversations=200,
    history_messages=1_000,
)


@dataclass
class Dataset:
    """What the measurements need of a loaded dataset."""

    scale: Scale
    firm_id: str
    reader_id: str
    reader_token: str
    reader_readable: int
    """Conversations the reader may read, counted with the policy's own `can_read`."""
    history_conversation_id: str
    history_messages: int
    fanout_conversation_id: str
    fanout_user_ids: list[str]
    fanout_tokens: list[str]
    """One token per participant of the fan-out conversation, in `fanout_user_ids` order."""
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per step: directory, messages, conversations, read_marks, drain, total."""
    sentinel: Sentinel | None = field(default=None, repr=False)
    """Open on the loop that loaded the dataset: `await sentinel.wait()` after writes."""


# -- the plan: who, which conversations, how many messages ---------------------------------------


@dataclass
class PlannedUser:
    key: str
    kind: UserKind
    name: str
    email: str
    companies: list[int]
    favorites: list[int]


@dataclass
class PlannedConversation:
    kind: ConversationType
    company: int | None
    creator: int
    others: list[int]
    messages: int = 1


@dataclass
class Plan:
    users: list[PlannedUser]
    conversations: list[PlannedConversation]
    reader: int
    history: int
    fanout: int
    sentinel: int
    sentinel_author: int
    sentinel_watcher: int


def plan_users(scale: Scale, rng: random.Random) -> list[PlannedUser]:
    # Enough practitioners for the fan-out conversation and, apart, the sentinel's two.
    practitioners = max(int(scale.users * PRACTITIONER_SHARE), scale.fanout_participants + 4)
    users = [
        PlannedUser(
            key=f"p{i:05d}",
            kind=UserKind.PRACTITIONER,
            name=f"Practitioner {i:05d}",
            email=f"p{i:05d}@bench.test",
            companies=[],
            favorites=sorted(rng.sample(range(scale.companies), rng.randint(0, 15))),
        )
        for i in range(practitioners)
    ]
    for j in range(scale.users - practitioners):
        companies = [j % scale.companies]
        if j % SECOND_COMPANY_EVERY == 0:
            companies.append((j + 7) % scale.companies)
        companies = list(dict.fromkeys(companies))
        users.append(
            PlannedUser(
                key=f"c{j:05d}",
                kind=UserKind.CLIENT,
                name=f"Client {j:05d}",
                email=f"c{j:05d}@client{companies[0]:04d}.test",
                companies=companies,
                favorites=[c for c in companies if rng.random() < CLIENT_FAVORITE_SHARE],
            )
        )
    return users


def plan(scale: Scale, seed: int = 7) -> Plan:
    """Users and conversations by index; ids come later (from the importer or `new_id`)."""
    rng = random.Random(seed)
    users = plan_users(scale, rng)
    practitioners = [i for i, u in enumerate(users) if u.kind is UserKind.PRACTITIONER]
    clients_of: dict[int, list[int]] = {c: [] for c in range(scale.companies)}
    for i, u in enumerate(users):
        for c in u.companies:
            clients_of[c].append(i)
    reader = practitioners[0]
    others_than_reader = [i for i in range(len(users)) if i != reader]
    history_company, fanout_company = scale.companies - 2, scale.companies - 1

    # 0: the history conversation, the reader with a colleague and a client of its company.
    conversations = [
        PlannedConversation(
            ConversationType.COMPANY,
            history_company,
            reader,
            [practitioners[1], *clients_of[history_company][:1]],
            scale.history_messages,
        )
    ]
    # 1: the fan-out conversation: its company's clients, then practitioners, never the reader.
    fanout_others = clients_of[fanout_company][: scale.fanout_participants - 1]
    fanout_others += practitioners[2 : 2 + scale.fanout_participants - 1 - len(fanout_others)]
    conversations.append(
        PlannedConversation(
            ConversationType.COMPANY,
            fanout_company,
            practitioners[1],
            fanout_others,
            FANOUT_INITIAL_MESSAGES,
        )
    )
    # 2: the sentinel's conversation (see `Sentinel`), between two practitioners nobody else
    # writes to during the measurements.
    author, watcher = practitioners[-2], practitioners[-1]
    conversations.append(PlannedConversation(ConversationType.PRIVATE, None, author, [watcher]))
    kinds = [ConversationType.COMPANY] * 2 + [
        ConversationType.CONFIDENTIAL,
        ConversationType.PRIVATE,
    ]
    while len(conversations) < scale.conversations:
        kind = rng.choice(kinds)
        if kind is ConversationType.PRIVATE:
            creator = rng.choice(others_than_reader)
            if users[creator].kind is UserKind.PRACTITIONER:
                pool = others_than_reader
            else:  # a client designates practitioners and clients sharing one of its companies
                shared = {i for c in users[creator].companies for i in clients_of[c]}
                pool = [p for p in practitioners if p != reader] + sorted(shared)
            company = None
        else:
            company = rng.randrange(scale.companies)
            clients = clients_of[company]
            use_client = bool(clients) and rng.random() < 0.3
            creator = rng.choice(clients) if use_client else rng.choice(practitioners[1:])
            pool = [p for p in practitioners if p != reader] + clients
        candidates = [i for i in pool if i != creator]
        others = rng.sample(candidates, min(len(candidates), rng.randint(1, 4)))
        conversations.append(PlannedConversation(kind, company, creator, others))

    # Messages: the two special conversations have theirs, the rest get at least one each and
    # the remainder by random weights (a few busy conversations, many quiet ones); the
    # sentinel's has one.
    rest = list(range(3, len(conversations)))
    spare = scale.messages - sum(c.messages for c in conversations)
    weights = [rng.expovariate(1.0) for _ in rest]
    for index, extra in Counter(rng.choices(rest, weights, k=max(spare, 0))).items():
        conversations[index].messages += extra

    _choose_reader_access(scale, users, conversations, reader, fanout_company, rng)
    return Plan(
        users,
        conversations,
        reader,
        history=0,
        fanout=1,
        sentinel=2,
        sentinel_author=author,
        sentinel_watcher=watcher,
    )


def _choose_reader_access(
    scale: Scale,
    users: list[PlannedUser],
    conversations: list[PlannedConversation],
    reader: int,
    fanout_company: int,
    rng: random.Random,
) -> None:
    """Favorites that bring the reader close to `reader_conversations` readable conversations,
    then participations (in conversations he may not read yet) for the rest."""
    target = min(scale.reader_conversations, len(conversations) - 1)
    readable = {i for i, c in enumerate(conversations) if reader == c.creator or reader in c.others}
    by_company: dict[int, set[int]] = {}
    for i, c in enumerate(conversations):
        if c.kind in COMPANY_KINDS and c.company is not None:
            by_company.setdefault(c.company, set()).add(i)
    favorites: list[int] = []
    companies = [c for c in range(scale.companies) if c != fanout_company]
    rng.shuffle(companies)
    for company in companies:
        gain = by_company.get(company, set()) - readable
        if len(readable) + len(gain) <= target:
            favorites.append(company)
            readable |= gain
    users[reader].favorites = sorted(favorites)
    # Top up: PRIVATE ones first (anyone may designate a practitioner), then company ones.
    missing = target - len(readable)
    order = [i for i, c in enumerate(conversations) if c.kind is ConversationType.PRIVATE]
    order += [i for i, c in enumerate(conversations) if c.kind is not ConversationType.PRIVATE]
    for i in order:
        if missing <= 0:
            break
        if i not in readable and i not in (1, 2):  # never the fan-out or sentinel ones
            conversations[i].others.append(reader)
            readable.add(i)
            missing -= 1


# -- the directory -------------------------------------------------------------------------------


def directory_file(p: Plan, scale: Scale) -> dict[str, list[dict[str, object]]]:
    """The plan's directory as a `messager import` file."""
    company_key = [f"co{c:04d}" for c in range(scale.companies)]
    return {
        "firms": [{"key": "bench", "name": "Bench Accounting"}],
        "companies": [
            {"key": key, "firm": "bench", "name": f"Company {c:04d} Ltd"}
            for c, key in enumerate(company_key)
        ],
        "users": [
            {
                "key": u.key,
                "firm": "bench",
                "kind": u.kind.value,
                "name": u.name,
                "email": u.email,
                "companies": [company_key[c] for c in u.companies],
                "favorites": [company_key[c] for c in u.favorites],
            }
            for u in p.users
        ],
    }


def insert_directory(db: Database[Doc], directory: dict[str, list[dict[str, Any]]]) -> dict:
    """The importer's documents (graphql_api/directory/importer.py), inserted at once; answers
    the id maps `messager import` prints. Only for a fresh database: no upsert by key."""
    firm_id = new_id()
    companies = {c["key"]: new_id() for c in directory["companies"]}
    users = {u["key"]: new_id() for u in directory["users"]}
    db.firms.insert_one({"_id": firm_id, "key": "bench", "name": directory["firms"][0]["name"]})
    _insert(
        db,
        "companies",
        [
            {
                "_id": companies[c["key"]],
                "firm_id": firm_id,
                "key": c["key"],
                "name": c["name"],
                "name_lower": c["name"].casefold(),
            }
            for c in directory["companies"]
        ],
    )
    _insert(
        db,
        "users",
        [
            {
                "_id": users[u["key"]],
                "firm_id": firm_id,
                "key": u["key"],
                "kind": u["kind"],
                "name": u["name"],
                "name_lower": u["name"].casefold(),
                "email": u["email"],
                "company_ids": [companies[k] for k in u["companies"]],
                "favorite_company_ids": [companies[k] for k in u["favorites"]],
            }
            for u in directory["users"]
        ],
    )
    return {"users": users, "companies": companies, "firms": {"bench": firm_id}}


# -- conversations, messages, read marks ---------------------------------------------------------


def _insert(db: Database[Doc], collection: str, docs: list[Doc]) -> None:
    for start in range(0, len(docs), BATCH):
        db[collection].insert_many(docs[start : start + BATCH], ordered=False)


def _bodies() -> list[tuple[str, str]]:
    """(HTML, text) pairs through the product's own sanitizer, as `sendMessage` stores them."""
    return [clean_body_now(body, 0) for body in BODIES]


def _at(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


@dataclass
class Built:
    conversations: list[Doc]
    messages: list[Doc]
    read_marks: list[Doc]


def build_documents(
    p: Plan, user_ids: list[str], company_ids: list[str], firm_id: str, seed: int = 11
) -> tuple[Built, list[User]]:
    """Every conversation, message and read mark of the plan, shaped as the service writes them."""
    rng = random.Random(seed)
    rare = random.Random(seed + 1)
    bodies = _bodies()
    rare_body = clean_body_now(RARE_BODY, 0)
    users = [
        User(
            id=user_ids[i],
            firm_id=firm_id,
            key=u.key,
            kind=u.kind,
            name=u.name,
            email=u.email,
            company_ids=frozenset(company_ids[c] for c in u.companies),
            favorite_company_ids=frozenset(company_ids[c] for c in u.favorites),
        )
        for i, u in enumerate(p.users)
    ]
    now_ms = int(time.time() * 1000) - 60_000  # everything at least a minute old
    window_ms = HISTORY_DAYS * 86_400_000
    built = Built([], [], [])
    for index, c in enumerate(p.conversations):
        creator = users[c.creator]
        participants = [creator, *(users[i] for i in c.others)]
        company_id = company_ids[c.company] if c.company is not None else None
        start = now_ms - rng.randrange(window_ms)
        times = sorted(rng.randint(start, now_ms) for _ in range(c.messages))
        marks: dict[str, int] = {}
        conversation_id = new_id()
        last_id = ""
        first_message = len(built.messages)
        for seq, millis in enumerate(times, 1):
            author = creator if seq == 1 else rng.choice(participants)
            html, text = bodies[rng.randrange(len(bodies))]
            if rare.random() < RARE_SHARE:
                html, text = rare_body
            last_id = new_id()
            doc = new_message_doc(
                message_id=last_id,
                firm_id=firm_id,
                conversation_id=conversation_id,
                seq=seq,
                author_id=author.id,
                html=html,
                text=text,
                attachment_ids=[],
                created_at=_at(millis),
                recipients=[u.id for u in participants if u.id != author.id],
                # Replies carry the client's idempotency key, as the web client sends one; the
                # first message's key belongs to the conversation (service.create).
                client_message_id=None if seq == 1 else uuid.uuid4().hex,
            )
            doc["fanout"] = "done"  # Notifications.fan_out finished (notifications not written)
            built.messages.append(doc)
            marks[author.id] = seq  # _move_read_mark after each of the author's messages
        for u in participants:  # some participants opened the conversation since
            if rng.random() < 0.6:
                marks[u.id] = c.messages
        if c.kind in COMPANY_KINDS and company_id in users[p.reader].favorite_company_ids:
            if rng.random() < 0.5:  # the reader opened half of his favorites' conversations
                marks[users[p.reader].id] = max(1, c.messages - rng.randint(0, 3))
        subject = f"{rng.choice(SUBJECTS)} {index:05d}"
        doc = {
            "_id": conversation_id,
            "firm_id": firm_id,
            "type": c.kind.value,
            "company_id": company_id,
            "subject": subject,
            "participant_ids": [u.id for u in participants],
            "created_by": creator.id,
            "created_at": _at(times[0]),
            "last_activity_ms": times[-1],
            "last_message_id": last_id,
            "message_count": c.messages,
            "client_visible": is_client_visible(c.kind, company_id, participants),
        }
        built.conversations.append(doc)
        conversation = Conversation.from_doc(doc)
        for message in built.messages[first_message:]:  # as the service writes them
            message.update(search_fields(conversation, message["body_text"]))
        built.read_marks += [
            {
                "_id": read_mark_id(user_id, conversation_id),
                "seq": seq,
                "user_id": user_id,
                "conversation_id": conversation_id,
            }
            for user_id, seq in marks.items()
        ]
    return built, users


# -- loading -------------------------------------------------------------------------------------


def database(server: Server) -> Database[Doc]:
    """The server's own database: its embedded nx-27017 (address in `embedded.json`), and the
    database name `serve` uses when MONGODB_URI names none."""
    uri = json.loads((server.data_dir / "embedded.json").read_text())["uri"]
    return MongoClient(uri, tz_aware=True)[DEFAULT_DATABASE]


def _owner(server: Server, client_port: int) -> int | None:
    """The server process holding the accepted end of our loopback connection (/proc)."""
    inodes = {
        f"socket:[{inode}]"
        for local, remote, _, inode in tcp_sockets()
        if local == server.port and remote == client_port
    }
    for pid in server.server_pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
    return None


@dataclass(eq=False)
class _Watch:
    """One sentinel WebSocket, held by server process `pid`."""

    ws: aiohttp.ClientWebSocketResponse
    pid: int
    messages: int = -1
    """The highest sentinel received through `messageAdded`."""
    notifications: int = -1
    """The highest sentinel received through `notificationAdded`."""
    task: asyncio.Task[None] | None = None


class Sentinel:
    """Tells when every server process has worked through the change-stream events of the writes
    made so far (messages and notifications; conversations are written before the messages).

    A direct write reaches a server process only through its change streams, which follow write
    order per collection, so a bulk load or a burst of notifications leaves each process a
    backlog. CPU use is no reliable sign that it is over: idle, nx-27017 still answers every
    stream's polls, from 0.06 of a core (one process, small dataset) to 0.32 (two processes,
    full dataset). So one WebSocket per server process subscribes to `messageAdded` of a
    conversation of its own and to `notificationAdded` of its watcher; `wait` writes a reply
    there the way the service does (counter, message, the watcher's notification, the author's
    read mark) and waits until every process delivered both: its streams have then passed
    everything written before.
    """

    def __init__(
        self, server: Server, conversation_id: str, author: User, watcher: User, token: str
    ) -> None:
        self.server = server
        self.conversation_id = conversation_id
        self.author = author
        self.watcher = watcher
        self.token = token
        self.written = 0
        self.failure = ""
        self.watches: list[_Watch] = []
        self._notification_index: dict[str, int] = {}
        self._db = database(server)
        self._record: Conversation | None = None
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession()
        wanted = set(self.server.server_pids)
        for _ in range(OWNER_ATTEMPTS):
            if not wanted:
                break
            ws = await self._session.ws_connect(self.server.ws_url, protocols=[PROTOCOL])
            await ws.send_json(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}}
            )
            ack = await ws.receive(timeout=30)
            if ack.type is not aiohttp.WSMsgType.TEXT or '"connection_ack"' not in ack.data:
                raise SystemExit(f"sentinel: no connection_ack: {ack.data!r}")
            pid = _owner(self.server, ws.get_extra_info("sockname")[1])
            if pid not in wanted:
                await ws.close()
                continue
            wanted.discard(pid)
            for key, query, variables in (
                ("m", SENTINEL_MESSAGES, {"id": self.conversation_id}),
                ("n", SENTINEL_NOTIFICATIONS, {}),
            ):
                await ws.send_json(
                    {
                        "id": key,
                        "type": "subscribe",
                        "payload": {"query": query, "variables": variables},
                    }
                )
            watch = _Watch(ws, pid)
            watch.task = asyncio.get_running_loop().create_task(self._read(watch))
            self.watches.append(watch)
        if wanted:
            raise SystemExit(f"sentinel: no WebSocket reached server processes {sorted(wanted)}")

    async def _read(self, watch: _Watch) -> None:
        while True:
            msg = await watch.ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                self.failure = self.failure or f"sentinel WebSocket of {watch.pid} closed"
                return
            frame = json.loads(msg.data)
            if frame.get("type") == "ping":
                await watch.ws.send_json({"type": "pong"})
                continue
            payload = frame.get("payload") or {}
            if frame.get("type") != "next" or payload.get("errors"):
                self.failure = self.failure or f"sentinel got {msg.data[:500]}"
                continue
            data = payload.get("data") or {}
            if frame.get("id") == "m":
                index = int(str(data["messageAdded"]["bodyText"]).split()[-1])
                watch.messages = max(watch.messages, index)
            elif frame.get("id") == "n":
                index = self._notification_index.get(data["notificationAdded"]["id"], -1)
                watch.notifications = max(watch.notifications, index)

    def _write(self) -> int:
        """A reply from the author, as `Conversations._store_reply` and `fan_out` write it."""
        index = self.written
        self.written += 1
        db, conversation_id = self._db, self.conversation_id
        millis = int(time.time() * 1000)
        message_id = new_id()
        updated = db.conversations.find_one_and_update(
            {"_id": conversation_id},
            {
                "$inc": {"message_count": 1},
                "$set": {"last_activity_ms": millis, "last_message_id": message_id},
            },
            projection={"message_count": 1, "company_id": 1},
            return_document=ReturnDocument.AFTER,
        )
        seq = int(updated["message_count"])
        html, text = clean_body_now(f"<p>sentinel {index}</p>", 0)
        doc = new_message_doc(
            message_id=message_id,
            firm_id=self.author.firm_id,
            conversation_id=conversation_id,
            seq=seq,
            author_id=self.author.id,
            html=html,
            text=text,
            attachment_ids=[],
            created_at=_at(millis),
            recipients=[self.watcher.id],
            client_message_id=None,
        )
        doc.update(search_fields(self._conversation(), text))
        db.messages.insert_one(doc)
        notifications = notification_docs(
            Message.from_doc(doc), [self.watcher.id], updated.get("company_id")
        )
        self._notification_index[notifications[0]["_id"]] = index
        db.notifications.insert_many(notifications, ordered=False)
        db.messages.update_one({"_id": message_id}, {"$set": {"fanout": "done"}})
        db.read_marks.update_one(
            {"_id": read_mark_id(self.author.id, conversation_id), "seq": {"$lt": seq}},
            {
                "$set": {
                    "seq": seq,
                    "user_id": self.author.id,
                    "conversation_id": conversation_id,
                }
            },
            upsert=True,
        )
        return index

    def _conversation(self) -> Conversation:
        if self._record is None:
            self._record = Conversation.from_doc(
                self._db.conversations.find_one({"_id": self.conversation_id})
            )
        return self._record

    async def wait(self, deadline: float = SENTINEL_DEADLINE_SECONDS) -> float:
        """Write a sentinel and wait until every server process delivered it; the seconds."""
        started = last = time.monotonic()
        first = await asyncio.to_thread(self._write)
        while True:
            if all(w.messages >= first and w.notifications >= first for w in self.watches):
                return time.monotonic() - started
            if self.failure:
                raise SystemExit(self.failure)
            now = time.monotonic()
            if now - started > deadline:
                raise SystemExit(f"sentinel: not delivered by every process in {deadline:.0f} s")
            if now - last >= SENTINEL_RETRY_SECONDS:
                await asyncio.to_thread(self._write)
                last = now
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for watch in self.watches:
            if watch.task is not None:
                watch.task.cancel()
            with contextlib.suppress(Exception):
                await watch.ws.close()
        if self._session is not None:
            await self._session.close()
        self._db.client.close()


async def load(
    server: Server, scale: Scale = FULL, *, use_importer: bool = True, verbose: bool = True
) -> Dataset:
    """Generate the dataset and load it into a fresh server's database, waiting after each
    chunk until every server process has worked through its change-stream events; answer the
    dataset with its sentinel open on the running loop (close it with `sentinel.close()`)."""
    say = print if verbose else (lambda *_a, **_k: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    p = plan(scale)
    timings["plan"] = time.perf_counter() - started
    db = database(server)
    directory = directory_file(p, scale)

    step = time.perf_counter()
    if use_importer:
        ids = await asyncio.to_thread(server.import_directory, directory)
    else:
        ids = insert_directory(db, directory)
    timings["directory"] = time.perf_counter() - step
    how = "messager import" if use_importer else "insert_many"
    say(
        f"  directory: {len(p.users)} users, {scale.companies} companies in "
        f"{timings['directory']:.1f} s ({how})",
        flush=True,
    )
    firm_id = ids["firms"]["bench"]
    user_ids = [ids["users"][u.key] for u in p.users]
    company_ids = [ids["companies"][c["key"]] for c in directory["companies"]]

    step = time.perf_counter()
    built, users = build_documents(p, user_ids, company_ids, firm_id)
    timings["build"] = time.perf_counter() - step

    # The sentinel's conversation first (message, then conversation, the service's order).
    sentinel_doc = built.conversations[p.sentinel]
    own = [m for m in built.messages if m["conversation_id"] == sentinel_doc["_id"]]
    _insert(db, "messages", own)
    _insert(db, "conversations", [sentinel_doc])
    mine = [m for m in built.read_marks if m["conversation_id"] == sentinel_doc["_id"]]
    _insert(db, "read_marks", mine)
    watcher = users[p.sentinel_watcher]
    sentinel = Sentinel(
        server,
        sentinel_doc["_id"],
        users[p.sentinel_author],
        watcher,
        server.tokens([watcher.id])[0],
    )
    await sentinel.open()
    try:
        timings["drain"] = await sentinel.wait()
        # The conversations before their messages, unlike the service: nothing reads during
        # the load, and the sentinel then proves the (smaller) conversation backlog gone too.
        messages = [m for m in built.messages if m["conversation_id"] != sentinel_doc["_id"]]
        for name, docs, chunk in (
            ("conversations", [c for c in built.conversations if c is not sentinel_doc], None),
            ("read_marks", [m for m in built.read_marks if m not in mine], None),
            ("messages", messages, CHUNK),
        ):
            timings[name] = 0.0
            for start in range(0, len(docs), chunk or len(docs) or 1):
                step = time.perf_counter()
                # In a thread: the loop keeps answering the sentinel WebSockets' pings (a chunk
                # of messages takes longer than the server's heartbeat with the text index).
                await asyncio.to_thread(
                    _insert, db, name, docs[start : start + (chunk or len(docs))]
                )
                timings[name] += time.perf_counter() - step
                if chunk:
                    timings["drain"] += await sentinel.wait()
            say(
                f"  {name}: {len(docs)} in {timings[name]:.1f} s "
                f"({len(docs) / max(timings[name], 1e-9):.0f} docs/s)",
                flush=True,
            )
    except BaseException:
        await sentinel.close()
        raise
    finally:
        db.client.close()
    timings["total"] = time.perf_counter() - started
    say(
        f"  every server process worked through the load's change-stream events after "
        f"{timings['drain']:.1f} s of waiting in all; total {timings['total']:.1f} s",
        flush=True,
    )

    reader = users[p.reader]
    readable = sum(can_read(reader, Conversation.from_doc(d)) for d in built.conversations)
    fanout = built.conversations[p.fanout]
    fanout_users = list(fanout["participant_ids"])
    return Dataset(
        scale=scale,
        firm_id=firm_id,
        reader_id=reader.id,
        reader_token=server.tokens([reader.id])[0],
        reader_readable=readable,
        history_conversation_id=built.conversations[p.history]["_id"],
        history_messages=built.conversations[p.history]["message_count"],
        fanout_conversation_id=fanout["_id"],
        fanout_user_ids=fanout_users,
        fanout_tokens=server.tokens(fanout_users),
        counts={
            "users": len(p.users),
            "companies": scale.companies,
            "conversations": len(built.conversations),
            "messages": len(built.messages),
            "read_marks": len(built.read_marks),
            "kinds": dict(Counter(d["type"] for d in built.conversations)),
        },
        timings=timings,
        sentinel=sentinel,
    )


# -- checking against the API --------------------------------------------------------------------


def _graphql(server: Server, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(
        f"{server.base_url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    if answer.get("errors"):
        raise SystemExit(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


INBOX_PAGE = (
    "query Inbox($after: String) { conversations(first: 100, after: $after) "
    "{ edges { node { id } } pageInfo { hasNextPage endCursor } } }"
)
CREATE = (
    "mutation Create($input: CreateConversationInput!) { createConversation(input: $input) { id } }"
)
SEND = "mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { id } }"


def check(server: Server, data: Dataset) -> None:
    """Compare the loaded documents with ones the API writes, and count the reader's inbox."""
    db = database(server)
    token = data.fanout_tokens[-1]  # a practitioner: may create any conversation
    company = db.conversations.find_one({"_id": data.fanout_conversation_id})["company_id"]
    created = _graphql(
        server,
        token,
        CREATE,
        {
            "input": {
                "type": "COMPANY",
                "companyId": company,
                "participantIds": data.fanout_user_ids[:2],
                "subject": "Check",
                "body": "<p>first</p>",
            }
        },
    )["createConversation"]["id"]
    _graphql(
        server,
        token,
        SEND,
        {"input": {"conversationId": created, "body": "<p>r</p>", "clientMessageId": "chk"}},
    )
    api_conversation = db.conversations.find_one({"_id": created})
    ours = db.conversations.find_one({"_id": data.history_conversation_id})
    api_message = db.messages.find_one({"conversation_id": created, "seq": 2})
    our_message = db.messages.find_one({"conversation_id": data.history_conversation_id, "seq": 2})
    for what, api, loaded in (
        ("conversation", api_conversation, ours),
        ("message", api_message, our_message),
    ):
        shape_api = {k: type(v).__name__ for k, v in api.items()}
        shape_ours = {k: type(v).__name__ for k, v in loaded.items()}
        same = "same" if shape_api == shape_ours else f"DIFFERENT: {shape_api} vs {shape_ours}"
        print(f"  {what} document shape: {same}")
    db.client.close()
    seen, after = 0, None
    while True:
        page = _graphql(server, data.reader_token, INBOX_PAGE, {"after": after})["conversations"]
        seen += len(page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    print(f"  the reader's inbox lists {seen} conversations (policy count {data.reader_readable})")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dataset", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the small scale of `--quick`")
    parser.add_argument(
        "--direct-directory", action="store_true", help="insert_many instead of messager import"
    )
    parser.add_argument("--check", action="store_true", help="compare with the API's documents")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the dataset's figures here")
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    with running_server(
        workers=args.workers, prefix="bench-dataset-", extra_env={"MESSAGER_RATE_LIMITS": "false"}
    ) as server:

        async def loaded() -> Dataset:
            data = await load(server, scale, use_importer=not args.direct_directory)
            if data.sentinel is not None:
                await data.sentinel.close()
            return data

        data = asyncio.run(loaded())
        print(
            f"  {data.counts}; reader may read {data.reader_readable}; history "
            f"{data.history_messages} messages; fan-out {len(data.fanout_user_ids)} participants"
        )
        rate = data.counts["messages"] / data.timings["messages"]
        print(f"  messages inserted at {rate:.0f}/s")
        if args.check:
            check(server, data)
        if args.json:
            args.json.write_text(
                json.dumps({"counts": data.counts, "timings": data.timings}, indent=2)
            )


if __name__ == "__main__":
    main()
