"""The email itself: a text and an HTML part from Jinja2 templates, and its headers.

The HTML template is rendered with autoescaping, so every user string (names, subjects,
previews, company names) is escaped; the text part is plain text. No attachment is ever
included. Headers: a deterministic `Message-ID` per (user, window), `Reply-To` the signed reply
address of the first conversation listed, RFC 8058 one-click unsubscribe (`List-Unsubscribe`
and `List-Unsubscribe-Post`), and `Auto-Submitted: auto-generated` (RFC 3834) so that
out-of-office responders do not answer.
"""

from __future__ import annotations

from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from graphql_api.email.content import Digest
from graphql_api.email.preferences import EmailFrequency
from graphql_api.text import UNSAFE_CHARACTERS

MAX_CONVERSATIONS_SHOWN = 20
# Quoted-printable bodies: readable in the raw message, and safe for long HTML lines.
UTF8_QP = Charset("utf-8")
UTF8_QP.body_encoding = QP
SUBJECT_CHARACTERS = 120

_ENVIRONMENT = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "hello": "Hello",
        "from": "From",
        "messages": "messages",
        "open": "Open the conversation",
        "reply_here": "or reply to this email",
        "reply_by_email": "reply by email",
        "more": "More conversations with unread messages:",
        "why": "You receive this email because you have unread messages on Messager.",
        "unsubscribe": "Stop these emails",
        "one": "New message in “{subject}”",
        "many": "{messages} new messages in {conversations} conversations",
        "many_in_one": "{messages} new messages in “{subject}”",
        "daily": "Your daily digest: {messages} unread message(s)",
        "summary": "{messages} unread message(s) in {conversations} conversation(s).",
        "daily_summary": "Your daily digest: {messages} unread message(s) in "
        "{conversations} conversation(s).",
    },
    "fr": {
        "hello": "Bonjour",
        "from": "De",
        "messages": "messages",
        "open": "Ouvrir la conversation",
        "reply_here": "ou répondez à cet e-mail",
        "reply_by_email": "répondre par e-mail",
        "more": "Autres conversations avec des messages non lus :",
        "why": "Vous recevez cet e-mail car vous avez des messages non lus sur Messager.",
        "unsubscribe": "Ne plus recevoir ces e-mails",
        "one": "Nouveau message dans « {subject} »",
        "many": "{messages} nouveaux messages dans {conversations} conversations",
        "many_in_one": "{messages} nouveaux messages dans « {subject} »",
        "daily": "Votre récapitulatif du jour : {messages} message(s) non lu(s)",
        "summary": "{messages} message(s) non lu(s) dans {conversations} conversation(s).",
        "daily_summary": "Votre récapitulatif du jour : {messages} message(s) non lu(s) dans "
        "{conversations} conversation(s).",
    },
}


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(UNSAFE_CHARACTERS.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def subject_of(digest: Digest) -> str:
    strings = STRINGS[digest.locale]
    counts = {"messages": digest.message_count, "conversations": len(digest.conversations)}
    if digest.kind is EmailFrequency.DAILY:
        return strings["daily"].format(**counts)
    if len(digest.conversations) == 1:
        subject = _one_line(digest.conversations[0].conversation.subject, SUBJECT_CHARACTERS)
        key = "one" if digest.message_count == 1 else "many_in_one"
        return strings[key].format(subject=subject, **counts)
    return strings["many"].format(**counts)


def compose(
    digest: Digest,
    *,
    message_id: str,
    sender: str,
    unsubscribe_url: str,
) -> MIMEMultipart:
    """The email of `digest`, which must list at least one conversation.

    Built with the `email.mime` classes: the modern `EmailMessage` API parses every header it
    touches, which was most of the time of composing an email."""
    strings = STRINGS[digest.locale]
    subject = subject_of(digest)
    counts = {"messages": digest.message_count, "conversations": len(digest.conversations)}
    daily = digest.kind is EmailFrequency.DAILY
    values = {
        "name": digest.user.name,
        "locale": digest.locale,
        "subject": subject,
        "daily": daily,
        "summary": strings["daily_summary" if daily else "summary"].format(**counts),
        "message_count": digest.message_count,
        "conversations": digest.conversations,
        "max_conversations": MAX_CONVERSATIONS_SHOWN,
        "unsubscribe_url": unsubscribe_url,
        "t": strings,
    }
    text = _ENVIRONMENT.get_template(f"{digest.locale}.txt").render(values)
    html = _ENVIRONMENT.get_template("layout.html").render(values)

    message = MIMEMultipart("alternative")
    message["Subject"] = Header(subject, "utf-8")
    message["From"] = sender
    message["To"] = formataddr((_one_line(digest.user.name, 100), digest.user.email), "utf-8")
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    message["Reply-To"] = digest.conversations[0].reply_address
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["Content-Language"] = digest.locale
    message.attach(MIMEText(text, "plain", UTF8_QP))
    message.attach(MIMEText(html, "html", UTF8_QP))
    return message
