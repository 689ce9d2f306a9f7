"""Message bodies (SPEC §6): HTML restricted to the toolbar's formats, and its plain text.

Sanitizing is nh3 (the Ammonia sanitizer): an HTML5 parser, not regexes, so mutation-XSS tricks
are parsed the way a browser would and removed. Links keep http, https and mailto only, and get
`rel="noopener noreferrer"`. Format characters go too (`graphql_api.text`): a right-to-left override
would make "invoice\u202egpj.exe" read "invoiceexe.jpg" in the message and its previews. The
plain text (previews, notifications, search) is taken from the sanitized HTML with block elements
turned into line breaks.

Sanitizing is CPU work of up to tens of milliseconds for a large body, so it runs off the event
loop, in a small pool of its own (`off_loop`): nh3 releases the GIL while it parses, and the
Python steps around it give the loop the GIL back every few milliseconds (the interpreter's
switch interval). The pool's size bounds how many cores bodies can take at once; what one body
may cost is bounded before it gets there (`graphql_api.html_nesting`, and the size limits of
`graphql_api.conversations.validation`).
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import nh3

from graphql_api.text import strip_format_characters

P = ParamSpec("P")
T = TypeVar("T")

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
SANITIZER_THREADS = 2
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


_pool = ThreadPoolExecutor(max_workers=SANITIZER_THREADS, thread_name_prefix="sanitizer")


async def off_loop(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args, **kwargs)` run in the sanitizer pool, so that the event loop keeps serving."""
    return await asyncio.get_running_loop().run_in_executor(_pool, lambda: work(*args, **kwargs))


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
    escapes every `<`, it has no comments, and attribute values are double-quoted. A step per
    tag, not one call over the whole body: running in the sanitizer pool, this code gives the
    event loop the GIL back between steps, where one long regex call would hold it throughout.
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
