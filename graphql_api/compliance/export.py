"""The client-file export (SPEC §17): one company's whole file as a ZIP, streamed.

Layout (`KEY` is the company's import key):

    KEY/manifest.json                              every other file, its size and SHA-256
    KEY/<date>-<conversation id>/transcript.html   readable in any browser
    KEY/<date>-<conversation id>/conversation.json the same, as data (revisions, retained content)
    KEY/<date>-<conversation id>/attachments/<attachment id>-<filename>

Everything is produced as it is written out (`stream-zip` builds the archive from async
iterables, ZIP64 with data descriptors, so no size is needed in advance): conversations and
messages are read through cursors, files a few GridFS chunks at a time, and each file's SHA-256
is computed on the way, so the manifest, written last, needs nothing kept but one line per file.
Memory stays bounded whatever the size of the client file (`bench/export_memory.py` measures it).

The export holds everything the firm keeps: notes (marked internal), timeline events, deleted
messages marked deleted with their retained content. It is for the firm's admins (the HTTP route
checks `policy.fetch_administered_company`) and the command line, and it is audited: the record
is written before the first byte.
"""

from __future__ import annotations

import hashlib
import json
import stat
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stream_zip import ZIP_64, async_stream_zip

from graphql_api import clock
from graphql_api.attachments.store import Attachment, AttachmentStore
from graphql_api.compliance import audit, transcript
from graphql_api.compliance.transcript import People
from graphql_api.database import Db, Document
from graphql_api.directory.models import Company

FILE_MODE = stat.S_IFREG | 0o644
ZIP_CHUNK_BYTES = 64 * 1024
COMPRESSION_LEVEL = 1  # attachments (PDFs, photos) hardly compress: spend little CPU on them
ATTACHED_STATES = ("claimed", "attached")

Member = tuple[str, datetime, int, object, AsyncIterable[bytes]]


