"""Reply by email: the inbound SMTP listener of `messager serve --smtp-port P` (SPEC §15).

Mail is accepted only for a genuine reply address (`reply+TOKEN@MAIL_DOMAIN`, signed per user and
conversation) whose user may still read the conversation; anything else is refused with 550 at
RCPT. At the end of DATA, the message is read (`reply_text`), its `From` must be the user's own
address, the access policy is asked again (the moment of posting), and the reply is posted
through the conversations service as a message of that user, with its files stored through the
attachment store under SPEC §7's limits. The `Message-ID` becomes the message's idempotency key
(`clientMessageId`), so a message delivered twice is posted once. A message is posted whole or
not at all: any refusal answers an SMTP error and removes the files already stored.

The listener is meant to sit behind the domain's MX, which checks SPF, DKIM and DMARC: the signed
address and the sender check are what this service adds. Automatic replies (RFC 3834
`Auto-Submitted`, out-of-office) are accepted and dropped, so that they neither post nor bounce.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from pymongo.errors import PyMongoError

from graphql_api.attachments.files import SNIFF_BYTES, sanitize_filename, sniff_content_type
from graphql_api.attachments.http import MAX_ATTACHMENT_BYTES
from graphql_api.conversations.models import Conversation
from graphql_api.conversations.validation import MAX_ATTACHMENTS
from graphql_api.directory.models import User
from graphql_api.email.reply_text import MailFile, MailRejected, parse_reply, text_to_html
from graphql_api.errors import ApiError, BadUserInput, NotFound, RateLimited
from graphql_api.ids import is_id
from graphql_api.keys import REUSE_PORT, SERVICES
from graphql_api.policy import fetch_readable
from graphql_api.services import Services
from graphql_api.shutdown import bounded

log = logging.getLogger(__name__)

NO_SUCH_ADDRESS = MailRejected(550, "5.1.1 no such reply address")
NO_ACCESS = MailRejected(550, "5.7.1 this address may no longer post in this conversation")


def reply_key(message_id: str | None, raw: bytes) -> str:
    """The idempotency key of a reply: from its Message-ID, else from its bytes."""
    source = message_id.encode("utf-8", "replace") if message_id else raw
    return "email:" + hashlib.sha256(source).hexdigest()[:40]


class ReplyPoster:
    """Turns one received reply into a message of its user, or refuses it."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def target_of(self, address: str) -> tuple[str, str]:
        target = self.services.email_signer.read_reply_address(
            address, self.services.settings.mail_domain
        )
        if target is None or not all(is_id(i) for i in target):
            raise NO_SUCH_ADDRESS
        return target

    async def reader(self, user_id: str, conversation_id: str) -> tuple[User, Conversation]:
        """The user and the conversation, if the user may read (so reply to) it now."""
        user = await self.services.directory.user_by_id(user_id)
        if user is None:
            raise NO_ACCESS
        try:
            conversation = await fetch_readable(self.services.db, user, conversation_id)
        except NotFound as exc:
            raise NO_ACCESS from exc
        return user, conversation

    async def post(self, address: str, raw: bytes) -> str:
        """Post the reply in `raw` sent to `address`; answers the SMTP reply."""
        user_id, conversation_id = self.target_of(address)
        reply = parse_reply(raw)
        if reply.automatic:
            return "250 2.0.0 automatic reply ignored"
        user, conversation = await self.reader(user_id, conversation_id)
        if reply.sender.casefold() != user.email.casefold():
            raise MailRejected(550, "5.7.1 the sender is not the owner of this reply address")
        if len(reply.files) > MAX_ATTACHMENTS:
            raise MailRejected(552, f"5.3.4 a message has at most {MAX_ATTACHMENTS} attachments")
        if any(len(f.data) > MAX_ATTACHMENT_BYTES for f in reply.files):
            raise MailRejected(552, "5.3.4 an attachment is larger than 100 MiB")
        if not reply.text and not reply.files:
            raise MailRejected(550, "5.6.0 the reply is empty")
        key = reply_key(reply.message_id, raw)
        conversations = self.services.conversations
        if await conversations.message_by_client_id(user, key) is not None:
            return "250 2.0.0 already posted"
        stored = [await self._store(user, f) for f in reply.files]
        try:
            await conversations.send(
                user,
                conversation=conversation,
                body=text_to_html(reply.text),
                attachment_ids=stored,
                client_message_id=key,
            )
        except BaseException:
            await asyncio.shield(self.services.attachments.delete(stored))
            raise
        return "250 2.0.0 reply posted"

    async def _store(self, user: User, file: MailFile) -> str:
        upload = await self.services.attachments.begin(user, sanitize_filename(file.filename))
        try:
            await upload.write(file.data)
            attachment = await upload.finish(sniff_content_type(file.data[:SNIFF_BYTES]))
        except BaseException:
            await asyncio.shield(upload.abort())
            raise
        return attachment.id


class ReplyHandler:
    """aiosmtpd's handler: checks recipients at RCPT, posts at the end of DATA."""

    def __init__(self, poster: ReplyPoster) -> None:
        self.poster = poster

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if envelope.rcpt_tos:
            return "452 4.5.3 one reply address per message"
        try:
            await self.poster.reader(*self.poster.target_of(address))
        except MailRejected as rejected:
            return rejected.reply
        except PyMongoError:
            return "451 4.3.0 temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            return await self.poster.post(envelope.rcpt_tos[0], raw)
        except MailRejected as rejected:
            return rejected.reply
        except RateLimited:
            return "451 4.7.1 too many messages, try again later"
        except (BadUserInput, NotFound) as error:
            return f"550 5.6.0 {_one_line(error.message)}"
        except ApiError as error:
            log.warning("reply by email refused: %s", error.message)
            return "451 4.3.0 temporary failure, try again later"
        except PyMongoError as exc:
            log.warning("reply by email not posted: %s", exc)
            return "451 4.3.0 temporary failure, try again later"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def smtp_factory(services: Services) -> Any:
    handler = ReplyHandler(ReplyPoster(services))
    settings = services.settings

    def make() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=settings.inbound_max_bytes,
            enable_SMTPUTF8=True,
            hostname=settings.mail_domain,
            ident="Messager reply listener",
            timeout=60,
        )

    return make


async def inbound_smtp_ctx(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    settings = services.settings
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        smtp_factory(services),
        host=settings.host,
        port=settings.smtp_port,
        reuse_port=app.get(REUSE_PORT, False) or None,
    )
    log.info("reply-by-email SMTP listener on %s:%s", settings.host, settings.smtp_port)
    yield
    server.close()
    with contextlib.suppress(Exception):
        await bounded(server.wait_closed(), "closing the SMTP listener")
