"""What an uploaded file is called and what it contains, never trusting the client.

Filenames lose path parts, control characters and format characters (bidi overrides, which make
"exe.txt" of "txt.exe", zero-width spaces, byte-order marks: see `graphql_api.text`), and are
bounded in length with their extension kept. The content type is sniffed from the first bytes
with `filetype`; a file without a known signature is `text/plain` when its start is UTF-8 text,
else `application/octet-stream`. Scriptable types (HTML, SVG) therefore come out as text/plain,
and downloads add `nosniff` so browsers keep it that way.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote

import filetype

from graphql_api.text import CONTROL_CHARACTERS, strip_format_characters

MAX_FILENAME_LENGTH = 200
SNIFF_BYTES = 8192
DEFAULT_FILENAME = "attachment"


def sanitize_filename(raw: str | None) -> str:
    # Clients percent-encode what cannot stand in a quoted header value (aiohttp encodes all).
    name = unicodedata.normalize("NFC", unquote(raw or ""))
    name = re.split(r"[\\/]", name)[-1]  # no path parts, whatever the client's OS
    name = strip_format_characters(CONTROL_CHARACTERS.sub("", name)).strip().lstrip(".").strip()
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            name = stem[: MAX_FILENAME_LENGTH - len(extension) - 1] + "." + extension
        else:
            name = name[:MAX_FILENAME_LENGTH]
    return name or DEFAULT_FILENAME


def sniff_content_type(head: bytes) -> str:
    """The content type of a file from its first bytes (up to SNIFF_BYTES)."""
    kind = filetype.guess(head)
    if kind is not None:
        return str(kind.mime)
    if not head:
        return "application/octet-stream"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text/plain"
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the sniffing boundary is still text.
            if exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
                return "text/plain"
    return "application/octet-stream"


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback and the exact name per RFC 6266 / RFC 5987."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r'["\\;]', "_", ascii_name).strip()
    if not ascii_name or ascii_name.startswith("."):  # "отчёт.pdf" must not become ".pdf"
        ascii_name = DEFAULT_FILENAME + ascii_name
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
