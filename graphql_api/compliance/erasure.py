"""`messager erase-user EMAIL [--delete-messages]` (SPEC §17): a person's personal data goes.

What is personal in the database: the user document (name, email, import key, favorites,
companies, email settings and locale), its notifications, read marks, planned emails and uploads
never attached. All of that is removed. Its messages are the firm's record and stay, shown as
written by "Former user" (the name every reader sees for an author who is no longer in the
directory); with `--delete-messages` they are emptied as a deletion empties them (body, text,
revisions, search words, attachments), keeping their place in the history. Audit records name
users by id only, so they stay intact and the chain keeps verifying.

The erasure runs in steps that can each be repeated:
1. One write scrubs the user document of everything personal, marks it `erasing` (the directory
   then reads it as absent: its tokens fail at once on every process, which learn of the change
   through the `users` change stream) and carries the audit entry (`audit.pending_fields`).
2. The other collections are cleaned.
3. The audit entry is chained, then the user document is deleted.
A crash anywhere leaves an `erasing` document that no email names any more: the next
`erase-user` run and the crash recovery (`finish_erasures`) finish it.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql_api import clock
from graphql_api.attachments.store import PENDING, UPLOADING, AttachmentStore
from graphql_api.compliance import audit, chain
from graphql_api.database import Db
from graphql_api.directory.models import FORMER_USER_NAME

MAX_ERASURES_PER_RUN = 100


class UnknownUser(LookupError):
    """No user has that email (or its erasure has begun already)."""


@dataclass(frozen=True, slots=True)
class Erased:
    user_id: str
    messages_emptied: int


async def erase_user(
    db: Db, attachments: AttachmentStore, email: str, *, delete_messages: bool = False
) -> Erased:
    """Erase the user with this email; raise `UnknownUser` when there is none."""
    user_id = await begin_erasure(db, email, delete_messages=delete_messages)
    emptied = await _finish(db, attachments, user_id)
    return Erased(user_id, emptied)


async def begin_erasure(db: Db, email: str, *, delete_messages: bool = False) -> str:
    """Step 1: scrub the user document and mark it `erasing`; answer the user's id."""
    email = email.strip().lower()
    doc = await db.users.find_one({"email": email})
    if doc is None or doc.get("erasing"):
        raise UnknownUser(email)
    user_id = doc["_id"]
    entry = audit.new_entry(
        doc["firm_id"],
        audit.Actor.command_line(),
        audit.AuditAction.USER_ERASED,
        details={"userId": user_id, "messagesDeleted": delete_messages},
    )
    placeholder = f"erased-{user_id}"
    result = await db.users.update_one(
        {"_id": user_id, "email": email},
        {
            "$set": {
                "name": FORMER_USER_NAME,
                "name_lower": FORMER_USER_NAME.casefold(),
                "email": f"{placeholder}@erased.invalid",  # unique, like every email
                "key": placeholder,
                "company_ids": [],
                "favorite_company_ids": [],
                "erasing": True,
                "erasing_since_ms": entry["at_ms"],
                "delete_messages": delete_messages,
                **audit.pending_fields(entry),
            },
            "$unset": {"notification_settings": "", "locale": "", "admin": ""},
        },
    )
    if result.matched_count == 0:
        raise UnknownUser(email)  # erased meanwhile by another run
    return user_id


async def finish_erasures(db: Db, attachments: AttachmentStore, cutoff_ms: int) -> int:
    """Finish the erasures begun before `cutoff_ms` that a crash interrupted."""
    docs = (
        await db.users.find({"erasing_since_ms": {"$lt": cutoff_ms}}, {"_id": 1})
        .limit(MAX_ERASURES_PER_RUN)
        .to_list()
    )
    for doc in docs:
        await _finish(db, attachments, doc["_id"])
    return len(docs)


async def _finish(db: Db, attachments: AttachmentStore, user_id: str) -> int:
    """Steps 2 and 3 for a user marked `erasing`; answer how many messages were emptied."""
    doc = await db.users.find_one({"_id": user_id, "erasing_since_ms": {"$gte": 0}})
    if doc is None:
        return 0  # finished by another process
    by_user = {"user_id": {"$eq": user_id}}
    await db.notifications.delete_many(by_user)
    await db.read_marks.delete_many(by_user)
    await db.email_outbox.delete_many(by_user)
    uploads = await db.attachments.find(
        {"uploader_id": {"$eq": user_id}, "state": {"$in": [UPLOADING, PENDING]}}, {"_id": 1}
    ).to_list()
    await attachments.delete([upload["_id"] for upload in uploads])
    emptied = await _empty_messages(db, attachments, user_id) if doc.get("delete_messages") else 0
    for entry in (doc.get(audit.PENDING) or {}).values():
        await chain.append(db, entry)
    await db.users.delete_one({"_id": user_id, "erasing_since_ms": {"$gte": 0}})
    return emptied


async def _empty_messages(db: Db, attachments: AttachmentStore, user_id: str) -> int:
    """Empty every message the user wrote, as a deletion does, with their files."""
    now_ms = clock.now_ms()
    messages = await db.messages.find(
        {"author_id": {"$eq": user_id}, "created_ms": {"$gte": 0}},
        {"_id": 1, "conversation_id": 1, "attachment_ids": 1, "deleted_ms": 1},
    ).to_list()
    for message in messages:
        await db.messages.update_one(
            {"_id": message["_id"], "conversation_id": {"$eq": message["conversation_id"]}},
            {
                "$set": {
                    "body": "",
                    "body_text": "",
                    "attachment_ids": [],
                    "revisions": [],
                    "search_text": "",
                    "attachment_count": 0,
                    "deleted_ms": message.get("deleted_ms") or now_ms,
                    "deleted_by": user_id,
                }
            },
        )
        await db.retained_messages.delete_one(
            {"_id": message["_id"], "conversation_id": {"$eq": message["conversation_id"]}}
        )
        await attachments.delete(list(message.get("attachment_ids") or ()))
    return len(messages)
