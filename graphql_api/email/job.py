"""The email job of each serve process: plan the windows that came due, then send.

Every process runs it (a `--workers N` serve runs N, several serves on one database run one
each): planning is idempotent and sending claims with a lease (`outbox`), so together they send
each email once. `email_senders` workers per process each hold one SMTP connection and drain
due emails in small batches; the job then sleeps `email_poll_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from email.utils import parseaddr

from aiohttp import web
from pymongo.errors import PyMongoError

from graphql_api import clock
from graphql_api.database import Db, connect, database_of
from graphql_api.email.compose import compose
from graphql_api.email.content import DigestBuilder
from graphql_api.email.outbox import LeasedEmail, Outbox
from graphql_api.email.preferences import EmailFrequency
from graphql_api.email.signing import EmailSigner
from graphql_api.email.transport import Outcome, Transport, make_transport
from graphql_api.keys import SERVICES
from graphql_api.settings import Settings
from graphql_api.shutdown import bounded, cancel_and_wait

log = logging.getLogger(__name__)

BATCH_SIZE = 20
PURGE_INTERVAL_MS = 3600 * 1000


class EmailSender:
    """Plans and sends the emails of one database through one kind of transport."""

    def __init__(self, db: Db, settings: Settings, signer: EmailSigner) -> None:
        self.settings = settings
        self.signer = signer
        self.outbox = Outbox(db, settings)
        self.builder = DigestBuilder(
            db,
            link_for=settings.conversation_link,
            reply_address_for=lambda user_id, conversation_id: signer.reply_address(
                user_id, conversation_id, settings.mail_domain
            ),
        )
        smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
        self.transports: list[Transport] = [
            make_transport(smtp_url, settings.data_dir, settings.smtp_timeout_seconds)
            for _ in range(settings.email_senders)
        ]
        self.envelope_sender = parseaddr(settings.sender_address)[1]
        self._purged_ms = 0

    async def run_once(self) -> int:
        """Plan, then send every email due now; answers how many were sent."""
        await self.outbox.plan()
        counts = await asyncio.gather(*(self._drain(t) for t in self.transports))
        now = clock.now_ms()
        if now - self._purged_ms > PURGE_INTERVAL_MS:
            self._purged_ms = now
            await self.outbox.purge_old(now)
        return sum(counts)

    async def close(self) -> None:
        for transport in self.transports:
            await transport.close()

    async def _drain(self, transport: Transport) -> int:
        sent = 0
        while emails := await self.outbox.claim(BATCH_SIZE):
            sent += await self._send_batch(transport, emails)
        return sent

    async def _send_batch(self, transport: Transport, emails: list[LeasedEmail]) -> int:
        recipients = await self.builder.recipients(emails)
        digests = await self.builder.build(emails, recipients)
        emailed: list[str] = []
        sent = 0
        margin_ms = int(self.settings.smtp_timeout_seconds * 2000)
        for index, email in enumerate(emails):
            if clock.now_ms() + margin_ms > email.lease_until_ms:
                # Sending now could outlast the lease and another process would send it too.
                await self.outbox.release(emails[index:])
                break
            recipient = recipients.get(email.user_id)
            digest = digests.get(email.id)
            if recipient is None:
                await self.outbox.record_skipped(email, "user removed")
                continue
            if recipient.settings.email is not email.kind:
                reason = (
                    "email is OFF"
                    if recipient.settings.email is EmailFrequency.OFF
                    else f"email is now {recipient.settings.email.value}"
                )
                await self.outbox.record_skipped(email, reason)
                continue
            if digest is None or not digest.conversations:
                await self.outbox.record_skipped(email, "nothing unread to tell")
                continue
            message_id = f"<{email.key}.{email.user_id}@{self.settings.mail_domain}>"
            message = compose(
                digest,
                message_id=message_id,
                sender=self.settings.sender_address,
                unsubscribe_url=self.unsubscribe_url(email.id),
            )
            delivery = await transport.send(message, self.envelope_sender, recipient.user.email)
            if delivery.outcome is Outcome.SENT:
                await self.outbox.record_sent(email, message_id, digest.notification_ids)
                emailed += digest.notification_ids
                sent += 1
            else:
                await self.outbox.record_failure(
                    email, delivery.detail, temporary=delivery.outcome is Outcome.TEMPORARY
                )
        await self.outbox.mark_emailed(emailed)
        return sent

    def unsubscribe_url(self, email_id: str) -> str:
        token = self.signer.unsubscribe_token(email_id)
        return f"{self.settings.base_url}/email/unsubscribe?token={token}"


async def _send_forever(sender: EmailSender, interval: float) -> None:
    while True:
        try:
            sent = await sender.run_once()
            if sent:
                log.info("sent %d notification emails", sent)
        except PyMongoError as exc:  # the database may be away: try again next time
            log.warning("email job failed: %s", exc)
        except Exception:  # a bug must not stop emails for the life of the process
            log.exception("email job failed")
        await asyncio.sleep(interval)


async def email_ctx(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    settings = services.settings
    # Its own client: the job's commands must not take the requests' connections (nor show in
    # the requests' command counts).
    client = connect(settings.mongodb_uri or "", timeout_ms=settings.db_timeout_ms)
    sender = EmailSender(database_of(client), settings, services.email_signer)
    task = asyncio.create_task(
        _send_forever(sender, settings.email_poll_seconds), name="email-outbox"
    )
    yield
    await cancel_and_wait(task, "the email task")
    await sender.close()
    await bounded(client.close(), "closing the email job's database client")
