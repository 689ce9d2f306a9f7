"""Attachments (SPEC §7): upload, download, ranges, headers, names, types, attaching, cleanup.

Everything goes through real HTTP against the app and the session's nx-27017 server. Large files
are generated block by block and streamed in both directions (an async generator on the way up,
`iter_chunked` with an incremental sha256 on the way down), so the test process never holds one.

Storage checks go straight to the database: `attachments` is an ordinary collection; the embedded
server's GridFS emulation answers `fs.chunks` by `files_id` and `fs.files` by `_id` (a `find({})`
on `fs.chunks` answers nothing even when chunks exist, and `count_documents` fails on both), so
leftovers are looked for by the id of the upload.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from aiohttp import ClientError
from bson import Binary, ObjectId
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from graphql_api.app import init_app
from graphql_api.attachments.signing import UrlSigner
from graphql_api.keys import SERVICES
from graphql_api.settings import Settings
from tests.conftest import Api
from tests.conversation_helpers import REMOVE_FAVORITE, company_id, create_input, user_id
from tests.upload_helpers import (
    BLOCK,
    BOUNDARY,
    MAX_BYTES,
    MULTIPART,
    PART_TAIL,
    fetch,
    generated_blocks,
    generated_bytes,
    part_head,
    streamed,
    upload,
    uploaded,
)

CHUNK = 255 * 1024  # the GridFS chunk size the store writes
READ_BATCH = 8 * CHUNK  # the store reads 8 chunks per query
DEADLINE_SECONDS = 20.0  # polls give up after this: far beyond the need, not a timing check

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>\n"
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
    b"<script>alert(document.domain)</script></svg>\n"
)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

ATTACHMENT_FIELDS = "id filename contentType size url"
CREATE_WITH_ATTACHMENTS = f"""
mutation($input: CreateConversationInput!) {{
  createConversation(input: $input) {{
    id lastMessage {{ id body attachments {{ {ATTACHMENT_FIELDS} }} }}
  }}
}}
"""
SEND_WITH_ATTACHMENTS = f"""
mutation($input: SendMessageInput!) {{
  sendMessage(input: $input) {{ id body attachments {{ {ATTACHMENT_FIELDS} }} }}
}}
"""
LAST_ATTACHMENTS = f"""
query($id: ID!) {{
  conversation(id: $id) {{ lastMessage {{ attachments {{ {ATTACHMENT_FIELDS} }} }} }}
}}
"""


# -- generated data --------------------------------------------------------------------------


def generated_sha256(size: int, seed: int = 1) -> str:
    digest = hashlib.sha256()
    for block in generated_blocks(size, seed):
        digest.update(block)
    return digest.hexdigest()


# -- multipart bodies, streamed --------------------------------------------------------------


SAFE_DISPOSITION = re.compile(
    r'attachment; filename="[^"\\;\x00-\x1f]*"'  # one quoted plain name...
    r"; filename\*=UTF-8''[A-Za-z0-9%._~-]+"  # ...then the exact name, percent-encoded
)


async def fetch_sha256(api: Api, path: str, user: str) -> tuple[int, int, str]:
    """(status, byte count, sha256) of a download read in 1 MiB pieces."""
    response = await api.http.get(path, headers=api.headers(user))
    digest = hashlib.sha256()
    count = 0
    async for piece in response.content.iter_chunked(BLOCK):
        digest.update(piece)
        count += len(piece)
    return response.status, count, digest.hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- storage -----------------------------------------------------------------------------------


async def stored_anything_of(db: Any, attachment_id: str) -> dict[str, int]:
    """What storage holds of one upload: its metadata, GridFS file and chunks documents."""
    return {
        "attachments": len(await db.attachments.find({"_id": attachment_id}).to_list()),
        "fs.files": len(await db["fs.files"].find({"_id": attachment_id}).to_list()),
        "fs.chunks": len(
            await db["fs.chunks"].find({"files_id": attachment_id}, {"n": 1}).to_list()
        ),
    }


NOTHING = {"attachments": 0, "fs.files": 0, "fs.chunks": 0}


async def wait_for_upload_in_progress(db: Any, *, with_chunks: bool = True) -> str:
    """The id of the upload the server is storing, once it began (and, with `with_chunks`,
    once its first chunks are written)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        doc = await db.attachments.find_one({"state": "uploading"})
        if doc and (
            not with_chunks or await db["fs.chunks"].find_one({"files_id": doc["_id"], "n": 0})
        ):
            return str(doc["_id"])
        await asyncio.sleep(0.01)
    raise AssertionError("the server never started storing the upload")


