"""Words as search compares them: folded, split the same way for the index and for a query.

Both engines get text that is already folded and split into words (`fold`): NFKD, combining marks
removed, case-folded, every run of characters that are not letters or digits turned into one
space. So "Déclaration", "DECLARATION" and "declaration" are one word, "balance_sheet_2024.pdf"
is four, and MongoDB's tokenizer (which keeps "_" inside words) and SQLite FTS5's (which splits
on it) see the same words. Matching is by whole word, with no stemming: the text index is
created with language "none", so neither engine stems nor drops stop words on its own.

A query is parsed once (`parse_query`): validated (length, control characters, word count),
folded, its stop words dropped (from the query only: the index keeps every word), every
remaining word required (AND). Quotes, minus signs, `OR` and regex
metacharacters are punctuation or stop words after folding: a client cannot reach the engines'
query syntax.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from graphql_api.errors import BadUserInput
from graphql_api.text import require_unicode

MAX_QUERY_LENGTH = 200
"""Characters of a query; a longer one is BAD_USER_INPUT."""
MAX_QUERY_WORDS = 12
"""Distinct words of a query after folding; more is BAD_USER_INPUT (each one is an AND)."""

_WORD = re.compile(r"[^\W_]+")
# Control characters other than tab and line breaks: a NUL or an escape in a search box is a
# client's bug or a probe, never a word.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Function words of English and French (the Snowball lists, folded), dropped from queries: a query
# of stop words only would match nearly every message and answers an empty page instead.
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    ai aie aient aies ait as au aux avaient avais avait avec avez aviez avions avons ayant ayez
    ayons c ce ceci cela ces cet cette d dans de des du elle en es est et etaient etais etait
    etant ete etes etiez etions eu eue eues eumes eurent eus eusse eussent eusses eussiez
    eussions eut eutes eux fumes furent fus fusse fussent fusses fussiez fussions fut futes ici
    il ils j je l la le les leur leurs lui m ma mais me meme mes moi mon n ne nos notre nous on
    ont ou par pas pour qu que quel quelle quelles quels qui s sa sans se sera serai seraient
    serais serait seras serez seriez serions serons seront ses soi soient sois soit sommes sont
    soyez soyons suis sur t ta te tes toi ton tu un une vos votre vous y
    """.split()
)


def fold(text: str) -> str:
    """`text` as the index stores it: folded words separated by single spaces."""
    return " ".join(words(text))


def words(text: str) -> list[str]:
    """The folded words of `text`, in order."""
    return _WORD.findall(folded(text))


def folded(text: str) -> str:
    """`text` with every character folded: NFKD, combining marks removed, case-folded. Folding
    works character by character, so it can lengthen a character ("ß" → "ss") or empty it (a
    lone combining mark), never merge two."""
    if text.isascii():
        return text.casefold()
    bare = _without_marks(unicodedata.normalize("NFKD", text)).casefold()
    # Case folding can bring combining marks back ("ǰ" → "ǰ"): remove those too.
    return _without_marks(unicodedata.normalize("NFKD", bare))


@lru_cache(maxsize=8192)
def folded_character(character: str) -> str:
    """`folded` of one character, cached (snippets fold text character by character)."""
    return folded(character)


def _without_marks(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.combining(ch))


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed query: the folded words every result contains (empty: nothing can match)."""

    words: tuple[str, ...]

    @property
    def text_search(self) -> str:
        """The `$search` string: every word quoted, which both engines take as "must contain"
        (MongoDB: each quoted phrase is required; FTS5: terms are AND-ed). The words hold only
        letters and digits, so no quote or operator of either syntax can appear in them."""
        return " ".join(f'"{word}"' for word in self.words)


def parse_query(query: str) -> SearchQuery:
    """Validate and fold a client's query (BAD_USER_INPUT for a hostile or empty one)."""
    require_unicode(query, "query")
    if len(query) > MAX_QUERY_LENGTH:
        raise BadUserInput(f"query must be at most {MAX_QUERY_LENGTH} characters", field="query")
    if _CONTROL.search(query):
        raise BadUserInput("query must not contain control characters", field="query")
    if not query.strip():
        raise BadUserInput("query must contain a word", field="query")
    found = list(dict.fromkeys(w for w in words(query) if w not in STOP_WORDS))
    if len(found) > MAX_QUERY_WORDS:
        raise BadUserInput(f"query may have at most {MAX_QUERY_WORDS} words", field="query")
    return SearchQuery(tuple(found))
