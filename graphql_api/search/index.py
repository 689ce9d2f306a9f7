"""What the text index holds, on every message document, and the writes that keep it current.

Fields a message carries for search (written with the message, `search_fields`):
- `search_text`: the folded words (`terms.fold`) of the conversation's subject, the message's
  plain text and its attachments' filenames: one field, so that a query's words may come from
  any of the three (the embedded server keeps one FTS5 table per indexed field and would AND
  a query's words inside each field apart). A deleted message's is empty.
- `read_grants`: the tokens of `policy.read_grants(conversation)`, so that the access rule is
  a condition on the message itself, inside the `$text` query.
- `company_id`, `conversation_type`: the conversation's, for the company and type filters
  (neither ever changes); `attachment_count`, for the attachments filter.
The `$text` index (`database.INDEXES["messages"]`, language "none") is maintained by each engine
on every write of the document: writing these fields is what updates the index.

The other writers call these when what the fields copy changes (each rewrites the stored
documents at once, so search reflects it on the next query):
- `refresh_read_grants(db, conversation)`: participants added or removed, client-visibility
  changed (one `update_many`);
- `refresh_search_text(db, conversation)`: subject renamed (every message of the conversation,
  in batches of `REFRESH_BATCH`);
- `refresh_search_text(db, conversation, [message_id])`: a message edited or deleted.
`reindex_all` (`messager reindex-search`) writes every field of every message afresh: for
messages stored before search existed, or after a repair.
Until they run, `Search` still checks every result against the conversation as stored
(`policy.can_read_message`), so stale grants never show a message to someone who lost access.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pymongo import UpdateOne

from graphql_api.conversations.models import Conversation, MessageKind
from graphql_api.database import Db, Document
from graphql_api.policy import read_grants
from graphql_api.search.terms import fold

REFRESH_BATCH = 500
SEARCHED_KINDS: Document = {"kind": {"$nin": [MessageKind.EVENT.value]}}
"""Messages and notes carry search fields; timeline events never do (they have no text of
their own, and never get read grants: search cannot find them)."""
"""Messages read and rewritten per command when a subject changes."""
REINDEX_BATCH = 100
"""Conversations read per command by `reindex_all`."""


def search_text(subject: str, body_text: str, filenames: Iterable[str] = ()) -> str:
    """The folded words of a message as its `search_text` holds them."""
    return fold(" ".join([subject, body_text, *filenames]))


def search_fields(
    conversation: Conversation, body_text: str, filenames: Sequence[str] = ()
) -> Document:
    """The search fields of a new message of `conversation` (`filenames`: one per attachment)."""
    return {
        "search_text": search_text(conversation.subject, body_text, filenames),
        "read_grants": read_grants(conversation),
        "company_id": conversation.company_id,
        "conversation_type": conversation.type.value,
        "attachment_count": len(filenames),
    }


async def refresh_read_grants(db: Db, conversation: Conversation) -> None:
    """Copy the conversation's current read grants onto every one of its messages."""
    await db.messages.update_many(
        {"conversation_id": {"$eq": conversation.id}, **SEARCHED_KINDS},
        {"$set": {"read_grants": read_grants(conversation)}},
    )


async def reindex_conversation(db: Db, conversation: Conversation) -> None:
    """Write every search field of every message of `conversation` from what is stored."""
    await db.messages.update_many(
        {"conversation_id": {"$eq": conversation.id}, **SEARCHED_KINDS},
        {
            "$set": {
                "read_grants": read_grants(conversation),
                "company_id": conversation.company_id,
                "conversation_type": conversation.type.value,
            }
        },
    )
    await refresh_search_text(db, conversation)


async def reindex_all(db: Db) -> int:
    """`reindex_conversation` for every conversation of the database; answers how many."""
    done, after = 0, ""
    while True:
        batch = (
            await db.conversations.find({"_id": {"$gt": after}})
            .sort("_id", 1)
            .limit(REINDEX_BATCH)
            .to_list()
        )
        for doc in batch:
            await reindex_conversation(db, Conversation.from_doc(doc))
        done += len(batch)
        if len(batch) < REINDEX_BATCH:
            return done
        after = batch[-1]["_id"]


async def refresh_search_text(
    db: Db, conversation: Conversation, message_ids: Sequence[str] | None = None
) -> None:
    """Recompute `search_text` and `attachment_count` from what is stored now (the
    conversation's subject as given, each message's plain text and filenames; no words once
    deleted), for `message_ids` or for every message of the conversation."""
    query: Document = {"conversation_id": {"$eq": conversation.id}, **SEARCHED_KINDS}
    if message_ids is not None:
        query["_id"] = {"$in": list(message_ids)}
    after = 0
    while True:
        batch = (
            await db.messages.find(
                {**query, "seq": {"$gt": after}},
                {"_id": 1, "seq": 1, "body_text": 1, "attachment_ids": 1, "deleted_ms": 1},
            )
            .sort("seq", 1)
            .limit(REFRESH_BATCH)
            .to_list()
        )
        if not batch:
            return
        names = await _filenames(db, [doc["_id"] for doc in batch if doc.get("attachment_ids")])
        await db.messages.bulk_write(
            [
                UpdateOne(
                    {"_id": doc["_id"], "conversation_id": {"$eq": conversation.id}},
                    {
                        "$set": {
                            "search_text": _stored_search_text(conversation, doc, names),
                            "attachment_count": len(doc.get("attachment_ids") or ()),
                        }
                    },
                )
                for doc in batch
            ],
            ordered=False,
        )
        if len(batch) < REFRESH_BATCH:
            return
        after = int(batch[-1]["seq"])


def _stored_search_text(
    conversation: Conversation, doc: Document, names: dict[str, list[str]]
) -> str:
    if doc.get("deleted_ms") is not None:
        return ""
    return search_text(conversation.subject, doc.get("body_text", ""), names.get(doc["_id"], ()))


async def _filenames(db: Db, message_ids: list[str]) -> dict[str, list[str]]:
    """The filenames of the attachments of these messages, per message."""
    names: dict[str, list[str]] = {}
    if message_ids:
        async for doc in db.attachments.find(
            {"message_id": {"$in": message_ids}}, {"message_id": 1, "filename": 1}
        ):
            names.setdefault(doc["message_id"], []).append(doc["filename"])
    return names
