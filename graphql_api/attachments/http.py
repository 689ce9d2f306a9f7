"""`POST /attachments` and `GET /attachments/{id}` (SPEC §7).

Uploads stream the one `file` part into GridFS as it arrives, counting bytes (aiohttp's
`client_max_size` does not apply to a streamed multipart read) and refusing the 104,857,601st byte
with 413, after removing everything stored of it. Downloads answer only viewers the access policy
lets read the attachment's conversation, or the uploader of a still-pending upload, and answer the
same 404 for unknown and forbidden ids, and leave an audit record (SPEC §17) before serving a
conversation's file. Authentication is the bearer header, or the signed link of
`Attachment.url` (never a cookie).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from graphql_api.attachments.files import (
    SNIFF_BYTES,
    content_disposition,
    sanitize_filename,
    sniff_content_type,
)
from graphql_api.attachments.store import Attachment
from graphql_api.compliance.audit import record_download
from graphql_api.context import authenticate
from graphql_api.directory.models import User
from graphql_api.errors import (
    ApiError,
    BadUserInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    UnsupportedMediaType,
    error_response,
)
from graphql_api.ids import is_id
from graphql_api.keys import SERVICES
from graphql_api.policy import can_download
from graphql_api.services import Services

log = logging.getLogger(__name__)

MAX_ATTACHMENT_BYTES = 104_857_600  # 100 MiB
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and part headers around the file
READ_CHUNK_BYTES = 256 * 1024


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


# What aiohttp raises for a body that is not valid multipart or ends early.
MALFORMED = (ValueError, HttpProcessingError)

_QUOTED_FILENAME = re.compile(r'filename="([^"]*)"', re.IGNORECASE)


def _malformed() -> web.Response:
    return error_response(BadUserInput("the multipart body is malformed or incomplete"))


def _raw_filename(part: BodyPartReader) -> str | None:
    """The part's filename with its backslashes: aiohttp unescapes the quoted string, which
    turns the Windows path `C:\\Users\\bob\\a.pdf` that old browsers send into `C:Usersboba.pdf`.
    RFC 5987 `filename*` is decoded by aiohttp, correctly."""
    disposition = part.headers.get("Content-Disposition", "")
    if "filename*" not in disposition.lower():
        match = _QUOTED_FILENAME.search(disposition)
        if match:
            return match.group(1)
    return part.filename


def _too_large() -> web.Response:
    return error_response(
        PayloadTooLarge(f"attachments are at most {MAX_ATTACHMENT_BYTES} bytes (100 MiB)"),
        Connection="close",
    )


async def upload(request: web.Request) -> web.Response:
    services = _services(request)
    try:
        viewer = await authenticate(services, request.headers.get("Authorization"))
    except Unauthenticated as error:
        return error_response(error)
    wait = services.limiter.retry_after(viewer.id, "upload")
    if wait > 0:
        seconds = max(math.ceil(wait), 1)
        return error_response(
            RateLimited(f"too many uploads: try again in {seconds} s"),
            **{"Retry-After": str(seconds)},
        )
    if request.content_type != "multipart/form-data":
        return error_response(
            UnsupportedMediaType("send multipart/form-data with one part named 'file'")
        )
    declared = request.content_length
    if declared is not None and declared > MAX_ATTACHMENT_BYTES + MULTIPART_OVERHEAD_BYTES:
        return _too_large()
    try:
        reader = await request.multipart()
        part = await reader.next()
    except MALFORMED:
        return _malformed()
    if not isinstance(part, BodyPartReader) or part.name != "file":
        return error_response(BadUserInput("send one part named 'file'"))

    store = services.attachments
    upload = await store.begin(viewer, sanitize_filename(_raw_filename(part)))
    head = bytearray()
    try:
        while chunk := await part.read_chunk(READ_CHUNK_BYTES):
            if upload.size + len(chunk) > MAX_ATTACHMENT_BYTES:
                await upload.abort()
                return _too_large()
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
            await upload.write(chunk)
        if await reader.next() is not None:
            await upload.abort()
            return error_response(BadUserInput("send exactly one part, named 'file'"))
        attachment = await upload.finish(sniff_content_type(bytes(head)))
    except MALFORMED:
        await asyncio.shield(upload.abort())
        return _malformed()
    except BaseException:
        # Client gone, malformed body or database error: leave nothing of the file behind.
        await asyncio.shield(upload.abort())
        raise
    return web.json_response(
        {
            "id": attachment.id,
            "filename": attachment.filename,
            "contentType": attachment.content_type,
            "size": attachment.size,
        },
        status=201,
    )


async def _download_viewer(request: web.Request, attachment_id: str) -> User:
    """The user a download is for: the bearer token's, or the signed link's."""
    services = _services(request)
    if "Authorization" in request.headers:
        return await authenticate(services, request.headers["Authorization"])
    user_id, expires, signature = (request.query.get(k, "") for k in ("u", "exp", "sig"))
    if not (user_id and expires and signature):
        raise Unauthenticated("send a bearer token or use the attachment's signed url")
    if not services.url_signer.verify(attachment_id, user_id, expires, signature):
        raise Unauthenticated("this download link is invalid or has expired")
    user = await services.directory.current_user(user_id) if is_id(user_id) else None
    if user is None:
        raise Unauthenticated("this download link is invalid or has expired")
    return user


async def _readable_attachment(services: Services, viewer: User, attachment_id: str) -> Attachment:
    attachment = await services.attachments.get(viewer.firm_id, attachment_id)
    if attachment is None or not await can_download(services.db, viewer, attachment):
        raise NotFound("attachment not found")
    return attachment


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) exclusive for a single satisfiable range; None to send it all.

    Raises ValueError for an unsatisfiable range (answered 416)."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # several ranges or another unit: the whole file is a valid answer
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise ValueError("unsatisfiable")
        return max(size - length, 0), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or (last and int(last) < start):
        raise ValueError("unsatisfiable")
    return start, end


async def download(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    attachment_id = request.match_info["attachment_id"]
    try:
        if not is_id(attachment_id):
            raise NotFound("attachment not found")
        viewer = await _download_viewer(request, attachment_id)
        attachment = await _readable_attachment(services, viewer, attachment_id)
    except Unauthenticated as error:
        return error_response(error)
    except ApiError:
        return error_response(NotFound("attachment not found"))

    if attachment.conversation_id is not None:  # a file of a conversation, not one's own upload
        # Before the first byte: a download whose record cannot be written is not served.
        await record_download(services.db, viewer, attachment, request.headers.get("Range"))

    size = attachment.size
    headers = {
        "Content-Type": attachment.content_type,
        "Content-Disposition": content_disposition(attachment.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
        "Accept-Ranges": "bytes",
    }
    try:
        byte_range = parse_range(request.headers.get("Range"), size)
    except ValueError:
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = byte_range or (0, size)
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    if byte_range:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response.content_length = end - start
    await response.prepare(request)
    async for data in services.attachments.read(attachment, start, end):
        await response.write(data)
    await response.write_eof()
    return response