async def wait_until(
    condition: Callable[[], Awaitable[bool]], what: str, deadline_seconds: float = DEADLINE_SECONDS
) -> None:
    """Poll `condition` until it holds; fail after a deadline far beyond the work's need."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still not true after {deadline_seconds}s: {what}")


# -- round trips -------------------------------------------------------------------------------


SMALL_SIZES = {
    "empty": 0,
    "one byte": 1,
    "exactly one chunk": CHUNK,
    "one chunk and a byte": CHUNK + 1,
    "one read batch and a byte": READ_BATCH + 1,
}


async def test_small_file_downloads_with_the_exact_bytes_uploaded(api):
    outcomes = {}
    for case, size in SMALL_SIZES.items():
        data = generated_bytes(size, seed=size)
        answer = await uploaded(api, "alice", data)
        response, body = await fetch(api, f"/attachments/{answer['id']}", "alice")
        outcomes[case] = (answer["size"], response.status, sha256(body) == sha256(data))

    assert outcomes == {case: (size, 200, True) for case, size in SMALL_SIZES.items()}


async def test_file_over_the_embedded_servers_one_reply_limit_round_trips(api):
    size = 50_000_000  # past ~48 MB, where one find on fs.chunks would overflow a reply
    answer = await uploaded(api, "alice", size=size)
    assert answer["size"] == size

    status, count, digest = await fetch_sha256(api, f"/attachments/{answer['id']}", "alice")
    assert (status, count) == (200, size)
    assert digest == generated_sha256(size)


async def test_file_of_exactly_100_mib_is_accepted(api):
    answer = await uploaded(api, "alice", size=MAX_BYTES)
    assert answer["size"] == MAX_BYTES

    status, count, _ = await fetch_sha256(api, f"/attachments/{answer['id']}", "alice")
    assert (status, count) == (200, MAX_BYTES)


async def test_file_one_byte_over_100_mib_is_refused_and_nothing_is_kept(api, db):
    seen: dict[str, str] = {}

    async def body() -> AsyncIterator[bytes]:
        yield part_head()
        for index, block in enumerate(generated_blocks(MAX_BYTES + 1)):
            yield block
            if index == 8:  # learn the id the server gave it, while it stores it
                seen["id"] = await wait_for_upload_in_progress(db)
        yield PART_TAIL

    length = len(part_head()) + MAX_BYTES + 1 + len(PART_TAIL)
    response = await api.http.post(
        "/attachments",
        data=body(),
        headers={**api.headers("alice"), "Content-Type": MULTIPART, "Content-Length": str(length)},
    )
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert await db.attachments.count_documents({}) == 0
    assert await stored_anything_of(db, seen["id"]) == NOTHING


async def test_upload_sent_without_a_content_length_round_trips(api):
    # What a browser's fetch() with a stream body sends: chunked transfer encoding.
    head = part_head("streamed.bin")
    response = await api.http.post(
        "/attachments",
        data=streamed(head, generated_blocks(3 * BLOCK + 5, seed=9), PART_TAIL),
        headers={**api.headers("alice"), "Content-Type": MULTIPART},
    )
    assert response.status == 201, await response.text()
    answer = await response.json()
    assert answer["size"] == 3 * BLOCK + 5

    status, count, digest = await fetch_sha256(api, f"/attachments/{answer['id']}", "alice")
    assert (status, count) == (200, 3 * BLOCK + 5)
    assert digest == generated_sha256(3 * BLOCK + 5, seed=9)


async def test_upload_declaring_more_than_100_mib_is_refused_without_reading_it(api, db):
    reader, writer = await asyncio.open_connection(api.http.host, api.http.port)
    try:
        writer.write(
            (
                "POST /attachments HTTP/1.1\r\n"
                f"Host: {api.http.host}:{api.http.port}\r\n"
                f"Authorization: {api.headers('alice')['Authorization']}\r\n"
                f"Content-Type: {MULTIPART}\r\n"
                f"Content-Length: {2 * MAX_BYTES}\r\n\r\n"
            ).encode()
            + part_head()
            + generated_bytes(BLOCK)
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), DEADLINE_SECONDS)
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.split()[1] == b"413"
    assert await db.attachments.count_documents({}) == 0


SMALL_INTERRUPTED = 100_000  # less than the first batch of chunks (4 x 255 KiB) the store writes
LARGE_INTERRUPTED = 2 * BLOCK  # two batches of chunks are stored before the client is gone


async def interrupted_upload(api: Api, db: Any, how: str, sent: int) -> str:
    """Start an upload announcing 20 MiB, send its first `sent` bytes, wait until the server is
    storing it, then go away as `how` says; answers the upload's id."""
    head = part_head()
    length = len(head) + 20 * BLOCK + len(PART_TAIL)
    blocks = [generated_bytes(sent)]
    if how == "client-body-fails":
        seen: dict[str, str] = {}

        async def failing_body() -> AsyncIterator[bytes]:
            yield head
            yield blocks[0]
            seen["id"] = await wait_for_upload_in_progress(db, with_chunks=sent > 4 * CHUNK)
            raise ConnectionAbortedError("the user closed the tab")

        with pytest.raises(ClientError):
            await api.http.post(
                "/attachments",
                data=failing_body(),
                headers={
                    **api.headers("alice"),
                    "Content-Type": MULTIPART,
                    "Content-Length": str(length),
                },
            )
        return seen["id"]
    _, writer = await asyncio.open_connection(api.http.host, api.http.port)
    request = (
        "POST /attachments HTTP/1.1\r\n"
        f"Host: {api.http.host}:{api.http.port}\r\n"
        f"Authorization: {api.headers('alice')['Authorization']}\r\n"
        f"Content-Type: {MULTIPART}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    writer.write(request.encode() + head + blocks[0])
    await writer.drain()
    attachment_id = await wait_for_upload_in_progress(db, with_chunks=sent > 4 * CHUNK)
    if how == "socket-reset":
        writer.transport.abort()
    else:
        writer.close()
    await writer.wait_closed()
    return attachment_id


@pytest.mark.parametrize("how", ["socket-closed", "socket-reset", "client-body-fails"])
async def test_upload_interrupted_by_the_client_leaves_nothing_behind(api, db, how):
    attachment_id = await interrupted_upload(api, db, how, LARGE_INTERRUPTED)

    async def nothing_left() -> bool:
        return (
            await db.attachments.count_documents({}) == 0
            and await stored_anything_of(db, attachment_id) == NOTHING
        )

    await wait_until(nothing_left, "the interrupted upload is removed")


async def test_upload_interrupted_before_its_first_chunks_leaves_nothing_behind(api, db):
    attachment_id = await interrupted_upload(api, db, "socket-closed", SMALL_INTERRUPTED)

    async def nothing_left() -> bool:
        return await stored_anything_of(db, attachment_id) == NOTHING

    await wait_until(nothing_left, "the interrupted upload is removed")


# -- ranges --------------------------------------------------------------------------------------

RANGE_FILE_SIZE = READ_BATCH + 1000  # three chunk boundaries and one read-batch boundary


RANGES = {  # header: (first byte, end byte exclusive)
    "bytes=0-9": (0, 10),
    "bytes=10-": (10, RANGE_FILE_SIZE),
    "bytes=-5": (RANGE_FILE_SIZE - 5, RANGE_FILE_SIZE),
    f"bytes={CHUNK - 7}-{CHUNK + 6}": (CHUNK - 7, CHUNK + 7),  # across a chunk boundary
    f"bytes={CHUNK - 1}-{3 * CHUNK}": (CHUNK - 1, 3 * CHUNK + 1),  # across two
    f"bytes={CHUNK}-{CHUNK}": (CHUNK, CHUNK + 1),  # the first byte of a chunk
    f"bytes={READ_BATCH - 3}-{READ_BATCH + 2}": (READ_BATCH - 3, READ_BATCH + 3),  # a read batch
    f"bytes=100-{RANGE_FILE_SIZE + 50}": (100, RANGE_FILE_SIZE),  # an end past the file
}


async def test_satisfiable_range_answers_206_with_exactly_those_bytes(api):
    data = generated_bytes(RANGE_FILE_SIZE)
    answer = await uploaded(api, "alice", data)

    outcomes = {}
    for header in RANGES:
        response, body = await fetch(
            api, f"/attachments/{answer['id']}", "alice", headers={"Range": header}
        )
        outcomes[header] = (
            response.status,
            response.headers.get("Content-Range"),
            response.headers.get("Content-Length"),
            sha256(body),
        )

    assert outcomes == {
        header: (
            206,
            f"bytes {start}-{end - 1}/{RANGE_FILE_SIZE}",
            str(end - start),
            sha256(data[start:end]),
        )
        for header, (start, end) in RANGES.items()
    }


async def test_range_past_the_end_answers_416_with_the_size(api):
    answer = await uploaded(api, "alice", generated_bytes(1234))

    response, _ = await fetch(
        api, f"/attachments/{answer['id']}", "alice", headers={"Range": "bytes=999999999-"}
    )
    assert response.status == 416
    assert response.headers["Content-Range"] == "bytes */1234"


async def test_download_without_range_advertises_range_support(api):
    answer = await uploaded(api, "alice", generated_bytes(100))

    response, _ = await fetch(api, f"/attachments/{answer['id']}", "alice")
    assert response.status == 200
    assert response.headers["Accept-Ranges"] == "bytes"


# -- download headers ----------------------------------------------------------------------------


async def test_download_headers_name_a_safe_attachment_with_the_stored_type(api):
    answer = await uploaded(api, "alice", PDF, filename="Relevé d'été.pdf", content_type="x/y")

    response, body = await fetch(api, f"/attachments/{answer['id']}", "alice")
    assert response.status == 200
    assert body == PDF
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="Releve d\'ete.pdf"; '
        "filename*=UTF-8''Relev%C3%A9%20d%27%C3%A9t%C3%A9.pdf"
    )
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Length"] == str(len(PDF))


