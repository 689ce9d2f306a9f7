"""`AuditEntry` (SPEC §17, §18) and its connection: one record of the firm's audit log.

Built only from records of the admin viewer's firm (`graphql_api.compliance.audit_query`). The
conversation is shown only when the admin may read it under the one access policy (a purged or
unreadable one answers null; `conversationId` always says which it was).
"""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.scalars import JSON

from graphql_api.context import Info
from graphql_api.database import Document
from graphql_api.directory.models import former_user
from schema.conversation_types import Conversation
from schema.directory_types import Company, User
from schema.pagination import Connection


@strawberry.type(description="One record of the firm's append-only, hash-chained audit log.")
class AuditEntry:
    doc: strawberry.Private[Document]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.doc["_id"]))

    @strawberry.field(description="Its number in the firm's chain: 1, 2, 3...")
    def seq(self) -> int:
        return int(self.doc["seq"])

    @strawberry.field
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.doc["at_ms"] / 1000, UTC)

    @strawberry.field(description="Who acted; null for the command line and the system.")
    async def actor(self, info: Info) -> User | None:
        actor_id = self.doc.get("actor_id")
        if actor_id is None:
            return None
        user = await info.context.loaders.users.load(actor_id)
        return User(record=user or former_user(actor_id, self.doc["firm_id"]))

    @strawberry.field(
        description="What was done: conversation.created, conversation.participants_added, "
        "conversation.participant_removed, conversation.subject_changed, "
        "conversation.status_changed, conversation.assignee_changed, message.edited, "
        "message.deleted, attachment.downloaded, company.exported, conversation.purged, "
        "user.erased."
    )
    def action(self) -> str:
        return str(self.doc["action"])

    @strawberry.field
    def conversation_id(self) -> strawberry.ID | None:
        value = self.doc.get("conversation_id")
        return strawberry.ID(value) if value else None

    @strawberry.field(description="Null when purged since, or not readable by the viewer.")
    async def conversation(self, info: Info) -> Conversation | None:
        found = await info.context.readable_conversation(self.doc.get("conversation_id"))
        return Conversation(record=found) if found is not None else None

    @strawberry.field
    async def company(self, info: Info) -> Company | None:
        company_id = self.doc.get("company_id")
        found = await info.context.visible_company(company_id) if company_id else None
        return Company(record=found) if found is not None else None

    @strawberry.field(description="What changed, as JSON (ids, never names or addresses).")
    def details(self) -> JSON:
        return self.doc.get("details") or {}

    @strawberry.field(description="The client address the action came from.")
    def address(self) -> str | None:
        return self.doc.get("address")

    @strawberry.field(description="SHA-256 of the record before it in the chain.")
    def prev_hash(self) -> str:
        return str(self.doc["prev_hash"])

    @strawberry.field(description="SHA-256 of this record's content and `prevHash`.")
    def hash(self) -> str:
        return str(self.doc["hash"])


AuditEntryConnection = Connection[AuditEntry]
