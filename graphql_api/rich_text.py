"""Message bodies (SPEC §6): HTML restricted to the toolbar's formats, and its plain text.

Sanitizing is nh3 (the Ammonia sanitizer): an HTML5 parser, not regexes, so mutation-XSS tricks
are parsed the way a browser would and removed. Links keep http, https and mailto only, and get
`rel="noopener noreferrer"`. Format characters go too (`graphql_api.text`): a right-to-left override
would make "invoice\u202egpj.exe" read "invoiceexe.jpg" in the message and its previews. The
plain text (previews, notifications, search) is taken from the sanitized HTML with block elements
turned into line breaks.

The service runs all this away from the event loop (`graphql_api.sanitizer_pool`), after
`graphql_api.html_nesting` has bounded what the parse may cost.
"""

from __future__ import annotations

import html
import re

import nh3

from graphql_api.text import strip_format_characters

ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "strong",
        "b",
        "em",
        "i",
        "u",
        "s",
        "strike",
        "del",
        "h1",
        "h2",
        "h3",
        "ol",
        "ul",
        "li",
        "blockquote",
        "code",
        "pre",
        "a",
    }
)
# "*": none, so that ammonia's default generic attributes (lang, title) are not allowed either.
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {"*": set(), "a": {"href"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
MAX_PASSES = 10
# A tag of sanitized HTML (see `html_to_text`), and the tags that break its text into lines.
_TAG = re.compile(r'</?([a-z0-9]+)(?:[^>"]++|"[^"]*+")*+>')
_LINE_BREAKS = frozenset({"p", "h1", "h2", "h3", "li", "blockquote", "pre", "ol", "ul", "br"})


def _clean_once(body: str) -> str:
    cleaned = nh3.clean(
        body,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        url_relative="deny",  # relative and protocol-relative links have no allowed scheme
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    # After nh3, which decodes "&#x202e;" into the character it names.
    return strip_format_characters(cleaned, bidi_replacement=" ").strip()


def sanitize_html(body: str, max_bytes: int | None = None) -> str:
    """The body with everything outside the allow-list removed.

    Sanitized again until nothing changes: what the HTML5 parser builds is not always what it
    would build from its own output (a `<pre>`'s first newline, blocks out of removed tags), and
    the stored body must be exactly what a browser will parse. A result over `max_bytes` of
    UTF-8 is answered as it is, unsettled: it is too long to store, and the caller refuses it.
    """
    cleaned = _clean_once(body)
    for _ in range(MAX_PASSES):
        if max_bytes is not None and utf8_length(cleaned) > max_bytes:
            break
        again = _clean_once(cleaned)
        if again == cleaned:
            break
        cleaned = again
    return cleaned


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def html_to_text(sanitized: str) -> str:
    """Plain text of sanitized HTML: one line per block, runs of blank lines collapsed.

    Sanitized HTML is nh3's serialization, so its tags can be found by pattern: its text
    escapes every `<`, it has no comments, and attribute values are double-quoted.
    """
    pieces: list[str] = []
    position = 0
    for tag in _TAG.finditer(sanitized):
        pieces.append(sanitized[position : tag.start()])
        if tag.group(1) in _LINE_BREAKS:
            pieces.append("\n")
        position = tag.end()
    pieces.append(sanitized[position:])
    text = html.unescape("".join(pieces))
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{2,}", "\n", "\n".join(lines)).strip()
