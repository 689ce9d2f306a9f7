"""Resolver of `Query.auditLog`: parse, call the audit query, map to the contract's types."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.compliance.audit_query import audit_cursor, audit_log
from graphql_api.context import Info
from schema.compliance_types import AuditEntry, AuditEntryConnection
from schema.pagination import connection


async def resolve_audit_log(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    company_id: strawberry.ID | None = None,
    user_id: strawberry.ID | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AuditEntryConnection:
    context = info.context
    page = await audit_log(
        context.services.db,
        context.viewer,
        first=first,
        after=after,
        company_id=company_id,
        user_id=user_id,
        action=action,
        since=since,
        until=until,
    )
    return connection(
        page, cursor=lambda doc: audit_cursor(doc["seq"]), node=lambda doc: AuditEntry(doc=doc)
    )
