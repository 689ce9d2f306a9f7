"""`SearchResult.snippet`: a short excerpt of plain text, HTML-escaped, with `<mark>` around the
words of the query.

The excerpt is cut from the message's plain text around its first matching word; when the
matches are only in an attachment's filename or in the conversation's subject, it is that name
(or subject) instead. Matching is the search's own (`terms`): whole folded words, so "declaration"
marks "Déclaration" in the original spelling. The original text is folded character by
character, keeping where each folded character came from, so marks land on the original
characters. Every piece of text is escaped before it is joined with the marks: a message that
contains `<script>` or `<mark>` shows them as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

from graphql_api.search.terms import folded_character

SNIPPET_LENGTH = 160
"""Characters of original text in an excerpt, about two lines of a result list."""
LEAD = 40
"""Characters kept before the first match, so that it reads in context."""
ELLIPSIS = "…"

_WORD = re.compile(r"[^\W_]+")

Span = tuple[int, int]


def snippet(
    words: Iterable[str], body_text: str, subject: str = "", filenames: Sequence[str] = ()
) -> str:
    """The excerpt for a result, escaped, with `<mark>` around every matching word."""
    wanted = frozenset(words)
    body_matches = matches(body_text, wanted)
    if body_matches:
        return _excerpt(body_text, body_matches)
    for name in (*filenames, subject):
        found = matches(name, wanted)
        if found:
            return _excerpt(name, found)
    return _excerpt(body_text, [])


def matches(text: str, wanted: frozenset[str]) -> list[Span]:
    """The spans of `text` (original positions) whose folded word is one of `wanted`."""
    if not wanted or not text:
        return []
    folded_chars: list[str] = []
    origin: list[int] = []  # index in `text` of each folded character
    for index, character in enumerate(text):
        for piece in folded_character(character):
            folded_chars.append(piece)
            origin.append(index)
    folded_text = "".join(folded_chars)
    return [
        (origin[m.start()], origin[m.end() - 1] + 1)
        for m in _WORD.finditer(folded_text)
        if m.group() in wanted
    ]


def _excerpt(text: str, spans: list[Span]) -> str:
    start = 0
    if spans and len(text) > SNIPPET_LENGTH:
        start = max(0, min(spans[0][0] - LEAD, len(text) - SNIPPET_LENGTH))
        start = _word_start(text, start)
    end = min(len(text), start + SNIPPET_LENGTH)
    end = _word_end(text, end)
    pieces = [ELLIPSIS] if start > 0 else []
    position = start
    for span_start, span_end in spans:
        if span_start < position or span_end > end:
            continue
        pieces.append(html.escape(text[position:span_start]))
        pieces.append(f"<mark>{html.escape(text[span_start:span_end])}</mark>")
        position = span_end
    pieces.append(html.escape(text[position:end]))
    if end < len(text):
        pieces.append(ELLIPSIS)
    return "".join(pieces)


def _word_start(text: str, index: int) -> int:
    """`index` moved forward past a word it cuts (the excerpt starts on a whole word)."""
    if index == 0 or not text[index - 1].isalnum():
        return index
    while index < len(text) and text[index].isalnum():
        index += 1
    return index


def _word_end(text: str, index: int) -> int:
    """`index` moved back before a word it cuts (the excerpt ends on a whole word)."""
    if index >= len(text) or not text[index].isalnum():
        return index
    stop = index
    while stop > 0 and text[stop - 1].isalnum():
        stop -= 1
    return stop if stop > 0 else index
