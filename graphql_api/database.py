"""MongoDB access: the client, the collections the product uses, and their indexes.

PyMongo's async API (`AsyncMongoClient`) is the driver; Motor reached end of life in May 2026.
Collections and indexes are created at start-up, before any request: the embedded server refuses
a transaction that would create a collection (SPEC §11), and queries need their indexes anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure
from pymongo.monitoring import CommandListener

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "messager"

Document = dict[str, Any]

DUPLICATE_KEY = 11000


def only_duplicates(error: BulkWriteError) -> bool:
    """Whether every failed write of a bulk write hit a duplicate key: the documents are there
    already (an earlier attempt, or a forward-only upsert whose filter did not match)."""
    return all(e.get("code") == DUPLICATE_KEY for e in error.details["writeErrors"])


Db = AsyncDatabase[Document]

# Every collection with the indexes its queries need; `name` keeps index names stable.
INDEXES: dict[str, list[IndexModel]] = {
    "firms": [IndexModel([("key", ASCENDING)], unique=True, name="key_unique")],
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
    ],
    "conversations": [
        IndexModel(
            [
                ("firm_id", ASCENDING),
                ("participant_ids", ASCENDING),
                ("last_activity_ms", DESCENDING),
            ],
            name="inbox_participant",
        ),
        IndexModel(
            [
                ("firm_id", ASCENDING),
                ("company_id", ASCENDING),
                ("type", ASCENDING),
                ("last_activity_ms", DESCENDING),
            ],
            name="inbox_company",
        ),
        IndexModel(
            [("firm_id", ASCENDING), ("last_activity_ms", DESCENDING)], name="firm_activity"
        ),
        IndexModel(
            [("created_by", ASCENDING), ("client_message_id", ASCENDING)],
            name="idempotency",
            unique=True,
            partialFilterExpression={"client_message_id": {"$type": "string"}},
        ),
    ],
    "messages": [
        IndexModel(
            [("conversation_id", ASCENDING), ("seq", ASCENDING)],
            unique=True,
            name="conversation_seq",
        ),
        IndexModel([("fanout", ASCENDING), ("created_ms", ASCENDING)], name="fanout_outbox"),
        IndexModel(
            [("author_id", ASCENDING), ("client_message_id", ASCENDING)],
            name="idempotency",
            unique=True,
            partialFilterExpression={"client_message_id": {"$type": "string"}},
        ),
    ],
    "attachments": [
        IndexModel([("state", ASCENDING), ("created_ms", ASCENDING)], name="state_age"),
        IndexModel([("message_id", ASCENDING)], name="message"),
    ],
    "notifications": [
        # No `_id` in a compound index: the embedded server then fails inserts ("JSON path error").
        IndexModel(
            [("user_id", ASCENDING), ("unread", DESCENDING), ("created_ms", DESCENDING)],
            name="user_inbox",
        ),
        # Email planning: the unread notifications created in one delay window.
        IndexModel([("unread", ASCENDING), ("created_ms", ASCENDING)], name="email_due"),
    ],
    # The email outbox (graphql_api/email/outbox.py): due emails, claims, and sent records.
    "email_outbox": [
        IndexModel(
            [("state", ASCENDING), ("next_attempt_ms", ASCENDING)], name="state_next_attempt"
        ),
        IndexModel([("lease_owner", ASCENDING)], name="lease_owner"),
        IndexModel([("due_ms", ASCENDING)], name="due"),
    ],
    "email_jobs": [],
    "read_marks": [
        IndexModel(
            [("user_id", ASCENDING), ("conversation_id", ASCENDING)],
            unique=True,
            name="user_conversation",
        ),
    ],
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
    uri: str, listeners: Sequence[CommandListener] = (), timeout_ms: int | None = None
) -> AsyncMongoClient[Document]:
    """A client; `timeout_ms` is a deadline for every operation (a stuck query then fails and
    frees its worker instead of hanging). Change streams use a client without one."""
    options: dict[str, Any] = {}
    if timeout_ms is not None:
        options["timeoutMS"] = timeout_ms
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        event_listeners=list(listeners),
        **options,
    )


def database_of(client: AsyncMongoClient[Document]) -> Db:
    """The database named in the URI's path, `messager` when it names none."""
    return client.get_default_database(DEFAULT_DATABASE)


async def ensure_schema(db: Db) -> None:
    """Create every collection and index; safe to run at every start."""
    existing = set(await db.list_collection_names())
    for name, indexes in INDEXES.items():
        if name not in existing:
            try:
                await db.create_collection(name)
            except CollectionInvalid:  # another process created it meanwhile
                pass
        if indexes:
            await db[name].create_indexes(indexes)
    for name, indexes in GRIDFS_INDEXES.items():
        try:
            await db[name].create_indexes(indexes)
        except OperationFailure as exc:
            log.debug("GridFS indexes on %s not created: %s", name, exc)
