"""The compliance root field (SPEC §17, §18), composed into Query by `schema.schema`."""

from __future__ import annotations

import strawberry

from resolvers.compliance import resolve_audit_log
from schema.compliance_types import AuditEntryConnection
from schema.permissions import Admin, guarded


@strawberry.type
class ComplianceQuery:
    audit_log: AuditEntryConnection = strawberry.field(
        resolver=resolve_audit_log,
        description="The firm's audit log, newest first (admins only: FORBIDDEN for others). "
        "Filters: company, acting user, action, `since` inclusive, `until` exclusive.",
        **guarded(Admin),
    )
