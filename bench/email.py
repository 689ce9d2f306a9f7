"""Email throughput: 10,000 notifications coming due at once for 2,000 users, delivered by the
real server (`messager serve`, `--workers 1` and `2`) to a local SMTP sink (aiosmtpd, in a
thread of this process). Prints emails/s, duplicates and misses, the median of 3 runs each.

    python -m bench.email [--users 2000] [--per-user 5] [--runs 3] [--workers 1 2]

Each run starts a fresh server (embedded nx-27017), imports the users with `messager import`,
writes their conversations, messages and notifications straight into the database (bulk
inserts; every notification created in one delay window in the near future), then waits for
that window's emails. Timing starts when the window's emails are due (the end of the window
after it) and ends when the sink has accepted the last one: emails/s = emails / that time.
Duplicates: emails beyond one per Message-ID; misses: users who got no email; incomplete: emails
that do not count that user's `--per-user` unread messages.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import re
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from pymongo import MongoClient

from bench.common import free_port, running_server

DELAY_SECONDS = 5
LEAD_WINDOWS = 3
_MESSAGE_ID = re.compile(rb"^Message-ID: *(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass
class SinkHandler:
    """Counts what it accepts: Message-IDs, recipients, and when."""

    message_ids: Counter[bytes] = field(default_factory=Counter)
    recipients: Counter[str] = field(default_factory=Counter)
    raw: list[tuple[str, bytes]] = field(default_factory=list)
    last_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:
        content: bytes = envelope.original_content
        found = _MESSAGE_ID.search(content)
        with self.lock:
            self.message_ids[found.group(1) if found else b"?"] += 1
            for rcpt in envelope.rcpt_tos:
                self.recipients[rcpt] += 1
                self.raw.append((rcpt, content))
            self.last_at = time.time()
        return "250 OK"

    @property
    def received(self) -> int:
        with self.lock:
            return sum(self.message_ids.values())


def directory(users: int) -> dict[str, object]:
    return {
        "firms": [{"key": "acme", "name": "Acme"}],
        "companies": [{"key": "bakery", "firm": "acme", "name": "Martin Bakery"}],
        "users": [
            {
                "key": "alice",
                "firm": "acme",
                "kind": "PRACTITIONER",
                "name": "Alice Roy",
                "email": "alice@acme.test",
            }
        ]
        + [
            {
                "key": f"u{i}",
                "firm": "acme",
                "kind": "CLIENT",
                "name": f"Client {i}",
                "email": f"u{i}@bench.test",
                "companies": ["bakery"],
            }
            for i in range(users)
        ],
    }


def write_notifications(uri: str, ids: dict[str, dict[str, str]], per_user: int) -> int:
    """One PRIVATE conversation per client with alice, `per_user` messages of alice in it and
    their notifications, all created in one delay window ahead; answers when they are due."""
    from datetime import UTC, datetime

    from graphql_api.conversations.models import (
        ConversationType,
        Message,
        new_conversation_doc,
        new_message_doc,
    )
    from graphql_api.ids import new_id
    from graphql_api.notifications.service import notification_docs

    delay_ms = DELAY_SECONDS * 1000
    firm = ids["firms"]["acme"]
    alice = ids["users"]["alice"]
    clients = [uid for key, uid in ids["users"].items() if key != "alice"]
    conversations, messages, notifications = [], [], []
    for n, client in enumerate(clients):
        conversation_id = new_id()
        at = datetime.now(UTC)
        message_ids = [new_id() for _ in range(per_user)]
        conversations.append(
            new_conversation_doc(
                conversation_id=conversation_id,
                firm_id=firm,
                kind=ConversationType.PRIVATE,
                company_id=None,
                subject=f"Documents for {n}",
                participant_ids=[alice, client],
                created_by=alice,
                created_at=at,
                first_message_id=message_ids[0],
                client_visible_by=[],
                client_message_id=None,
            )
        )
        for seq, message_id in enumerate(message_ids, start=1):
            doc = new_message_doc(
                message_id=message_id,
                firm_id=firm,
                conversation_id=conversation_id,
                seq=seq,
                author_id=alice,
                html=f"<p>Please read message {seq}</p>",
                text=f"Please read message {seq}",
                attachment_ids=[],
                created_at=at,
                recipients=[client],
                client_message_id=None,
            )
            doc["fanout"] = "done"
            messages.append(doc)
            notifications += notification_docs(Message.from_doc(doc), [client])
    client_db = MongoClient(uri)
    try:
        db = client_db.get_default_database("messager")
        for name, docs in (("conversations", conversations), ("messages", messages)):
            for i in range(0, len(docs), 1000):
                db[name].insert_many(docs[i : i + 1000], ordered=False)
        # The notifications come last, created in a window a few windows ahead (inserting them
        # takes seconds on the embedded server): they all come due at the same instant.
        window = time.time_ns() // 1_000_000 // delay_ms + LEAD_WINDOWS
        for n, doc in enumerate(notifications):
            doc["created_ms"] = window * delay_ms + n * delay_ms // len(notifications)
            doc["created_at"] = datetime.fromtimestamp(doc["created_ms"] / 1000, tz=UTC)
        for i in range(0, len(notifications), 1000):
            db.notifications.insert_many(notifications[i : i + 1000], ordered=False)
    finally:
        client_db.close()
    if time.time_ns() // 1_000_000 >= (window + 2) * delay_ms:
        raise SystemExit("writing took longer than a window: raise DELAY_SECONDS")
    return (window + 2) * delay_ms


def one_run(workers: int, users: int, per_user: int) -> dict[str, float]:
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        env = {
            "MESSAGER_SMTP_URL": f"smtp://127.0.0.1:{port}",
            "MESSAGER_EMAIL_DELAY_SECONDS": str(DELAY_SECONDS),
            "MESSAGER_EMAIL_POLL_SECONDS": "0.5",
            "MESSAGER_MAIL_DOMAIN": "bench.test",
            "MESSAGER_RATE_LIMITS": "false",
        }
        with running_server(workers=workers, prefix="bench-email-", extra_env=env) as server:
            ids = server.import_directory(directory(users))
            uri = json.loads((server.data_dir / "embedded.json").read_text())["uri"]
            due_ms = write_notifications(uri, ids, per_user)
            deadline = due_ms / 1000 + 600
            while handler.received < users and time.time() < deadline:
                time.sleep(0.1)
            time.sleep(2 * DELAY_SECONDS)  # a duplicate or a late email would arrive now
    finally:
        controller.stop()
    listed: Counter[str] = Counter()
    for rcpt, content in handler.raw:  # parsed after the run: the sink stays quick
        text = email.message_from_bytes(content, policy=email.policy.default)
        body = text.get_body(preferencelist=("plain",))
        summary = f"{per_user} unread message(s) in 1 conversation(s)"
        listed[rcpt] += per_user if body and summary in body.get_content() else 0
    expected = {f"u{i}@bench.test" for i in range(users)}
    got = set(handler.recipients)
    elapsed = handler.last_at - due_ms / 1000
    emails = handler.received
    return {
        "emails": emails,
        "seconds": elapsed,
        "emails_per_second": emails / elapsed if elapsed > 0 else 0.0,
        "duplicates": emails - len(handler.message_ids),
        "misses": len(expected - got),
        "incomplete": sum(1 for r in expected & got if listed[r] != per_user),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--per-user", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, help="also write the runs here")
    args = parser.parse_args()
    print(
        f"{args.users * args.per_user} notifications for {args.users} users, "
        f"median of {args.runs} runs"
    )
    results: dict[str, list[dict[str, float]]] = {}
    for workers in args.workers:
        runs = [one_run(workers, args.users, args.per_user) for _ in range(args.runs)]
        results[str(workers)] = runs
        for run in runs:
            print(f"  --workers {workers}: {json.dumps({k: round(v, 2) for k, v in run.items()})}")
        median = statistics.median(r["emails_per_second"] for r in runs)
        seconds = statistics.median(r["seconds"] for r in runs)
        print(
            f"--workers {workers}: {median:.0f} emails/s (median; {seconds:.1f} s from due to "
            f"the last email), duplicates {max(r['duplicates'] for r in runs):.0f}, "
            f"misses {max(r['misses'] for r in runs):.0f}, "
            f"incomplete {max(r['incomplete'] for r in runs):.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