@dataclass
class Manifest:
    """The files written so far, with their SHA-256, in order."""

    files: list[dict[str, object]] = field(default_factory=list)

    async def hashed(self, path: str, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        digest = hashlib.sha256()
        size = 0
        async for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            yield chunk
        self.files.append({"path": path, "size": size, "sha256": digest.hexdigest()})


async def company_zip(
    db: Db, attachments: AttachmentStore, company: Company, actor: audit.Actor
) -> AsyncIterator[bytes]:
    """Record the export in the audit log, then answer the ZIP's bytes as they are made."""
    exported = clock.now()
    entry = audit.new_entry(
        company.firm_id,
        actor,
        audit.AuditAction.COMPANY_EXPORTED,
        company_id=company.id,
        details={"companyKey": company.key},
        at=exported,
    )
    await audit.record(db, entry)  # no byte leaves before the record is written
    return async_stream_zip(
        _members(db, attachments, company, actor, exported),
        chunk_size=ZIP_CHUNK_BYTES,
        get_compressobj=lambda: zlib.compressobj(wbits=-zlib.MAX_WBITS, level=COMPRESSION_LEVEL),
    )


async def _members(
    db: Db, attachments: AttachmentStore, company: Company, actor: audit.Actor, exported: datetime
) -> AsyncIterator[Member]:
    manifest = Manifest()
    root = _safe_segment(company.key or company.id)
    people = await _people(db, company.firm_id)
    company_doc = {"_id": company.id, "key": company.key, "name": company.name}
    exported_ms = clock.millis(exported)

    def member(path: str, chunks: AsyncIterable[bytes]) -> Member:
        return (f"{root}/{path}", exported, FILE_MODE, ZIP_64, manifest.hashed(path, chunks))

    cursor = db.conversations.find(
        {
            "firm_id": {"$eq": company.firm_id},
            "company_id": {"$eq": company.id},
            "type": {"$in": ["COMPANY", "CONFIDENTIAL"]},
        }
    ).sort([("last_activity_ms", -1), ("_id", -1)])
    async for conversation in cursor:
        folder = f"{_day(conversation)}-{conversation['_id']}"
        files = await _files_of(db, conversation["_id"])
        by_message: dict[str, list[Document]] = {}
        for doc in files:
            by_message.setdefault(doc.get("message_id") or "", []).append(doc)
        yield member(
            f"{folder}/transcript.html",
            _encoded(_transcript(db, conversation, company.name, people, by_message, exported_ms)),
        )
        yield member(
            f"{folder}/conversation.json",
            _encoded(_conversation_json(db, conversation, company_doc, people, by_message)),
        )
        for doc in files:
            stored = Attachment.from_doc(doc)
            yield member(
                f"{folder}/{transcript.attachment_path(doc)}",
                attachments.read(stored, 0, stored.size),
            )
    # Last: every file before it has been written and hashed.
    yield (
        f"{root}/manifest.json",
        exported,
        FILE_MODE,
        ZIP_64,
        _once(lambda: _manifest_json(manifest, company_doc, actor, exported)),
    )


async def _transcript(
    db: Db,
    conversation: Document,
    company_name: str,
    people: People,
    files: dict[str, list[Document]],
    exported_ms: int,
) -> AsyncIterator[str]:
    yield transcript.transcript_head(conversation, company_name, people)
    async for message, retained in _messages(db, conversation["_id"]):
        yield transcript.transcript_entry(message, people, files.get(message["_id"], []), retained)
    yield transcript.transcript_foot(exported_ms)


async def _conversation_json(
    db: Db,
    conversation: Document,
    company: Document,
    people: People,
    files: dict[str, list[Document]],
) -> AsyncIterator[str]:
    yield transcript.json_head(conversation, company, people)
    first = True
    async for message, retained in _messages(db, conversation["_id"]):
        yield transcript.json_entry(message, people, files.get(message["_id"], []), retained, first)
        first = False
    yield transcript.json_foot()


async def _messages(
    db: Db, conversation_id: str
) -> AsyncIterator[tuple[Document, Document | None]]:
    """Every message of the conversation in order, with what a deletion retained of it."""
    cursor = db.messages.find({"conversation_id": {"$eq": conversation_id}}).sort("seq", 1)
    async for message in cursor:
        retained = None
        if message.get("deleted_ms") is not None:
            retained = await db.retained_messages.find_one(
                {"_id": message["_id"], "firm_id": {"$eq": message["firm_id"]}}
            )
        yield message, retained


async def _files_of(db: Db, conversation_id: str) -> list[Document]:
    """The conversation's attached files (metadata: one small document each)."""
    docs = await db.attachments.find({"conversation_id": {"$eq": conversation_id}}).to_list()
    return sorted(
        (d for d in docs if d.get("state") in ATTACHED_STATES),
        key=lambda d: (d.get("created_ms", 0), d["_id"]),
    )


async def _people(db: Db, firm_id: str) -> People:
    names = {
        doc["_id"]: doc["name"]
        async for doc in db.users.find({"firm_id": {"$eq": firm_id}}, {"name": 1, "erasing": 1})
        if not doc.get("erasing")
    }
    return People(names)


async def _encoded(parts: AsyncIterable[str]) -> AsyncIterator[bytes]:
    async for part in parts:
        yield part.encode("utf-8")


async def _once(make: Callable[[], bytes]) -> AsyncIterator[bytes]:
    yield make()


def _manifest_json(
    manifest: Manifest, company: Document, actor: audit.Actor, exported: datetime
) -> bytes:
    return json.dumps(
        {
            "company": company,
            "exportedAt": exported.isoformat(timespec="milliseconds"),
            "exportedBy": actor.user_id or actor.address,
            "algorithm": "sha256",
            "files": manifest.files,
        },
        ensure_ascii=False,
        indent=1,
    ).encode("utf-8")


def _day(conversation: Document) -> str:
    created = conversation.get("created_at")
    if isinstance(created, datetime):
        return created.replace(tzinfo=created.tzinfo or UTC).strftime("%Y-%m-%d")
    return "conversation"


def _safe_segment(text: str) -> str:
    """A path segment from an import key: no separators, no dot-only names."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip(".")
    return cleaned or "company"


async def write_zip(chunks: AsyncIterable[bytes], out: object) -> int:
    """Write the ZIP to a binary file object; answer its size."""
    size = 0
    async for chunk in chunks:
        out.write(chunk)  # type: ignore[attr-defined]
        size += len(chunk)
    return size