async def test_quotes_in_a_filename_cannot_break_out_of_content_disposition(api):
    answer = await uploaded(api, "alice", b"x", filename='a%22; filename="evil.html')

    response, _ = await fetch(api, f"/attachments/{answer['id']}", "alice")
    # Exactly one quoted plain name, then the percent-encoded exact one: nothing breaks out.
    assert SAFE_DISPOSITION.fullmatch(response.headers["Content-Disposition"])


# -- filenames -----------------------------------------------------------------------------------


PATHS = {  # as sent: as stored
    "../../etc/passwd": "passwd",
    "..%2F..%2Fetc%2Fpasswd": "passwd",
    "C:\\\\Users\\\\bob\\\\invoice.pdf": "invoice.pdf",  # backslashes as quoted-pairs
    "C%3A%5CUsers%5Cbob%5Cinvoice.pdf": "invoice.pdf",  # percent-encoded, as aiohttp sends it
    "C:\\Users\\bob\\Desktop\\invoice.pdf": "invoice.pdf",  # raw, as legacy browsers send it
}


async def test_filename_loses_its_path_parts(api):
    stored = {
        sent: (await uploaded(api, "alice", b"hello", filename=sent))["filename"] for sent in PATHS
    }
    assert stored == PATHS


async def test_filename_loses_the_right_to_left_override(api):
    # "invoice\u202efdp.exe" displays as "invoiceexe.pdf": the override must go.
    answer = await uploaded(api, "alice", b"MZ", filename="invoice\u202efdp.exe")
    assert answer["filename"] == "invoicefdp.exe"


