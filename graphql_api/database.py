"""MongoDB access: the client, the collections the product uses, and their indexes.

PyMongo's async API (`AsyncMongoClient`) is the driver; Motor reached end of life in May 2026.
Collections and indexes are created at start-up, before any request: the embedded server refuses
a transaction that would create a collection (SPEC §11), and queries need their indexes anyway.
Writes ask for the majority and the journal by default (`WriteConcernSetting`): the unread
bookkeeping and the retry keys assume an acknowledged write never rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from pymongo import ASCENDING, DESCENDING, TEXT, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    CollectionInvalid,
    ConnectionFailure,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
)
from pymongo.monitoring import CommandListener

from graphql_api import pymongo_patch

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "messager"
EMBEDDED_PROCESS = "nx_27017"

Document = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WriteConcernSetting:
    """What every write asks for: `w` ("majority" or a number of members) and the journal."""

    w: str | int = "majority"
    journal: bool = True

    def document(self) -> dict[str, Any]:
        return {"w": self.w, "j": self.journal}


MAJORITY = WriteConcernSetting()

DUPLICATE_KEY = 11000
INDEX_NOT_FOUND = 27


def only_duplicates(error: BulkWriteError) -> bool:
    """Whether every failed write of a bulk write hit a duplicate key: the documents are there
    already (an earlier attempt, or a forward-only upsert whose filter did not match)."""
    return all(e.get("code") == DUPLICATE_KEY for e in error.details["writeErrors"])


Db = AsyncDatabase[Document]

# Every collection with the indexes its queries need; `name` keeps index names stable. The rules
# they follow are MongoDB's (checked on every query of the test suite, `tests/query_plans.py`):
# equality fields first, then the sort keys, then ranges; a sort that ends on `_id` needs `_id`
# in the index; a partial index serves only queries that provably match its filter, and an
# equality implies `{$exists: true}` but never `{$type: ...}`. Every unique index starts with its
# collection's shard key (`graphql_api/sharding.py`, checked by `tests/test_sharding.py`).
INDEXES: dict[str, list[IndexModel]] = {
    "firms": [
        IndexModel([("key", ASCENDING)], unique=True, name="key_unique"),
        IndexModel([("retention_years", ASCENDING)], name="retention"),  # compliance/retention.py
    ],
    "companies": [
        IndexModel([("firm_id", ASCENDING), ("key", ASCENDING)], unique=True, name="firm_key"),
        IndexModel([("firm_id", ASCENDING), ("name_lower", ASCENDING)], name="firm_name"),
    ],
    "users": [
        IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
        IndexModel([("firm_id", ASCENDING), ("key", ASCENDING)], unique=True, name="firm_key"),
        IndexModel([("firm_id", ASCENDING), ("company_ids", ASCENDING)], name="firm_companies"),
        IndexModel([("firm_id", ASCENDING), ("name_lower", ASCENDING)], name="firm_name"),
        IndexModel([("notification_settings.email", ASCENDING)], name="email_frequency"),
        IndexModel([("audit_pending_ms", ASCENDING)], name="audit_pending"),
        IndexModel([("erasing_since_ms", ASCENDING)], name="erasing"),  # compliance/erasure.py
    ],
    "conversations": [
        # The inbox: newest activity first, then `_id` (its tie-breaker and cursor).
        IndexModel(
            [
                ("firm_id", ASCENDING),
                ("participant_ids", ASCENDING),
                ("last_activity_ms", DESCENDING),
                ("_id", DESCENDING),
            ],
            name="inbox_participant_activity_id",
        ),
        IndexModel(
            [
                ("firm_id", ASCENDING),
                ("company_id", ASCENDING),
                ("type", ASCENDING),
                ("last_activity_ms", DESCENDING),
                ("_id", DESCENDING),
            ],
            name="inbox_company_activity_id",
        ),
        # A client's inbox sorts by the clients' activity (notes never move it: SPEC §13).
        IndexModel(
            [
                ("firm_id", ASCENDING),
                ("participant_ids", ASCENDING),
                ("client_activity_ms", DESCENDING),
                ("_id", DESCENDING),
            ],
            name="inbox_participant_client_activity_id",
        ),
        IndexModel(
            [
                ("firm_id", ASCENDING),
                ("company_id", ASCENDING),
                ("type", ASCENDING),
                ("client_activity_ms", DESCENDING),
                ("_id", DESCENDING),
            ],
            name="inbox_company_client_activity_id",
        ),
        # The recovery's walk over recently active conversations (conversations/recovery.py).
        IndexModel([("last_activity_ms", ASCENDING)], name="activity"),
        # Retention (graphql_api/compliance/retention.py): a firm's conversations past it.
        IndexModel(
            [("firm_id", ASCENDING), ("last_activity_ms", ASCENDING)], name="retention_activity"
        ),
        # Audit entries a crash left on their action's document (compliance/audit.py).
        IndexModel([("audit_pending_ms", ASCENDING)], name="audit_pending"),
        IndexModel(
            [("firm_id", ASCENDING), ("created_by", ASCENDING), ("client_message_id", ASCENDING)],
            name="creator_client_message_id",
            unique=True,
            partialFilterExpression={"client_message_id": {"$exists": True}},
        ),
    ],
    "messages": [
        IndexModel(
            [("conversation_id", ASCENDING), ("seq", ASCENDING)],
            unique=True,
            name="conversation_seq",
        ),
        IndexModel([("fanout", ASCENDING), ("created_ms", ASCENDING)], name="fanout_outbox"),
        IndexModel([("audit_pending_ms", ASCENDING)], name="audit_pending"),
        # Erasure with --delete-messages: a user's messages (compliance/erasure.py).
        IndexModel([("author_id", ASCENDING), ("created_ms", ASCENDING)], name="author"),
        # Retries of a reply: unique per conversation (where the shard key allows it)...
        IndexModel(
            [
                ("conversation_id", ASCENDING),
                ("author_id", ASCENDING),
                ("client_message_id", ASCENDING),
            ],
            name="conversation_author_client_message_id",
            unique=True,
            partialFilterExpression={"client_message_id": {"$exists": True}},
        ),
        # ...and found per author, to refuse a key reused in another conversation.
        IndexModel(
            [("author_id", ASCENDING), ("client_message_id", ASCENDING)],
            name="author_client_message_id",
            partialFilterExpression={"client_message_id": {"$exists": True}},
        ),
    ],
    "attachments": [
        IndexModel([("state", ASCENDING), ("created_ms", ASCENDING)], name="state_age"),
        IndexModel([("message_id", ASCENDING)], name="message"),
        IndexModel([("state", ASCENDING), ("claimed_ms", ASCENDING)], name="state_claimed"),
        # A conversation's files: the client-file export and the retention purge.
        IndexModel([("conversation_id", ASCENDING)], name="conversation"),
        # An erased user's uploads never attached (compliance/erasure.py).
        IndexModel([("uploader_id", ASCENDING), ("state", ASCENDING)], name="uploader_state"),
    ],
    "notifications": [
        # Unread first, then newest (`_id` starts with the message's id).
        IndexModel(
            [("user_id", ASCENDING), ("unread", DESCENDING), ("_id", DESCENDING)],
            name="user_unread_id",
        ),
        # Email planning: the unread notifications created in one delay window.
        IndexModel([("unread", ASCENDING), ("created_ms", ASCENDING)], name="email_due"),
        # The retention purge removes a conversation's notifications.
        IndexModel([("conversation_id", ASCENDING)], name="conversation"),
    ],
    # What deletions took off messages, read only by the admin export (SPEC §17), per firm.
    "retained_messages": [
        IndexModel([("firm_id", ASCENDING), ("deleted_ms", ASCENDING)], name="firm_deleted"),
        # The retention purge removes a conversation's (compliance/retention.py).
        IndexModel([("conversation_id", ASCENDING)], name="conversation"),
    ],
    "recovery_state": [],  # how far the crash recovery got, by `_id`: a handful of documents
    # The email outbox (graphql_api/email/outbox.py): due emails, claims, and sent records.
    "email_outbox": [
        IndexModel(
            [("state", ASCENDING), ("next_attempt_ms", ASCENDING)], name="state_next_attempt"
        ),
        IndexModel([("lease_owner", ASCENDING)], name="lease_owner"),
        IndexModel([("due_ms", ASCENDING)], name="due"),
        IndexModel([("user_id", ASCENDING)], name="user"),  # erasure
    ],
    "email_jobs": [],
    "read_marks": [
        IndexModel(
            [("user_id", ASCENDING), ("conversation_id", ASCENDING)],
            unique=True,
            name="user_conversation",
        ),
        IndexModel([("conversation_id", ASCENDING)], name="conversation"),  # retention purge
    ],
    # Compliance (SPEC §17, graphql_api/compliance/): the audit log, each firm's chain head,
    # and the purges in progress.
    "audit_log": [
        IndexModel([("firm_id", ASCENDING), ("seq", ASCENDING)], unique=True, name="firm_seq"),
    ],
    "audit_chains": [],
    "purges": [],
}

# Indexes of earlier versions, dropped at start-up once their replacements exist: MongoDB
# refuses an index whose name exists with another definition, so a changed index gets a name.
RETIRED_INDEXES: dict[str, list[str]] = {
    "conversations": ["inbox_participant", "inbox_company", "firm_activity", "idempotency"],
    "messages": ["idempotency"],
    "notifications": ["user_inbox"],
}

# Search (SPEC §16): the `$text` index on the folded words of each message
# (`graphql_api/search/index.py`). Language "none": the words are folded before they are stored,
# and neither engine should stem or drop stop words on its own (the embedded server's FTS5
# cannot). Created apart from the others (`_ensure_text_index`).
TEXT_INDEXES: dict[str, IndexModel] = {
    "messages": IndexModel([("search_text", TEXT)], name="message_search", default_language="none"),
}


# GridFS's own collections get GridFS's standard indexes; MongoDB creates these collections on
# first write, and the embedded server emulates them (it refuses to create dotted names).
GRIDFS_INDEXES: dict[str, list[IndexModel]] = {
    "fs.files": [
        IndexModel(
            [("filename", ASCENDING), ("uploadDate", ASCENDING)], name="filename_1_uploadDate_1"
        )
    ],
    "fs.chunks": [
        IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True, name="files_id_1_n_1")
    ],
}


def connect(
    uri: str,
    listeners: Sequence[CommandListener] = (),
    timeout_ms: int | None = None,
    write_concern: WriteConcernSetting = MAJORITY,
) -> AsyncMongoClient[Document]:
    """A client; `timeout_ms` is a deadline for every operation (a stuck query then fails and
    frees its worker instead of hanging). Change streams and index builds use a client without
    one. Writes ask for `write_concern` unless the URI sets `w` or `journal` itself."""
    pymongo_patch.install()
    options: dict[str, Any] = {}
    if timeout_ms is not None:
        options["timeoutMS"] = timeout_ms
    in_uri = _uri_options(uri)
    if "w" not in in_uri:
        options["w"] = write_concern.w
    if "journal" not in in_uri:
        options["journal"] = write_concern.journal
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        event_listeners=list(listeners),
        **options,
    )


def _uri_options(uri: str) -> set[str]:
    """The option names of a connection string, lower-cased (no DNS lookup, unlike PyMongo's
    parser for `mongodb+srv://`)."""
    query = urlsplit(uri).query
    return {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}


def database_of(client: AsyncMongoClient[Document]) -> Db:
    """The database named in the URI's path, `messager` when it names none."""
    return client.get_default_database(DEFAULT_DATABASE)


