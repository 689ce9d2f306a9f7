"""Creating conversations and reading notifications over real HTTP, for the notification tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from tests.conversation_helpers import create as create_conversation
from tests.documents import SEND_MESSAGE

UNREAD_COUNT = "query($id: ID!) { conversation(id: $id) { unreadCount } }"


def uid(api: Any, key: str) -> str:
    return api.ids["users"][key]


async def create(
    api: Any,
    as_: str,
    kind: str,
    participants: list[str],
    *,
    company: str | None = None,
    subject: str = "Subject",
    text: str = "first",
) -> str:
    """Create a conversation whose first message is `<p>text</p>`; answers its id."""
    created = await create_conversation(
        api, as_, kind, participants, company=company, subject=subject, body=f"<p>{text}</p>"
    )
    return created["id"]


async def send(api: Any, as_: str, conversation_id: str, text: str) -> str:
    data = {"conversationId": conversation_id, "body": f"<p>{text}</p>"}
    return (await api.gql(SEND_MESSAGE, {"input": data}, as_=as_))["sendMessage"]["id"]


async def notified_users(db: Any, message_id: str) -> list[str]:
    """The users holding a notification of the message, one entry per stored notification."""
    docs = await db.notifications.find({"message_id": message_id}).to_list()
    return sorted(doc["user_id"] for doc in docs)


async def unread_count(api: Any, as_: str, conversation_id: str) -> int:
    data = await api.gql(UNREAD_COUNT, {"id": conversation_id}, as_=as_)
    return data["conversation"]["unreadCount"]


def millis_now(offset_ms: int = 0) -> tuple[datetime, int]:
    at = datetime.now(UTC) + timedelta(milliseconds=offset_ms)
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)
    return at, int(at.timestamp() * 1000)


async def store_pending_message(
    db: Any,
    api: Any,
    conversation_id: str,
    author: str,
    recipients: list[str],
    text: str,
    age_ms: int = 60_000,
) -> str:
    """Store a reply exactly as `Conversations.send` does (counter first, then the message with
    its outbox flag), but stop there, as a process that died before the fan-out would."""
    created_at, created_ms = millis_now(-age_ms)
    message_id = str(ObjectId())
    counter = await db.conversations.find_one_and_update(
        {"_id": conversation_id},
        {
            "$inc": {"message_count": 1, "staff_count": 1, "client_count": 1},
            "$set": {
                "last_activity_ms": created_ms,
                "last_message_id": message_id,
                "client_activity_ms": created_ms,
                "client_last_message_id": message_id,
            },
        },
        return_document=ReturnDocument.AFTER,
    )
    await db.messages.insert_one(
        {
            "_id": message_id,
            "firm_id": counter["firm_id"],
            "conversation_id": conversation_id,
            "seq": int(counter["message_count"]),
            "kind": "MESSAGE",
            "staff_n": int(counter["staff_count"]),
            "client_n": int(counter["client_count"]),
            "author_id": uid(api, author),
            "body": f"<p>{text}</p>",
            "body_text": text,
            "attachment_ids": [],
            "created_at": created_at,
            "created_ms": created_ms,
            "fanout": "pending",
            "recipients": [uid(api, r) for r in recipients],
        }
    )
    return message_id
