"""The notification record.

`notifications {_id, firm_id, user_id, conversation_id, company_id, message_id, seq, created_at,
created_ms, unread, read_ms}`. `_id` is `<message id>:<user id>`, so writing a message's
notifications twice (a retry, the recovery after a crash) creates nothing twice. `company_id` is
the conversation's company (None when private), which the access policy filters on
(`policy.readable_notifications_filter`). `seq` is the message's, so that opening a conversation
marks exactly the notifications of the messages its read mark passed. `unread` is 1 or 0 and
`read_ms` epoch milliseconds, because the embedded server stores booleans and dates given to
`$set` as integers and text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from graphql_api.database import Document


def notification_id(message_id: str, user_id: str) -> str:
    return f"{message_id}:{user_id}"


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    firm_id: str
    user_id: str
    conversation_id: str
    message_id: str
    created_at: datetime
    read_ms: int | None

    @property
    def read_at(self) -> datetime | None:
        return None if self.read_ms is None else datetime.fromtimestamp(self.read_ms / 1000, UTC)

    @classmethod
    def from_doc(cls, doc: Document) -> Notification:
        return cls(
            id=doc["_id"],
            firm_id=doc["firm_id"],
            user_id=doc["user_id"],
            conversation_id=doc["conversation_id"],
            message_id=doc["message_id"],
            created_at=doc["created_at"],
            read_ms=doc.get("read_ms"),
        )
