"""Attachment bytes in GridFS and their metadata in `attachments`.

Bytes use the standard GridFS layout (`fs.files`, `fs.chunks`), so any GridFS tool reads them, but
chunks are written and read here rather than through PyMongo's GridFS streams: the upload stream
buffers up to 48 MB of chunks before writing them (memory must stay bounded whatever the size), and
the embedded server answers a find on `fs.chunks` with every chunk at once, which breaks the
download stream past ~45 MB (SPEC §11). Both directions work in bounded batches of chunks.

`attachments {_id, firm_id, uploader_id, filename, content_type, size, state, created_ms,
message_id, conversation_id, claimed_ms}`: `state` is `uploading` until the last chunk is
stored, then `pending` until a message claims it. A claim is two steps around the message's
write: `claimed` (with the message's id) before it, `attached` once it is stored. A claim whose
message was never stored (a failed write, a crashed process) is released back to `pending`
at once when the failure is seen, else by the cleanup once `CLAIM_GRACE_SECONDS` have passed:
no upload stays tied to a message that does not exist. The metadata document is written before
the first chunk, so a crash mid-upload leaves a record that the cleanup finds and removes with
its chunks; pending uploads older than 24 hours are removed the same way.

Claims, confirmations and releases change several documents at once, which PyMongo never
retries; each is written so that applying it twice is the same as once, and is retried once
after a fail-over (`database.retrying_once`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from bson import Binary, Int64
from pymongo.errors import OperationFailure

from graphql_api import clock
from graphql_api.database import Db, Document, retrying_once
from graphql_api.directory.models import User
from graphql_api.ids import new_id

CHUNK_SIZE = 255 * 1024  # GridFS's default chunk size
WRITE_BATCH_CHUNKS = 4  # about 1 MiB per insert
READ_BATCH_CHUNKS = 8  # about 2 MiB per find
PENDING_LIFETIME_SECONDS = 24 * 3600
CLAIM_GRACE_SECONDS = 600
"""A claim not confirmed after this long belongs to a write that failed (requests end within
the 10 s database deadline): the cleanup confirms it if its message exists, else releases it."""


class AttachmentState(enum.StrEnum):
    """Where an upload stands: bytes still arriving, waiting for a message, claimed by a
    message being written, or attached to a stored message."""

    UPLOADING = "uploading"
    PENDING = "pending"
    CLAIMED = "claimed"
    ATTACHED = "attached"


UPLOADING = AttachmentState.UPLOADING.value
PENDING = AttachmentState.PENDING.value
CLAIMED = AttachmentState.CLAIMED.value
ATTACHED = AttachmentState.ATTACHED.value
"""States in which an upload is read through its conversation: a claimed upload's message may
already be delivered to subscribers before the claim is confirmed."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Attachment:
    id: str
    firm_id: str
    uploader_id: str
    filename: str
    content_type: str
    size: int
    state: AttachmentState
    message_id: str | None
    conversation_id: str | None

    @classmethod
    def from_doc(cls, doc: Document) -> Attachment:
        return cls(
            id=doc["_id"],
            firm_id=doc["firm_id"],
            uploader_id=doc["uploader_id"],
            filename=doc["filename"],
            content_type=doc.get("content_type") or "application/octet-stream",
            size=int(doc.get("size", 0)),
            state=AttachmentState(doc["state"]),
            message_id=doc.get("message_id"),
            conversation_id=doc.get("conversation_id"),
        )


