"""`auditLog(...)` for admins (SPEC §17, §18): the firm's records, newest first, filtered.

The caller has checked the viewer is an admin (`policy.require_admin`, the field's guard); ids
from the arguments are parsed here, and another firm's company or user simply matches nothing
(a record is only ever read with the viewer's firm).
"""

from __future__ import annotations

from datetime import datetime

from graphql_api import clock
from graphql_api.compliance.audit import AuditFilter, page
from graphql_api.database import Db, Document
from graphql_api.directory.models import User
from graphql_api.errors import BadUserInput, NotFound
from graphql_api.ids import parse_id
from graphql_api.pagination import Page, decode_cursor, encode_cursor, page_size
from graphql_api.policy import require_admin

MAX_ACTION_LENGTH = 100


def audit_cursor(seq: int) -> str:
    return encode_cursor("a", str(seq))


def parse_audit_cursor(cursor: str) -> int:
    value = decode_cursor(cursor, "a", "after")
    if not (value.isascii() and value.isdigit()) or len(value) > 15:
        raise BadUserInput("after is not a valid cursor")
    return int(value)


async def audit_log(
    db: Db,
    viewer: User,
    *,
    first: int | None = None,
    after: str | None = None,
    company_id: object = None,
    user_id: object = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[Document]:
    """A page of the viewer's firm's records, newest first."""
    require_admin(viewer)
    size = page_size(first, "first")
    if action is not None and (len(action) > MAX_ACTION_LENGTH or not action.isprintable()):
        raise BadUserInput("action is not a known action", field="action")
    if company_id is not None:
        company_id = parse_id(company_id, "company")
        if await db.companies.find_one({"_id": company_id, "firm_id": viewer.firm_id}) is None:
            raise NotFound("company not found")
    where = AuditFilter(
        firm_id=viewer.firm_id,
        company_id=company_id,  # type: ignore[arg-type]
        actor_id=parse_id(user_id, "user") if user_id is not None else None,
        action=action,
        since_ms=_millis(since, "since"),
        until_ms=_millis(until, "until"),
    )
    before = parse_audit_cursor(after) if after is not None else None
    docs = await page(db, where, size + 1, before)
    return Page(
        items=docs[:size], has_next_page=len(docs) > size, has_previous_page=after is not None
    )


def _millis(at: datetime | None, name: str) -> int | None:
    if at is None:
        return None
    if at.tzinfo is None:
        raise BadUserInput(f"{name} must carry a time zone (for example 2026-01-31T00:00:00Z)")
    return clock.millis(at)
