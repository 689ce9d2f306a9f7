"""Checks shared by every piece of text a client sends.

Format characters (Unicode category Cf) draw nothing, but change how the text around them reads:
bidirectional controls reorder it ("invoice\\u202egpj.exe" reads "invoiceexe.jpg"), zero-width
spaces, word joiners and byte-order marks hide inside words or make a name look empty, tag
characters carry hidden text. `strip_format_characters` takes them out of what people read
(subjects, message bodies, filenames), keeping only a zero-width joiner or non-joiner between two
non-ASCII characters: emoji sequences (👩‍💻) and Persian or Indic words need them.
`has_visible_character` tells whether anything is left to see.
"""

from __future__ import annotations

import re
import unicodedata

from graphql_api.errors import BadUserInput

# Control characters, and the bidirectional overrides that make "txt.exe" read as "exe.txt".
UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")

JOINERS = frozenset({"\u200c", "\u200d"})  # zero-width non-joiner and joiner
# Format characters with a bidirectional class other than "boundary neutral": the embeddings,
# overrides and isolates, and the marks LRM, RLM and ALM. They may stand between two words.
_BOUNDARY_NEUTRAL = "BN"
# Letters and symbols that draw nothing: Hangul fillers and the blank braille pattern, used to
# make names that look empty (not format characters, so named here).
BLANK_LETTERS = frozenset({"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"})
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Mn", "Me", "Zs", "Zl", "Zp"})
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def strip_format_characters(text: str, bidi_replacement: str = "") -> str:
    """`text` without format characters; bidirectional controls become `bidi_replacement`."""
    return _NON_ASCII_RUN.sub(lambda run: _strip_run(run.group(), bidi_replacement), text)


def _strip_run(run: str, bidi_replacement: str) -> str:
    kept: list[str] = []
    last = len(run) - 1
    for index, character in enumerate(run):
        if unicodedata.category(character) != "Cf":
            kept.append(character)
        elif character in JOINERS and 0 < index < last and _joinable(run, index):
            kept.append(character)
        elif unicodedata.bidirectional(character) != _BOUNDARY_NEUTRAL:
            kept.append(bidi_replacement)
    return "".join(kept)


def _joinable(run: str, index: int) -> bool:
    return all(
        unicodedata.category(neighbour) not in _INVISIBLE_CATEGORIES
        for neighbour in (run[index - 1], run[index + 1])
    )


def has_visible_character(text: str) -> bool:
    """Whether `text` has a character that draws something (not a space, a format or control
    character, a lone combining mark or a blank letter)."""
    return any(
        unicodedata.category(character) not in _INVISIBLE_CATEGORIES
        and character not in BLANK_LETTERS
        for character in text
    )


def require_unicode(value: str, field: str) -> str:
    """`value` if it encodes as UTF-8; a lone surrogate (JSON "\\ud800") cannot be stored."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadUserInput(f"{field} is not valid Unicode text", field=field) from exc
    return value