class Upload:
    """One file being written: chunks go out in small batches as bytes arrive."""

    def __init__(self, store: AttachmentStore, attachment_id: str) -> None:
        self.store = store
        self.id = attachment_id
        self.size = 0
        self._buffer = bytearray()
        self._pending: list[Document] = []
        self._next_n = 0

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= CHUNK_SIZE:
            self._queue(bytes(self._buffer[:CHUNK_SIZE]))
            del self._buffer[:CHUNK_SIZE]
            if len(self._pending) >= WRITE_BATCH_CHUNKS:
                await self._flush()

    def _queue(self, data: bytes) -> None:
        self._pending.append({"files_id": self.id, "n": self._next_n, "data": Binary(data)})
        self._next_n += 1

    async def _flush(self) -> None:
        if self._pending:
            await self.store.db["fs.chunks"].insert_many(self._pending, ordered=True)
            self._pending = []

    async def finish(self, content_type: str) -> Attachment:
        if self._buffer:
            self._queue(bytes(self._buffer))
            self._buffer.clear()
        await self._flush()
        doc = await self.store.finish(self.id, self.size, content_type)
        return Attachment.from_doc(doc)

    async def abort(self) -> None:
        self._pending = []
        self._buffer.clear()
        await self.store.delete([self.id])


class AttachmentStore:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def begin(self, uploader: User, filename: str) -> Upload:
        attachment_id = new_id()
        await self.db.attachments.insert_one(
            {
                "_id": attachment_id,
                "firm_id": uploader.firm_id,
                "uploader_id": uploader.id,
                "filename": filename,
                "content_type": None,
                "size": 0,
                "state": UPLOADING,
                "created_ms": clock.now_ms(),
                "message_id": None,
                "conversation_id": None,
            }
        )
        return Upload(self, attachment_id)

    async def finish(self, attachment_id: str, size: int, content_type: str) -> Document:
        doc = await self.db.attachments.find_one({"_id": attachment_id})
        assert doc is not None
        await self.db["fs.files"].insert_one(
            {
                "_id": attachment_id,
                "length": Int64(size),
                "chunkSize": CHUNK_SIZE,
                "uploadDate": datetime.now(UTC),
                "filename": doc["filename"],
                "metadata": {"contentType": content_type},
            }
        )
        update = {"size": size, "content_type": content_type, "state": PENDING}
        await self.db.attachments.update_one({"_id": attachment_id}, {"$set": update})
        return {**doc, **update}

    async def get(self, firm_id: str, attachment_id: str) -> Attachment | None:
        doc = await self.db.attachments.find_one({"_id": attachment_id, "firm_id": firm_id})
        return Attachment.from_doc(doc) if doc else None

    async def by_ids(self, ids: Iterable[str]) -> dict[str, Attachment]:
        docs = await self.db.attachments.find({"_id": {"$in": list(ids)}}).to_list()
        return {doc["_id"]: Attachment.from_doc(doc) for doc in docs}

    async def claim(
        self, uploader: User, ids: list[str], message_id: str, conversation_id: str
    ) -> bool:
        """Claim the uploader's pending uploads for a message about to be written; all of them
        or none. Safe to repeat: uploads this message already claimed count as claimed."""
        if not ids:
            return True
        query = {
            "_id": {"$in": ids},
            "uploader_id": uploader.id,
            "firm_id": uploader.firm_id,
            "state": {"$in": [PENDING, CLAIMED]},
            "message_id": {"$in": [None, message_id]},
        }
        update = {
            "$set": {
                "state": CLAIMED,
                "message_id": message_id,
                "conversation_id": conversation_id,
                "claimed_ms": clock.now_ms(),
            }
        }
        try:
            result = await retrying_once(lambda: self.db.attachments.update_many(query, update))
        except BaseException:
            # Some may be claimed already: give them back (best effort, the cleanup is the net).
            with contextlib.suppress(Exception):
                await asyncio.shield(self.release(message_id))
            raise
        if result.matched_count == len(ids):
            return True
        await self.release(message_id)
        return False

    async def confirm(self, message_id: str) -> None:
        """The message is stored: its claimed uploads are attached for good."""
        await retrying_once(
            lambda: self.db.attachments.update_many(
                {"message_id": {"$eq": message_id}, "state": {"$eq": CLAIMED}},
                {"$set": {"state": ATTACHED}},
            )
        )

    async def release(self, message_id: str) -> None:
        """Undo a claim whose message was not written: its uploads are pending again."""
        await retrying_once(
            lambda: self.db.attachments.update_many(
                {"message_id": {"$eq": message_id}, "state": {"$eq": CLAIMED}},
                {"$set": {"state": PENDING, "message_id": None, "conversation_id": None}},
            )
        )

    async def settle_stale_claims(
        self, now_ms: int | None = None, grace_ms: int = CLAIM_GRACE_SECONDS * 1000
    ) -> int:
        """Claims older than `grace_ms`: confirmed when their message exists (the process died
        between the message and the confirmation), released when it does not (the write
        failed). Answers how many claims were released."""
        cutoff = (now_ms if now_ms is not None else clock.now_ms()) - grace_ms
        stale = await self.db.attachments.find(
            {"state": {"$eq": CLAIMED}, "claimed_ms": {"$lt": cutoff}},
            {"message_id": 1, "conversation_id": 1},
        ).to_list()
        claims = {(doc["conversation_id"], doc["message_id"]) for doc in stale}
        if not claims:
            return 0
        conversation_ids = sorted({c for c, _ in claims})
        # Stored means visible: a new conversation's first message counts once the
        # conversation (the commit point of a creation) exists too.
        stored = {
            doc["_id"]
            async for doc in self.db.messages.find(
                {
                    "conversation_id": {"$in": conversation_ids},
                    "_id": {"$in": sorted({m for _, m in claims})},
                },
                {"_id": 1},
            )
        }
        existing = {
            doc["_id"]
            async for doc in self.db.conversations.find(
                {"_id": {"$in": conversation_ids}}, {"_id": 1}
            )
        }
        released = 0
        for conversation_id, message_id in sorted(claims):
            if message_id in stored and conversation_id in existing:
                await self.confirm(message_id)
            else:
                log.info("releasing the uploads claimed by message %s, never stored", message_id)
                await self.release(message_id)
                released += 1
        return released

    async def read(self, attachment: Attachment, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) of a stored file, a few chunks per query."""
        if start >= end:
            return
        first, last = start // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        for batch_start in range(first, last + 1, READ_BATCH_CHUNKS):
            batch_end = min(batch_start + READ_BATCH_CHUNKS, last + 1)
            cursor = (
                self.db["fs.chunks"]
                .find(
                    {"files_id": attachment.id, "n": {"$gte": batch_start, "$lt": batch_end}},
                    {"n": 1, "data": 1, "_id": 0},
                )
                .sort("n", 1)
            )
            expected = batch_start
            async for chunk in cursor:
                if chunk["n"] != expected:
                    raise OSError(f"attachment {attachment.id}: chunk {expected} is missing")
                data = bytes(chunk["data"])
                offset = chunk["n"] * CHUNK_SIZE
                yield data[max(start - offset, 0) : max(min(end - offset, len(data)), 0)]
                expected += 1
            if expected != batch_end:
                raise OSError(f"attachment {attachment.id}: chunk {expected} is missing")

    async def delete(self, ids: list[str]) -> None:
        # One file at a time, by equality: the embedded server's GridFS emulation matches
        # `files_id` and `_id` only by value, not with `$in`.
        for attachment_id in ids:
            await self.db["fs.chunks"].delete_many({"files_id": attachment_id})
            try:
                await self.db["fs.files"].delete_one({"_id": attachment_id})
            except OperationFailure:
                # The embedded server refuses to delete a file none of whose chunks was written
                # ("File with id ... not found"): there is nothing of it to remove.
                pass
            await self.db.attachments.delete_one({"_id": attachment_id})

    async def remove_expired(self, now_ms: int | None = None) -> int:
        """Remove uploads never attached (or interrupted) for 24 hours; answer how many."""
        now_ms = now_ms if now_ms is not None else clock.now_ms()
        cutoff = now_ms - PENDING_LIFETIME_SECONDS * 1000
        docs = await self.db.attachments.find(
            {"state": {"$in": [UPLOADING, PENDING]}, "created_ms": {"$lt": cutoff}}, {"_id": 1}
        ).to_list()
        ids = [doc["_id"] for doc in docs]
        await self.delete(ids)
        return len(ids)
