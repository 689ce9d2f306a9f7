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
ALLOWED_ATTRIBUTES = {"a": {"href"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_BLOCKS = frozenset({"p", "h1", "h2", "h3", "li", "blockquote", "pre", "ol", "ul"})


def sanitize_html(body: str) -> str:
    """The body with everything outside the allow-list removed."""
    return nh3.clean(
        body,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


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