async def is_embedded(db: Db) -> bool:
    """Whether the server is the embedded nx-27017, which answers `buildInfo` as its process."""
    info = await db.client.admin.command("buildInfo")
    return info.get("process") == EMBEDDED_PROCESS


def _for_server(index: IndexModel, embedded: bool) -> IndexModel:
    """The index as this server can hold it: the embedded server fails every insert into a
    collection with `_id` inside a compound index (docs/embedded.md), so there the trailing
    `_id` is left out; its SQLite planner sorts by it anyway."""
    document = dict(index.document)
    keys = list(document.pop("key").items())
    if not embedded or len(keys) < 2 or "_id" not in dict(keys):
        return index
    return IndexModel([(k, d) for k, d in keys if k != "_id"], **document)


async def ensure_schema(db: Db, collections: Iterable[str] | None = None) -> dict[str, str]:
    """Create the collections and their indexes (all, or those named); safe at every start.

    Answers the collections that could not be prepared, each with a one-line reason. A failure
    on one collection does not stop the others; once the database cannot be reached at all, the
    rest are reported as such without waiting on each. Index builds take as long as they take:
    use a client without a per-operation deadline (`connect` without `timeout_ms`).
    """
    wanted = list(collections) if collections is not None else [*INDEXES, *GRIDFS_INDEXES]
    failed: dict[str, str] = {}
    try:
        embedded = await is_embedded(db)
        existing = set(await db.list_collection_names())
    except ConnectionFailure as exc:
        return dict.fromkeys(wanted, f"database unreachable: {_one_line(exc)}")
    except PyMongoError as exc:
        return dict.fromkeys(wanted, _one_line(exc))
    for position, name in enumerate(wanted):
        try:
            if name in GRIDFS_INDEXES:
                await _prepare_gridfs(db, name, embedded)
            else:
                await _prepare(db, name, name in existing, embedded)
        except ConnectionFailure as exc:
            reason = f"database unreachable: {_one_line(exc)}"
            failed.update(dict.fromkeys(wanted[position:], reason))
            break
        except PyMongoError as exc:
            failed[name] = _one_line(exc)
            log.error("cannot prepare collection %s: %s", name, failed[name])
    return failed


