"""Exactly-once email across real `messager serve` processes: two serves (one of them with
`--workers 2`) on one database, and a serve killed with SIGKILL in the middle of sending and
started again. The SMTP server is a real one on loopback (tests/smtp_sink.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp

from graphql_api.auth import TokenService
from graphql_api.database import connect, database_of
from graphql_api.directory.importer import import_directory
from graphql_api.embedded import free_port
from graphql_api.settings import Settings
from tests.cli_helpers import cli_env
from tests.conftest import JWT_SECRET
from tests.server_process import serving
from tests.smtp_sink import Sink, smtp_sink

CLIENTS = 24
WAIT = 90.0

CREATE = """
mutation($input: CreateConversationInput!) { createConversation(input: $input) { id } }
"""


def directory() -> dict[str, Any]:
    users = [
        {
            "key": "alice",
            "firm": "acme",
            "kind": "PRACTITIONER",
            "name": "Alice Roy",
            "email": "alice@acme.test",
            "favorites": ["bakery"],
        }
    ] + [
        {
            "key": f"client{i}",
            "firm": "acme",
            "kind": "CLIENT",
            "name": f"Client {i}",
            "email": f"client{i}@bakery.test",
            "companies": ["bakery"],
        }
        for i in range(CLIENTS)
    ]
    return {
        "firms": [{"key": "acme", "name": "Acme"}],
        "companies": [{"key": "bakery", "firm": "acme", "name": "Martin Bakery"}],
        "users": users,
    }


async def import_directory_at(uri: str) -> dict[str, Any]:
    client = connect(uri)
    try:
        return await import_directory(database_of(client), directory())
    finally:
        await client.close()


def email_env(tmp_path: Any, mongo_uri: str, sink: Sink, **extra: str) -> dict[str, str]:
    env = cli_env(tmp_path / "data", mongo_uri)
    env.update(
        {
            "MESSAGER_SMTP_URL": sink.url,
            "MESSAGER_EMAIL_DELAY_SECONDS": "1",
            "MESSAGER_EMAIL_POLL_SECONDS": "0.1",
            "MESSAGER_EMAIL_SENDERS": "3",
            "MESSAGER_MAIL_DOMAIN": "messager.test",
            **extra,
        }
    )
    return env


async def write_to_every_client(port: int, ids: dict[str, Any], subjects: list[str]) -> None:
    token = TokenService(Settings(jwt_secret=JWT_SECRET)).issue(ids["users"]["alice"])
    clients = [ids["users"][f"client{i}"] for i in range(CLIENTS)]
    async with aiohttp.ClientSession() as session:
        for subject in subjects:
            variables = {
                "input": {
                    "type": "COMPANY",
                    "companyId": ids["companies"]["bakery"],
                    "participantIds": clients,
                    "subject": subject,
                    "body": "<p>Please read</p>",
                }
            }
            async with session.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": CREATE, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            ) as answer:
                body = await answer.json()
            assert not body.get("errors"), body


async def sent_records(mongo_uri: str) -> int:
    client = connect(mongo_uri)
    try:
        return await database_of(client).email_outbox.count_documents({"state": "sent"})
    finally:
        await client.close()


async def until_all_sent(mongo_uri: str, sink: Sink, expected: int) -> None:
    """Wait until `expected` emails are recorded sent, and as many were received."""
    async with asyncio.timeout(WAIT):
        while True:  # the outbox is written by other processes: look again and again
            if await sent_records(mongo_uri) >= expected and len(sink.received) >= expected:
                return
            await asyncio.sleep(0.1)


async def test_two_serves_and_two_workers_on_one_database_send_each_email_once(tmp_path, mongo_uri):
    async with smtp_sink() as sink:
        env = email_env(tmp_path, mongo_uri, sink)
        ids = await import_directory_at(mongo_uri)
        port_a, port_b = free_port(), free_port()
        with (
            serving("--workers", "2", env=env, log_dir=tmp_path, name="a", port=port_a) as a,
            serving(env=env, log_dir=tmp_path, name="b", port=port_b) as b,
        ):
            await asyncio.gather(a.until_healthy(), b.until_healthy())
            assert f"Emails: sent through {sink.url}" in a.output()
            await write_to_every_client(port_a, ids, ["First", "Second"])
            await write_to_every_client(port_b, ids, ["Third"])
            # Each client gets one email per window its notifications fall in: at least one.
            await until_all_sent(mongo_uri, sink, CLIENTS)
            await asyncio.sleep(3)  # more windows may come due; let every process look again
            await until_all_sent(mongo_uri, sink, await sent_records(mongo_uri))

    counts = sink.message_id_counts()
    assert set(counts.values()) == {1}, counts
    assert len(sink.received) == await sent_records(mongo_uri)
    recipients = {str(m["To"]).split("<")[1].rstrip(">") for m in sink.received}
    assert recipients == {f"client{i}@bakery.test" for i in range(CLIENTS)}
    listed = sum(text.count("Please read") for text in (_text(m) for m in sink.received))
    assert listed == 3 * CLIENTS  # every notification in exactly one email


async def test_a_serve_killed_mid_send_and_restarted_neither_loses_nor_duplicates(
    tmp_path, mongo_uri
):
    async with smtp_sink() as sink:
        # Short leases so that the restarted serve takes over the killed one's claims quickly.
        env = email_env(
            tmp_path,
            mongo_uri,
            sink,
            MESSAGER_EMAIL_LEASE_SECONDS="3",
            MESSAGER_SMTP_TIMEOUT_SECONDS="1",
        )
        ids = await import_directory_at(mongo_uri)
        port = free_port()
        sink.hold_rcpt = asyncio.Event()  # every send stops at RCPT, mid-transaction
        with serving(env=env, log_dir=tmp_path, name="first", port=port) as first:
            await first.until_healthy()
            await write_to_every_client(port, ids, ["Before the crash"])
            async with asyncio.timeout(WAIT):
                await sink.rcpt_seen.wait()
            first.kill_all()  # SIGKILL, the serve and everything below it
        held, sink.hold_rcpt = sink.hold_rcpt, None
        held.set()  # the held sessions go on: their client is gone, nothing is delivered
        with contextlib.suppress(TimeoutError):
            await sink.wait_for(1, within=1)
        assert sink.received == []

        with serving(env=env, log_dir=tmp_path, name="second", port=port) as second:
            await second.until_healthy()
            await until_all_sent(mongo_uri, sink, CLIENTS)
            await asyncio.sleep(2)  # a late duplicate would show now
            assert len(sink.received) == CLIENTS

    counts = sink.message_id_counts()
    assert len(counts) == CLIENTS and set(counts.values()) == {1}, counts


def _text(message: Any) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""
