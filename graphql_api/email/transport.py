"""Delivering an email: over SMTP with aiosmtplib, or into a Maildir when no server is set.

`MESSAGER_SMTP_URL`: `smtp://user:password@host:587` uses STARTTLS whenever the server offers it
(aiosmtplib's default), `smtps://host:465` is TLS from the first byte; user and password are
percent-decoded. A connection is kept open and reused for the next emails, and opened again
after a failure.

Outcomes, as the outbox needs them: SENT; TEMPORARY (a 4xx answer, a refused or broken
connection, a time-out: retried with backoff); PERMANENT (a 5xx answer: recorded, not retried).
"""

from __future__ import annotations

import asyncio
import enum
import mailbox
import ssl
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

MAILDIR_NAME = "mail"


class Outcome(enum.Enum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Delivery:
    outcome: Outcome
    detail: str = ""


class Transport(Protocol):
    description: str

    async def send(self, message: Message, sender: str, recipient: str) -> Delivery: ...

    async def close(self) -> None: ...


def _by_code(code: int, detail: str) -> Delivery:
    outcome = Outcome.PERMANENT if 500 <= code < 600 else Outcome.TEMPORARY
    return Delivery(outcome, f"{code} {detail}".strip())


@dataclass(frozen=True, slots=True)
class SmtpServer:
    hostname: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("MESSAGER_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
        use_tls = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if use_tls else 25),
            use_tls=use_tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    @property
    def description(self) -> str:
        """The address without credentials, for logs and the start-up banner."""
        scheme = "smtps" if self.use_tls else "smtp"
        return f"{scheme}://{self.hostname}:{self.port}"


class SmtpTransport:
    """One SMTP connection, reused for consecutive emails."""

    def __init__(self, server: SmtpServer, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        self.description = server.description
        self._client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = aiosmtplib.SMTP(
            hostname=self.server.hostname,
            port=self.server.port,
            username=self.server.username,
            password=self.server.password,
            use_tls=self.server.use_tls,
            timeout=self.timeout,
        )
        await client.connect()
        self._client = client
        return client

    async def send(self, message: Message, sender: str, recipient: str) -> Delivery:
        try:
            client = await self._connected()
            await client.send_message(message, sender=sender, recipients=[recipient])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return _by_code(refused.code, refused.message)
        except aiosmtplib.SMTPResponseException as exc:
            await self._drop()
            return _by_code(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
            await self._drop()
            return Delivery(Outcome.TEMPORARY, f"{type(exc).__name__}: {exc}")
        return Delivery(Outcome.SENT)

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await asyncio.wait_for(client.quit(), 5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


class MaildirTransport:
    """Emails written to a Maildir (`DATA_DIR/mail`): what would be sent, for development."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"Maildir {path}"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._maildir = mailbox.Maildir(path, create=True)

    async def send(self, message: Message, sender: str, recipient: str) -> Delivery:
        try:
            await asyncio.to_thread(self._maildir.add, message)
        except OSError as exc:
            return Delivery(Outcome.TEMPORARY, f"cannot write to {self.path}: {exc}")
        return Delivery(Outcome.SENT)

    async def close(self) -> None:
        return None


def maildir_path(data_dir: Path) -> Path:
    return data_dir / MAILDIR_NAME


def transport_description(smtp_url: str | None, data_dir: Path) -> str:
    """Where emails go, as the start-up banner says it."""
    if smtp_url:
        return f"sent through {SmtpServer.parse(smtp_url).description}"
    path = maildir_path(data_dir).resolve()
    return f"written to the Maildir {path} (set MESSAGER_SMTP_URL to send them)"


def make_transport(smtp_url: str | None, data_dir: Path, timeout: float) -> Transport:
    if smtp_url:
        return SmtpTransport(SmtpServer.parse(smtp_url), timeout)
    return MaildirTransport(maildir_path(data_dir))