async def test_filename_loses_zero_width_and_other_format_characters(api):
    # Issue 20: U+2060, U+061C and tag characters were kept (invisible in a file list).
    sent = "re\u200bport\u2060\ufeff\u061c\u00ad\U000e0041.pdf"
    answer = await uploaded(api, "alice", b"%PDF-1.4", filename=sent)
    assert answer["filename"] == "report.pdf"


async def test_filename_loses_its_control_characters(api):
    # Browsers percent-encode what cannot stand in the header; aiohttp encodes everything.
    answer = await uploaded(api, "alice", b"hello", filename="re%00po%0D%0Art%7F%1B.txt")
    assert answer["filename"] == "report.txt"


async def test_long_filename_is_bounded_and_keeps_its_extension(api):
    answer = await uploaded(api, "alice", PDF, filename="a" * 496 + ".pdf")
    name = answer["filename"]
    assert len(name.encode()) <= 255  # what every common file system accepts
    assert name.endswith(".pdf")
    assert set(name[: -len(".pdf")]) == {"a"}


async def test_empty_filename_becomes_attachment(api):
    sent = ["", "   ", "../", "\u202e"]
    stored = [(await uploaded(api, "alice", b"hello", filename=name))["filename"] for name in sent]
    assert stored == ["attachment"] * len(sent)


async def test_utf8_filename_is_kept(api):
    answer = await uploaded(
        api, "alice", b"hello", filename="Bilan 2025 \u2013 soci\u00e9t\u00e9.txt"
    )
    assert answer["filename"] == "Bilan 2025 \u2013 soci\u00e9t\u00e9.txt"


# -- content types -------------------------------------------------------------------------------


SNIFFED = {  # case: (bytes, type the client claims, type served)
    "png sent as html": (PNG_1X1, "text/html", "image/png"),
    "html sent as png": (HTML, "image/png", "text/plain"),
    "svg sent as png": (SVG, "image/png", "text/plain"),
    "svg sent as svg": (SVG, "image/svg+xml", "text/plain"),
    "pdf sent as html": (PDF, "text/html", "application/pdf"),
    "random bytes sent as jpeg": (
        random.Random(7).randbytes(4096),
        "image/jpeg",
        "application/octet-stream",
    ),
}


async def test_content_type_is_sniffed_from_the_bytes_not_the_client(api):
    outcomes = {}
    for case, (data, claimed, _) in SNIFFED.items():
        answer = await uploaded(api, "alice", data, content_type=claimed)
        response, body = await fetch(api, f"/attachments/{answer['id']}", "alice")
        outcomes[case] = (answer["contentType"], response.headers["Content-Type"], body == data)

    assert outcomes == {case: (served, served, True) for case, (_, _, served) in SNIFFED.items()}


# -- refused uploads -----------------------------------------------------------------------------


async def test_upload_that_is_not_multipart_is_refused_with_415(api, db):
    response = await api.http.post(
        "/attachments",
        data=b"just bytes",
        headers={**api.headers("alice"), "Content-Type": "application/octet-stream"},
    )
    assert response.status == 415
    assert (await response.json())["error"]["code"] == "BAD_USER_INPUT"
    assert await db.attachments.count_documents({}) == 0


async def test_upload_whose_part_is_not_named_file_is_refused_with_400(api, db):
    response = await upload(api, "alice", b"hello", name="document")
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "BAD_USER_INPUT"
    assert await db.attachments.count_documents({}) == 0


async def test_upload_with_a_second_part_is_refused_and_nothing_is_kept(api, db):
    body = (
        part_head("a.txt")
        + b"first"
        + f"\r\n--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="b.txt"\r\n\r\nsecond'
        + PART_TAIL
    )
    response = await api.http.post(
        "/attachments", data=body, headers={**api.headers("alice"), "Content-Type": MULTIPART}
    )
    assert response.status == 400
    assert await db.attachments.count_documents({}) == 0


FILE_HEAD = b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'