async def _prepare(db: Db, name: str, exists: bool, embedded: bool) -> None:
    if not exists:
        try:
            await db.create_collection(name)
        except CollectionInvalid:  # another process created it meanwhile
            pass
    retired = set(RETIRED_INDEXES.get(name, ())) & set(await db[name].index_information())
    for index_name in sorted(retired):
        log.info("dropping the retired index %s.%s", name, index_name)
        try:
            await db[name].drop_index(index_name)
        except OperationFailure as exc:
            if exc.code != INDEX_NOT_FOUND:  # another process dropped it first
                raise
    await db[name].create_indexes([_for_server(i, embedded) for i in INDEXES[name]])
    if name in TEXT_INDEXES:
        await _ensure_text_index(db, name, TEXT_INDEXES[name])


async def _prepare_gridfs(db: Db, name: str, embedded: bool) -> None:
    try:
        await db[name].create_indexes(GRIDFS_INDEXES[name])
    except OperationFailure:
        if not embedded:
            raise
        # The embedded server emulates GridFS's collections and their indexes.


def _one_line(exc: BaseException) -> str:
    text = str(exc).split(", Timeout: ")[0]  # PyMongo then describes its whole topology
    return " ".join(text.split())[:300]


async def retrying_once(write: Callable[[], Awaitable[T]]) -> T:
    """Run an idempotent write, and once more after a fail-over error.

    PyMongo retries single-document writes by itself (retryable writes) but never
    `update_many` or `delete_many`: after a primary change or a dropped connection it cannot
    know whether the server applied them. The writes given here are written so that applying
    them twice is the same as once, so one more attempt is safe."""
    try:
        return await write()
    except PyMongoError as exc:
        if not is_transient(exc):
            raise
        log.info("retrying an idempotent write after: %s", _one_line(exc))
        return await write()


def is_transient(exc: PyMongoError) -> bool:
    """An error after which the same write may succeed: a fail-over or a dropped connection
    (not a deadline: a second attempt would double the wait of a request)."""
    if exc.has_error_label("RetryableWriteError"):
        return True
    return isinstance(exc, AutoReconnect) and not isinstance(exc, NetworkTimeout)


async def _ensure_text_index(db: Db, name: str, index: IndexModel) -> None:
    """Create a `$text` index once. MongoDB takes a repeated identical request as done; the
    embedded server creates its FTS5 table and refills it from every document, which fails
    ("constraint failed", nothing changed) once the table exists and holds documents. That
    server lists the table among its search indexes, which MongoDB has no command for."""
    try:
        await db[name].create_indexes([index])
    except OperationFailure as failure:
        try:
            listed = await db.command({"listSearchIndexes": name})
        except OperationFailure:
            raise failure from None  # MongoDB: a real failure
        fields = {field for entry in listed["cursor"]["firstBatch"] for field in entry["key"]}
        if not fields >= set(index.document["key"]):
            raise
