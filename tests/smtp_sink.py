"""A real SMTP server on loopback (aiosmtpd) that keeps what it accepts, for the email tests.

It runs in the test's event loop. Tests can make it answer a DATA with a chosen reply instead of
accepting (`data_replies`: "451 ..." for a temporary failure, "550 ..." for a permanent one), or
hold every RCPT until released (`hold_rcpt`), to kill a sender in the middle of a send. Like a
real MTA, it delivers a message only when it answers 250 to its DATA.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP

from graphql_api.embedded import free_port

WAIT_SECONDS = 60.0


@dataclass
class Sink:
    port: int = 0
    received: list[EmailMessage] = field(default_factory=list)
    data_replies: dict[str, list[str]] = field(default_factory=dict)
    """Replies to give, in order, to the DATA of mail for a recipient ("*": any)."""
    hold_rcpt: asyncio.Event | None = None
    rcpt_seen: asyncio.Event = field(default_factory=asyncio.Event)
    refused: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:
        self.rcpt_seen.set()
        if self.hold_rcpt is not None:
            await self.hold_rcpt.wait()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        for key in (*envelope.rcpt_tos, "*"):
            if self.data_replies.get(key):
                self.refused += 1
                return self.data_replies[key].pop(0)
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        self.arrived.set()
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.received if address in str(m["To"])]

    def message_id_counts(self) -> Counter[str]:
        return Counter(str(m["Message-ID"]) for m in self.received)

    async def wait_for(self, count: int, within: float = WAIT_SECONDS) -> list[EmailMessage]:
        """Wait (with a deadline) until at least `count` emails were accepted."""
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received


@contextlib.asynccontextmanager
async def smtp_sink(port: int | None = None) -> AsyncIterator[Sink]:
    sink = Sink(port=port or free_port())
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.test"), "127.0.0.1", sink.port
    )
    try:
        yield sink
    finally:
        if sink.hold_rcpt is not None:
            sink.hold_rcpt.set()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()