MALFORMED = {  # case: (Content-Type, body)
    "no boundary": ("multipart/form-data", FILE_HEAD + b"x\r\n--bnd--\r\n"),
    "no opening boundary": ("multipart/form-data; boundary=bnd", b"no boundary"),
    "empty body": ("multipart/form-data; boundary=bnd", b""),
    "no part at all": ("multipart/form-data; boundary=bnd", b"--bnd--\r\n"),
    "part without a name": (
        "multipart/form-data; boundary=bnd",
        b"--bnd\r\nContent-Type: text/plain\r\n\r\nx\r\n--bnd--\r\n",
    ),
    "control character in a part header": (
        "multipart/form-data; boundary=bnd",
        b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="a\x01.txt"'
        b"\r\n\r\nx\r\n--bnd--\r\n",
    ),
    "cut short after stored chunks": (
        "multipart/form-data; boundary=bnd",
        FILE_HEAD + generated_bytes(2 * BLOCK),
    ),
    "cut short before any chunk": ("multipart/form-data; boundary=bnd", FILE_HEAD + b"hello"),
}


async def test_malformed_multipart_body_is_refused_with_400_and_nothing_is_kept(api, db):
    outcomes = {}
    for case, (content_type, body) in MALFORMED.items():
        response = await api.http.post(
            "/attachments",
            data=streamed(b"", [body], b""),
            headers={
                **api.headers("alice"),
                "Content-Type": content_type,
                "Content-Length": str(len(body)),
            },
        )
        answer = await response.json()
        outcomes[case] = (response.status, answer["error"]["code"])

    assert outcomes == {case: (400, "BAD_USER_INPUT") for case in MALFORMED}
    assert await db.attachments.count_documents({}) == 0


async def test_upload_without_a_valid_token_is_refused_with_401(api, db):
    outcomes = {}
    for case, headers in {
        "no header": {},
        "bad token": {"Authorization": "Bearer not-a-token"},
        "expired token": {"Authorization": f"Bearer {api.token('alice', ttl_seconds=-60)}"},
        "not bearer": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    }.items():
        response = await upload(api, None, b"hello", headers=headers)
        outcomes[case] = (response.status, (await response.json())["error"]["code"])

    assert set(outcomes.values()) == {(401, "UNAUTHENTICATED")}, outcomes
    assert await db.attachments.count_documents({}) == 0


async def test_upload_answers_201_with_id_filename_type_and_size(api):
    response = await upload(api, "alice", PDF, filename="bilan.pdf")
    assert response.status == 201
    answer = await response.json()
    assert set(answer) == {"id", "filename", "contentType", "size"}
    assert answer["filename"] == "bilan.pdf"
    assert answer["contentType"] == "application/pdf"
    assert answer["size"] == len(PDF)


async def test_download_without_credentials_is_refused_with_401(api):
    answer = await uploaded(api, "alice", b"hello")
    response, _ = await fetch(api, f"/attachments/{answer['id']}")
    assert response.status == 401


# -- attaching to messages -----------------------------------------------------------------------


def company_conversation(api: Api, attachment_ids: list[str], body: str = "<p>Hi</p>") -> dict:
    data = create_input(api, "COMPANY", ["bob"], company="bakery", body=body)
    data["attachmentIds"] = attachment_ids
    return data


async def create_with(api: Api, user: str, attachment_ids: list[str], **kwargs: Any) -> dict:
    data = await api.gql(
        CREATE_WITH_ATTACHMENTS,
        {"input": company_conversation(api, attachment_ids, **kwargs)},
        as_=user,
    )
    return data["createConversation"]


async def test_attachments_of_a_new_conversation_appear_on_its_first_message(api):
    pdf = await uploaded(api, "alice", PDF, filename="bilan.pdf")
    png = await uploaded(api, "alice", PNG_1X1, filename="logo.png")

    conversation = await create_with(api, "alice", [pdf["id"], png["id"]])
    attachments = conversation["lastMessage"]["attachments"]
    assert [{k: a[k] for k in ("id", "filename", "contentType", "size")} for a in attachments] == [
        {
            "id": pdf["id"],
            "filename": "bilan.pdf",
            "contentType": "application/pdf",
            "size": len(PDF),
        },
        {"id": png["id"], "filename": "logo.png", "contentType": "image/png", "size": len(PNG_1X1)},
    ]


async def test_signed_url_downloads_the_exact_bytes_without_an_authorization_header(api):
    data = generated_bytes(CHUNK + 17, seed=3)
    upload_answer = await uploaded(api, "alice", data, filename="ledger.bin")
    conversation = await create_with(api, "alice", [upload_answer["id"]])
    (attachment,) = conversation["lastMessage"]["attachments"]

    response, body = await fetch(api, attachment["url"])
    assert response.status == 200
    assert sha256(body) == sha256(data)
    assert response.headers["Content-Disposition"].startswith('attachment; filename="ledger.bin"')


async def test_signed_url_signature_is_not_written_to_the_access_log(api, caplog):
    # Issue 20: the access log held whole signed links, usable by anyone who reads the log.
    caplog.set_level(logging.INFO, logger="aiohttp.access")  # before connections are opened
    upload_answer = await uploaded(api, "alice", b"secret ledger", filename="ledger.txt")
    conversation = await create_with(api, "alice", [upload_answer["id"]])
    (attachment,) = conversation["lastMessage"]["attachments"]
    signature = parse_qs(urlsplit(attachment["url"]).query)["sig"][0]
    path = f"/attachments/{attachment['id']}"
    response, _ = await fetch(api, attachment["url"])
    assert response.status == 200
    for _ in range(100):  # the server logs the request once it has answered it
        lines = [r for r in caplog.records if path in r.getMessage()]
        if lines:
            break
        await asyncio.sleep(0.01)
    (line,) = lines
    assert signature not in line.getMessage()
    assert "sig=REDACTED" in line.getMessage()
    assert signature not in str(vars(line))


