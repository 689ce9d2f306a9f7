"""Message bodies (SPEC §6): HTML restricted to the toolbar's formats, and its plain text.

Sanitizing is nh3 (the Ammonia sanitizer): an HTML5 parser, not regexes, so mutation-XSS tricks
are parsed the way a browser would and removed. Links keep http, https and mailto only, and get
`rel="noopener noreferrer"`. The plain text (previews, notifications, search) is taken from the
sanitized HTML with block elements turned into line breaks.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import nh3

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
_BLOCKS = frozenset({"p", "h1", "h2", "h3", "li", "blockquote", "pre", "ol", "ul"})


def _clean_once(body: str) -> str:
    return nh3.clean(
        body,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        url_relative="deny",  # relative and protocol-relative links have no allowed scheme
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


def sanitize_html(body: str) -> str:
    """The body with everything outside the allow-list removed.

    Sanitized again until nothing changes: what the HTML5 parser builds is not always what it
    would build from its own output (a `<pre>`'s first newline, blocks out of removed tags), and
    the stored body must be exactly what a browser will parse.
    """
    cleaned = _clean_once(body)
    for _ in range(MAX_PASSES):
        again = _clean_once(cleaned)
        if again == cleaned:
            break
        cleaned = again
    return cleaned


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(sanitized: str) -> str:
    """Plain text of sanitized HTML: one line per block, runs of blank lines collapsed."""
    extractor = _TextExtractor()
    extractor.feed(sanitized)
    extractor.close()
    text = html.unescape("".join(extractor.parts))
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{2,}", "\n", "\n".join(lines)).strip()
