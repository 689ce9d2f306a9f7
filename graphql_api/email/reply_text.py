"""Reading a reply email: its new text without quoted history or signature, and its files.

- The body is the `text/plain` part when there is one, else the text of the sanitized HTML part.
- Quoted history ("On Mon, ... wrote:", "Le lun. ... a écrit :", Outlook's "-----Original
  Message-----" / "De : ... Envoyé : ...", "> " lines) and signatures ("-- ", "Sent from my
  iPhone", "Envoyé de mon iPhone") are removed by `mail-parser-reply` with English and French.
- A message is refused, never half-read: MIME defects (a part without its boundary, broken
  base64...), and HTML that tries to run something (`script`, frames, objects, forms, event
  handler attributes, `javascript:` links) — no mail client sends those in a reply.
- Attachments are the parts `email` lists as attachments, minus images embedded in the HTML
  (an inline part with a Content-ID: signature logos), which are not files the user sent.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

from mailparser_reply import EmailReplyParser

from graphql_api.rich_text import html_to_text, sanitize_html

LANGUAGES = ["en", "fr"]
_ACTIVE_TAGS = frozenset(
    {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "base"}
)
_URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "background"})
_MOBILE_SIGNATURE = re.compile(
    r"\n+(?:Envoy[ée] de mon|Sent from my|Get Outlook for) [^\n]{1,40}$", re.IGNORECASE
)
_ACTIVE_SCHEMES = re.compile(r"^\s*(javascript|vbscript|livescript)\s*:", re.IGNORECASE)


class MailRejected(Exception):
    """A mail refused with an SMTP reply (`code` and text)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(frozen=True, slots=True)
class MailFile:
    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ReplyMail:
    message: EmailMessage
    text: str
    files: list[MailFile]

    @property
    def sender(self) -> str:
        addresses = getattr(self.message["From"], "addresses", ())
        return addresses[0].addr_spec if len(addresses) == 1 else ""

    @property
    def message_id(self) -> str | None:
        value = self.message.get("Message-ID")
        return str(value).strip() or None if value is not None else None

    @property
    def automatic(self) -> bool:
        """An out-of-office answer or another automatic reply (RFC 3834)."""
        auto = str(self.message.get("Auto-Submitted", "no")).strip().lower()
        return auto != "no" or "X-Autoreply" in self.message or "X-Autorespond" in self.message


class _ActiveContentFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _ACTIVE_TAGS:
            self.found = self.found or f"<{tag}>"
        if tag == "meta" and any(
            k == "http-equiv" and (v or "").lower() == "refresh" for k, v in attrs
        ):
            self.found = self.found or "<meta http-equiv=refresh>"
        for name, value in attrs:
            if name.startswith("on"):
                self.found = self.found or f"{name}= attribute"
            elif name in _URL_ATTRIBUTES and value and _ACTIVE_SCHEMES.match(value):
                self.found = self.found or f"{name}= script link"

    handle_startendtag = handle_starttag


def active_content(markup: str) -> str | None:
    """What in `markup` would run code in a browser, or None."""
    finder = _ActiveContentFinder()
    finder.feed(markup)
    finder.close()
    return finder.found


def parse_reply(raw: bytes) -> ReplyMail:
    """The reply in `raw`; `MailRejected` for a malformed or hostile message."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        parts = list(message.walk())
        defects = [d for part in parts for d in part.defects]
        if defects:
            raise MailRejected(550, f"5.6.0 malformed message ({type(defects[0]).__name__})")
        if message["From"] is None:
            raise MailRejected(550, "5.6.0 malformed message (no From header)")
        for part in parts:
            if part.get_content_type() == "text/html" and not part.is_attachment():
                found = active_content(part.get_content())
                if found:
                    raise MailRejected(550, f"5.7.1 message refused: active content ({found})")
        body = message.get_body(preferencelist=("plain", "html"))
        text = ""
        if body is not None:
            content = body.get_content()
            if body.get_content_type() == "text/html":
                text = html_to_text(sanitize_html(content))
            else:
                text = content
        files = _files(message)
    except MailRejected:
        raise
    except (LookupError, ValueError, TypeError, AttributeError, UnicodeError) as exc:
        # Undecodable charset, broken encoded words or headers: nothing can be read reliably.
        raise MailRejected(550, "5.6.0 malformed message") from exc
    return ReplyMail(message=message, text=latest_reply(text), files=files)


def _files(message: EmailMessage) -> list[MailFile]:
    files = []
    for part in message.iter_attachments():
        if part.get_content_disposition() != "attachment" and part["Content-ID"] is not None:
            continue  # an image embedded in the HTML, such as a signature's logo
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = part.as_bytes()  # an attached message (message/rfc822)
        files.append(MailFile(filename=part.get_filename() or "attachment", data=data))
    return files


def latest_reply(text: str) -> str:
    """`text` without the quoted history and the signature."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        return ""
    parsed = EmailReplyParser(languages=LANGUAGES).read(text)
    if not parsed.replies:
        return text
    first = parsed.replies[0]
    reply = (first.body or first.content or "").strip()
    # The library knows "Envoyé depuis mon iPhone"; iOS in French writes "Envoyé de mon iPhone".
    return _MOBILE_SIGNATURE.sub("", reply).strip()


def text_to_html(text: str) -> str:
    """Plain text as the rich-text HTML of a message: paragraphs and line breaks, escaped."""
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