async def test_attachments_of_a_reply_appear_on_the_message(api):
    conversation = await create_with(api, "alice", [])
    data = generated_bytes(5000, seed=4)
    answer = await uploaded(api, "bob", data, filename="facture.txt")

    message = (
        await api.gql(
            SEND_WITH_ATTACHMENTS,
            {
                "input": {
                    "conversationId": conversation["id"],
                    "body": "<p>Here it is</p>",
                    "attachmentIds": [answer["id"]],
                }
            },
            as_="bob",
        )
    )["sendMessage"]
    (attachment,) = message["attachments"]
    assert {k: attachment[k] for k in ("id", "filename", "contentType", "size")} == {
        "id": answer["id"],
        "filename": "facture.txt",
        "contentType": answer["contentType"],
        "size": 5000,
    }
    response, body = await fetch(api, attachment["url"])
    assert response.status == 200
    assert body == data


async def test_a_message_with_more_than_10_attachments_is_refused(api):
    ids = [(await uploaded(api, "alice", f"file {i}".encode()))["id"] for i in range(11)]

    body = await api.raw(
        CREATE_WITH_ATTACHMENTS, {"input": company_conversation(api, ids)}, as_="alice"
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # Nothing was taken: ten of them still go on a message.
    conversation = await create_with(api, "alice", ids[:10])
    assert [a["id"] for a in conversation["lastMessage"]["attachments"]] == ids[:10]


async def test_another_users_upload_cannot_be_attached(api):
    bobs = await uploaded(api, "bob", b"bob's file")

    code = await api.error_code(
        CREATE_WITH_ATTACHMENTS, {"input": company_conversation(api, [bobs["id"]])}, as_="alice"
    )
    assert code == "NOT_FOUND"
    # Still bob's to attach.
    conversation = await api.gql(
        CREATE_WITH_ATTACHMENTS,
        {
            "input": {
                **create_input(api, "COMPANY", ["alice"], company="bakery"),
                "attachmentIds": [bobs["id"]],
            }
        },
        as_="bob",
    )
    assert [a["id"] for a in conversation["createConversation"]["lastMessage"]["attachments"]] == [
        bobs["id"]
    ]


async def test_an_attached_upload_cannot_be_attached_to_a_second_message(api):
    answer = await uploaded(api, "alice", b"once")
    first = await create_with(api, "alice", [answer["id"]])

    code = await api.error_code(
        SEND_WITH_ATTACHMENTS,
        {
            "input": {
                "conversationId": first["id"],
                "body": "<p>again</p>",
                "attachmentIds": [answer["id"]],
            }
        },
        as_="alice",
    )
    assert code == "NOT_FOUND"
    code = await api.error_code(
        CREATE_WITH_ATTACHMENTS, {"input": company_conversation(api, [answer["id"]])}, as_="alice"
    )
    assert code == "NOT_FOUND"


async def test_a_failed_attach_takes_none_of_the_uploads(api):
    mine = await uploaded(api, "alice", b"mine")
    bobs = await uploaded(api, "bob", b"bob's")

    code = await api.error_code(
        CREATE_WITH_ATTACHMENTS,
        {"input": company_conversation(api, [mine["id"], bobs["id"]])},
        as_="alice",
    )
    assert code == "NOT_FOUND"
    conversation = await create_with(api, "alice", [mine["id"]])
    assert [a["id"] for a in conversation["lastMessage"]["attachments"]] == [mine["id"]]


async def test_two_messages_racing_for_one_upload_get_it_once(api):
    answer = await uploaded(api, "alice", b"contested")
    conversation = await create_with(api, "alice", [])

    def reply(text: str) -> dict[str, Any]:
        return {
            "input": {
                "conversationId": conversation["id"],
                "body": f"<p>{text}</p>",
                "attachmentIds": [answer["id"]],
            }
        }

    first, second = await asyncio.gather(
        api.raw(SEND_WITH_ATTACHMENTS, reply("one"), as_="alice"),
        api.raw(SEND_WITH_ATTACHMENTS, reply("two"), as_="alice"),
    )
    outcomes = sorted(
        "attached" if body.get("data") else body["errors"][0]["extensions"]["code"]
        for body in (first, second)
    )
    assert outcomes == ["NOT_FOUND", "attached"]


async def test_a_message_with_an_empty_body_and_one_attachment_is_accepted(api):
    answer = await uploaded(api, "alice", PDF, filename="bilan.pdf")

    conversation = await create_with(api, "alice", [answer["id"]], body="")
    message = conversation["lastMessage"]
    assert [a["id"] for a in message["attachments"]] == [answer["id"]]


async def test_other_viewers_get_their_own_working_signed_url(api):
    data = b"for the whole bakery team"
    answer = await uploaded(api, "alice", data)
    conversation = await create_with(api, "alice", [answer["id"]])

    seen = await api.gql(LAST_ATTACHMENTS, {"id": conversation["id"]}, as_="bob")
    (attachment,) = seen["conversation"]["lastMessage"]["attachments"]
    assert parse_qs(urlsplit(attachment["url"]).query)["u"] == [user_id(api, "bob")]
    response, body = await fetch(api, attachment["url"])
    assert (response.status, body) == (200, data)


# -- signed urls ---------------------------------------------------------------------------------


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


async def signed_url_of_new_attachment(api: Api) -> tuple[str, str]:
    """(conversation id, alice's signed url) of a new attachment on a COMPANY conversation."""
    answer = await uploaded(api, "alice", b"signed")
    conversation = await create_with(api, "alice", [answer["id"]])
    return conversation["id"], conversation["lastMessage"]["attachments"][0]["url"]


async def test_tampered_signed_url_is_refused_with_401(api):
    _, url = await signed_url_of_new_attachment(api)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    other = await uploaded(api, "alice", b"other")
    await create_with(api, "alice", [other["id"]])
    flipped = ("0" if query["sig"][0] != "0" else "1") + query["sig"][1:]
    tampered = {
        "signature": with_query(url, sig=flipped),
        "user": with_query(url, u=user_id(api, "bob")),
        "expiry": with_query(url, exp=str(int(query["exp"]) + 3600)),
        "attachment id": urlsplit(url)._replace(path=f"/attachments/{other['id']}").geturl(),
        "no signature": urlsplit(url)
        ._replace(query=urlencode({"u": query["u"], "exp": query["exp"]}))
        .geturl(),
    }

    statuses = {case: (await fetch(api, link))[0].status for case, link in tampered.items()}
    assert statuses == dict.fromkeys(tampered, 401)
    assert (await fetch(api, url))[0].status == 200  # the genuine link works


async def test_expired_signed_url_is_refused_with_401(api, settings):
    _, url = await signed_url_of_new_attachment(api)
    parts = urlsplit(url)
    attachment_id = parts.path.rsplit("/", 1)[1]
    # The same link, signed with the server's key, but expired ten seconds ago.
    signer = UrlSigner(api.tokens.url_signing_key)
    expired = signer.sign(
        f"{parts.scheme}://{parts.netloc}", attachment_id, user_id(api, "alice"), ttl_seconds=-10
    )

    response, _ = await fetch(api, expired)
    assert response.status == 401
    response, _ = await fetch(api, url)
    assert response.status == 200  # the fresh link of the same attachment works


async def test_signed_url_stops_working_when_its_user_loses_access(api):
    # paul creates it with carla: alice reads it only through her favorite bakery.
    answer = await uploaded(api, "paul", b"quarterly figures")
    data = create_input(api, "COMPANY", ["carla"], company="bakery")
    data["attachmentIds"] = [answer["id"]]
    conversation = (await api.gql(CREATE_WITH_ATTACHMENTS, {"input": data}, as_="paul"))[
        "createConversation"
    ]
    seen = await api.gql(LAST_ATTACHMENTS, {"id": conversation["id"]}, as_="alice")
    url = seen["conversation"]["lastMessage"]["attachments"][0]["url"]
    response, _ = await fetch(api, url)
    assert response.status == 200

    await api.gql(REMOVE_FAVORITE, {"id": company_id(api, "bakery")}, as_="alice")

    response, _ = await fetch(api, url)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "NOT_FOUND"


# -- expiry of pending uploads -------------------------------------------------------------------


async def test_uploads_pending_for_more_than_24_hours_are_removed(
    api, db, aiohttp_client, settings
):
    fast = Settings(
        mongodb_uri=settings.mongodb_uri,
        data_dir=settings.data_dir,
        jwt_secret=settings.jwt_secret,
        attachment_cleanup_interval_seconds=0.05,
    )
    fast_api = Api(http=await aiohttp_client(init_app(fast)), tokens=api.tokens, ids=api.ids)
    old = await uploaded(fast_api, "alice", size=3 * CHUNK)
    fresh = await uploaded(fast_api, "alice", b"fresh")
    kept = await uploaded(fast_api, "alice", b"attached long ago")
    await create_with(fast_api, "alice", [kept["id"]])
    day_and_hour_ago = int(time.time() * 1000) - 25 * 3600 * 1000
    for attachment_id in (old["id"], kept["id"]):
        await db.attachments.update_one(
            {"_id": attachment_id}, {"$set": {"created_ms": day_and_hour_ago}}
        )

    async def old_one_is_gone() -> bool:
        return await stored_anything_of(db, old["id"]) == NOTHING

    await wait_until(old_one_is_gone, "the expired upload is removed")
    response, _ = await fetch(fast_api, f"/attachments/{old['id']}", "alice")
    assert response.status == 404
    response, body = await fetch(fast_api, f"/attachments/{fresh['id']}", "alice")
    assert (response.status, body) == (200, b"fresh")
    response, body = await fetch(fast_api, f"/attachments/{kept['id']}", "alice")
    assert (response.status, body) == (200, b"attached long ago")


async def test_uploads_cut_off_by_a_server_crash_are_removed_after_24_hours(
    api, db, aiohttp_client, settings
):
    fast = Settings(
        mongodb_uri=settings.mongodb_uri,
        data_dir=settings.data_dir,
        jwt_secret=settings.jwt_secret,
        attachment_cleanup_interval_seconds=0.05,
    )
    day_and_hour_ago = int(time.time() * 1000) - 25 * 3600 * 1000
    # What a server killed in the middle of two uploads leaves: their records, still
    # `uploading` (the store writes the record before the first chunk), one with no chunk
    # written yet and one with some chunks.
    crashed = [str(ObjectId()), str(ObjectId())]
    for attachment_id in crashed:
        await db.attachments.insert_one(
            {
                "_id": attachment_id,
                "firm_id": api.ids["firms"]["acme"],
                "uploader_id": user_id(api, "alice"),
                "filename": "cut-off.bin",
                "content_type": None,
                "size": 0,
                "state": "uploading",
                "created_ms": day_and_hour_ago,
                "message_id": None,
                "conversation_id": None,
            }
        )
    await db["fs.chunks"].insert_many(
        [{"files_id": crashed[1], "n": n, "data": Binary(b"x" * CHUNK)} for n in range(2)]
    )
    fast_api = Api(http=await aiohttp_client(init_app(fast)), tokens=api.tokens, ids=api.ids)
    expired = await uploaded(fast_api, "alice", b"forgotten")
    await db.attachments.update_one(
        {"_id": expired["id"]}, {"$set": {"created_ms": day_and_hour_ago}}
    )

    async def all_gone() -> bool:
        for attachment_id in [*crashed, expired["id"]]:
            if await stored_anything_of(db, attachment_id) != NOTHING:
                return False
        return True

    await wait_until(all_gone, "the cut-off uploads and the expired one are removed")


# -- claims whose message was never stored -------------------------------------------------------


async def test_an_upload_claimed_by_a_message_never_stored_is_released_and_can_be_sent_again(
    api, db, aiohttp_client, settings
):
    fast = settings.model_copy(update={"attachment_cleanup_interval_seconds": 0.05})
    fast_api = Api(http=await aiohttp_client(init_app(fast)), tokens=api.tokens, ids=api.ids)
    answer = await uploaded(fast_api, "alice", b"claimed, then the server died")
    # What a process that died between the claim and the message leaves: the upload claimed
    # by a message id that was never stored, twenty minutes ago.
    store = fast_api.http.app[SERVICES].attachments
    alice = await fast_api.http.app[SERVICES].directory.user_by_id(user_id(api, "alice"))
    assert await store.claim(alice, [answer["id"]], str(ObjectId()), str(ObjectId()))
    twenty_minutes_ago = int(time.time() * 1000) - 20 * 60 * 1000
    await db.attachments.update_one(
        {"_id": answer["id"]}, {"$set": {"claimed_ms": twenty_minutes_ago}}
    )

    async def released() -> bool:
        doc = await db.attachments.find_one({"_id": answer["id"]})
        return doc["state"] == "pending" and doc["message_id"] is None

    await wait_until(released, "the cleanup releases the claim of a message never stored")
    conversation = await create_with(fast_api, "alice", [answer["id"]])  # the client's retry
    (attached,) = conversation["lastMessage"]["attachments"]
    assert attached["id"] == answer["id"]
    response, body = await fetch(fast_api, attached["url"])
    assert (response.status, body) == (200, b"claimed, then the server died")


# -- links across machines ----------------------------------------------------------------------


async def test_with_rs256_tokens_machines_sharing_the_link_secret_accept_each_others_links(
    api, aiohttp_client, settings, tmp_path
):
    identity_provider = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        identity_provider.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    def machine(name: str) -> Settings:
        return settings.model_copy(
            update={
                "jwt_secret": None,
                "jwt_public_key": public_pem,
                "data_dir": tmp_path / name,  # each machine its own disk
                "link_secret": SecretStr("link-secret-shared-by-every-machine-0123456789"),
            }
        )

    first = await aiohttp_client(init_app(machine("first")))
    second = await aiohttp_client(init_app(machine("second")))
    answer = await uploaded(api, "alice", b"behind a load balancer")
    conversation = await create_with(api, "alice", [answer["id"]])
    now = int(time.time())
    token = jwt.encode(
        {"sub": user_id(api, "alice"), "iat": now, "exp": now + 600}, identity_provider, "RS256"
    )
    response = await first.post(
        "/graphql",
        json={"query": LAST_ATTACHMENTS, "variables": {"id": conversation["id"]}},
        headers={"Authorization": f"Bearer {token}"},
    )
    url = (await response.json())["data"]["conversation"]["lastMessage"]["attachments"][0]["url"]
    parts = urlsplit(url)
    download = await second.get(f"{parts.path}?{parts.query}")  # the other machine
    assert (download.status, await download.read()) == (200, b"behind a load balancer")
