"""A request body that trickles in is cut off with 408 (issue 20, finding 6); a normal one is not.

A body must arrive at `body_min_rate` bytes a second or more, over each `body_timeout_seconds`.
These apps measure over 1 s (the defaults: 500 bytes a second over 20 s): the trickle below
sends a byte every 0.3 s, as the probe's one byte every 5 s, only faster. Requests go over
real sockets to the app on the test's database; waits are bounded.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.settings import Settings
from tests.conftest import Api
from tests.upload_helpers import BLOCK, MAX_BYTES, MULTIPART, PART_TAIL, part_head, uploaded

TRICKLE_EVERY_SECONDS = 0.3
ANSWER_BOUND = 15.0  # seconds: far above the 1 s deadline, far below "never"


@pytest.fixture
async def impatient(aiohttp_client, settings: Settings, ids) -> Api:
    strict = settings.model_copy(update={"body_timeout_seconds": 1.0, "body_min_rate": 500.0})
    return Api(http=await aiohttp_client(init_app(strict)), tokens=TokenService(strict), ids=ids)


def content_length(head: bytes) -> int:
    return next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )


def response_of(answer: bytes) -> tuple[bytes, bytes] | None:
    """(head, body) of one HTTP/1.1 response with a Content-Length, once it is all there."""
    head, separator, rest = answer.partition(b"\r\n\r\n")
    if not separator or len(rest) < content_length(head):
        return None
    return head, rest[: content_length(head)]


async def trickle(
    api: Api, path: str, content_type: str, body: bytes, fast: int = 0
) -> tuple[bytes, bytes]:
    """Send the headers and the first `fast` bytes of `body`, then the rest a byte at a time;
    answers (head, body) of the response."""
    reader, writer = await asyncio.open_connection(api.http.host, api.http.port)
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\n"
            f"Host: {api.http.host}:{api.http.port}\r\n"
            f"Authorization: {api.headers('alice')['Authorization']}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[:fast]
    )

    async def send_slowly() -> None:
        for byte in body[fast:]:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(TRICKLE_EVERY_SECONDS)

    sending = asyncio.create_task(send_slowly())
    answer = b""
    try:
        async with asyncio.timeout(ANSWER_BOUND):
            while (response := response_of(answer)) is None:
                piece = await reader.read(65536)
                assert piece, f"closed without an answer: {answer!r}"
                answer += piece
    finally:
        sending.cancel()
        writer.close()
    return response


SLOW = {
    "error": {
        "code": "REQUEST_TIMEOUT",
        "message": "the request body arrived too slowly: send at least 500 bytes a second "
        "(measured over 1 s)",
    }
}


async def test_a_graphql_body_trickled_a_byte_at_a_time_answers_408_and_closes(impatient):
    body = json.dumps({"query": "{ viewer { name } }"}).encode()
    head, content = await trickle(impatient, "/graphql", "application/json", body)
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"\r\nConnection: close" in head
    assert json.loads(content) == SLOW


async def test_an_upload_that_starts_fast_then_trickles_answers_408_and_keeps_nothing(
    impatient, db
):
    body = part_head() + b"x" * 200_000 + PART_TAIL
    head, content = await trickle(impatient, "/attachments", MULTIPART, body, fast=100_000)
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert json.loads(content) == SLOW
    assert await db.attachments.count_documents({}) == 0


async def test_a_body_that_keeps_arriving_after_a_pause_is_read(impatient):
    # 0.8 s of silence, then 2,000 bytes, then the last 10 after 0.8 s more: slow, but never
    # under 500 bytes (or the rest) in a second.
    reader, writer = await asyncio.open_connection(impatient.http.host, impatient.http.port)
    body = json.dumps({"query": "{ viewer { name } }", "variables": {"pad": "p" * 2000}})
    writer.write(
        (
            "POST /graphql HTTP/1.1\r\n"
            f"Host: {impatient.http.host}:{impatient.http.port}\r\n"
            f"Authorization: {impatient.headers('alice')['Authorization']}\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
    )
    await asyncio.sleep(0.8)
    writer.write(body[:-10].encode())
    await asyncio.sleep(0.8)
    writer.write(body[-10:].encode())
    answer = await asyncio.wait_for(reader.read(), ANSWER_BOUND)  # Connection: close
    writer.close()
    response = response_of(answer)
    assert response is not None, answer
    head, content = response
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(content) == {"data": {"viewer": {"name": "Alice Roy"}}}


async def test_an_upload_of_100_mib_at_normal_speed_is_not_cut_off(impatient):
    assert MAX_BYTES == 100 * BLOCK
    answer = await uploaded(impatient, "alice", size=MAX_BYTES)
    assert answer["size"] == MAX_BYTES
