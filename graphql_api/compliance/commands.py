"""The compliance commands of `messager` (SPEC §17), as functions of an open database:
`audit` (CSV or JSON Lines), `audit verify`, `export`, `erase-user` and `purge`.

`graphql_api.cli` parses the arguments and prints; these do the work and answer what to print.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from graphql_api import clock
from graphql_api.attachments.store import AttachmentStore
from graphql_api.compliance import audit, chain, erasure, export, retention
from graphql_api.database import Db
from graphql_api.directory.models import Company

CSV_FIELDS = (
    "id",
    "firm_id",
    "seq",
    "at",
    "actor_id",
    "action",
    "conversation_id",
    "company_id",
    "details",
    "address",
    "prev_hash",
    "hash",
)


class CompanyChoiceError(LookupError):
    """The company key names no company, or one in each of several firms."""


async def firm_ids(db: Db, firm_key: str | None) -> list[str]:
    """The firm with that key, or every firm."""
    if firm_key is not None:
        doc = await db.firms.find_one({"key": firm_key})
        if doc is None:
            raise CompanyChoiceError(f"no firm with key {firm_key!r}")
        return [doc["_id"]]
    return [doc["_id"] async for doc in db.firms.find({"_id": {"$gte": ""}}, {"_id": 1})]


async def audit_lines(
    db: Db, firms: list[str], since: datetime | None, until: datetime | None, form: str
) -> AsyncIterator[str]:
    """Every matching record of the firms, oldest first, one line each (CSV has a header)."""
    if form == "csv":
        yield _csv_row(CSV_FIELDS)
    for firm_id in firms:
        where = audit.AuditFilter(
            firm_id=firm_id,
            since_ms=clock.millis(since) if since else None,
            until_ms=clock.millis(until) if until else None,
        )
        async for doc in audit.all_records(db, where):
            record = audit.public_record(doc)
            if form == "csv":
                record["details"] = json.dumps(record["details"], sort_keys=True)
                yield _csv_row(["" if record[f] is None else str(record[f]) for f in CSV_FIELDS])
            else:
                yield json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"


def _csv_row(values: object) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)  # type: ignore[arg-type]
    return out.getvalue()


async def verify(db: Db) -> tuple[list[str], list[str]]:
    """Check every firm's chain: (lines for intact firms, lines naming each broken one)."""
    good, bad = [], []
    for firm_id, checked, problem in await chain.verify_all(db):
        if problem is None:
            good.append(f"firm {firm_id}: {checked} records, chain intact")
        else:
            bad.append(problem.describe())
    return good, bad


async def company_by_key(db: Db, key: str, firm_key: str | None) -> Company:
    query: dict[str, object] = {"key": {"$eq": key}}
    firms = await firm_ids(db, firm_key) if firm_key else None
    docs = await db.companies.find(
        {"firm_id": {"$in": firms}, **query} if firms else {"firm_id": {"$gte": ""}, **query}
    ).to_list()
    if not docs:
        raise CompanyChoiceError(f"no company with key {key!r}")
    if len(docs) > 1:
        raise CompanyChoiceError(f"several firms have a company {key!r}: name one with --firm")
    return Company.from_doc(docs[0])


async def export_to_file(db: Db, company: Company, out: Path) -> int:
    """Write the company's ZIP to `out` (through a temporary name: never half a file)."""
    partial = out.with_name(out.name + ".partial")
    chunks = await export.company_zip(db, AttachmentStore(db), company, audit.Actor.command_line())
    with partial.open("wb") as handle:
        size = await _write(chunks, handle)
    partial.replace(out)
    return size


async def _write(chunks: AsyncIterator[bytes], handle: BinaryIO) -> int:
    size = 0
    async for chunk in chunks:
        handle.write(chunk)
        size += len(chunk)
    return size


async def erase(db: Db, email: str, delete_messages: bool) -> tuple[erasure.Erased | None, int]:
    """Erase the user with this email, after finishing the erasures a crash interrupted
    (their email is gone already: only this finds them again); answer the erasure (None if no
    user has the email) and how many interrupted ones were finished."""
    store = AttachmentStore(db)
    finished = await erasure.finish_erasures(db, store, clock.now_ms() + 1)
    try:
        return await erasure.erase_user(db, store, email, delete_messages=delete_messages), finished
    except erasure.UnknownUser:
        return None, finished


async def purge(db: Db) -> int:
    return await retention.purge_once(db, AttachmentStore(db))
