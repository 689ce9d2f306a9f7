"""Compliance tests' shared steps (SPEC §17): admins in the standard directory, conversations
with files, audit log reads, the ZIP export, and a scan of every collection."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from typing import Any

from graphql_api.database import Db
from graphql_api.directory.importer import import_directory
from tests.conftest import Api
from tests.conversation_helpers import create_input
from tests.factories import STANDARD_DIRECTORY
from tests.upload_helpers import uploaded

AUDIT_LOG = """
query Audit($first: Int, $after: String, $companyId: ID, $userId: ID, $action: String,
            $since: DateTime, $until: DateTime) {
  auditLog(first: $first, after: $after, companyId: $companyId, userId: $userId, action: $action,
           since: $since, until: $until) {
    edges { cursor node { id seq at action address details conversationId prevHash hash
                          actor { id name } company { id name } conversation { id subject } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

CREATE = """
mutation Create($input: CreateConversationInput!) {
  createConversation(input: $input) { id subject lastMessage { id attachments { id url } } }
}
"""


def directory_with(
    admins: tuple[str, ...] = ("alice", "olga"),
    retention_years: dict[str, int] | None = None,
    legal_hold: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The standard directory with admins, firm retentions and companies on legal hold."""
    directory = copy.deepcopy(STANDARD_DIRECTORY)
    for user in directory["users"]:
        if user["key"] in admins:
            user["admin"] = True
    for firm in directory["firms"]:
        if firm["key"] in (retention_years or {}):
            firm["retentionYears"] = (retention_years or {})[firm["key"]]
    for company in directory["companies"]:
        if company["key"] in legal_hold:
            company["legalHold"] = True
    return directory


async def make_admins(db: Db, **kwargs: Any) -> None:
    """Re-import the standard directory with admins (alice of acme, olga of other)."""
    await import_directory(db, directory_with(**kwargs))


async def audit_entries(api: Api, as_: str, **variables: Any) -> list[dict[str, Any]]:
    data = await api.gql(AUDIT_LOG, {"first": 100, **variables}, as_=as_)
    return [edge["node"] for edge in data["auditLog"]["edges"]]


async def conversation_with_file(
    api: Api,
    as_: str = "alice",
    data: bytes = b"%PDF-1.4 ledger",
    body: str = "<p>Ledger</p>",
    subject: str = "Annual accounts",
    filename: str = "ledger.pdf",
) -> tuple[str, str]:
    """A COMPANY conversation of bakery with bob, whose first message carries one file;
    answers (conversation id, attachment id)."""
    file = await uploaded(api, as_, data, filename=filename)
    created = await api.gql(
        CREATE,
        {
            "input": {
                **create_input(
                    api, "COMPANY", ["bob"], company="bakery", body=body, subject=subject
                ),
                "attachmentIds": [file["id"]],
            }
        },
        as_=as_,
    )
    return created["createConversation"]["id"], file["id"]


def opened_zip(data: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None  # every member's CRC checks
    return archive


def manifest_of(archive: zipfile.ZipFile) -> dict[str, Any]:
    [name] = [n for n in archive.namelist() if n.endswith("/manifest.json")]
    return json.loads(archive.read(name))


async def documents_mentioning(db: Db, *needles: str) -> list[str]:
    """Every document of every collection (GridFS included) whose BSON holds one of `needles`,
    case-insensitively, as `collection/_id`."""
    found = []
    lowered = [needle.lower() for needle in needles]

    def check(name: str, doc: dict[str, Any]) -> None:
        text = json.dumps(doc, default=_bytes_as_text, ensure_ascii=False).lower()
        if any(needle in text for needle in lowered):
            found.append(f"{name}/{doc.get('_id')}")

    file_ids: set[Any] = set()
    for name in sorted(await db.list_collection_names()):
        if name in ("fs_files", "fs.files"):
            # The embedded server's GridFS emulation answers a find on its files only by `_id`
            # (an empty filter never answers): read below, for every file that has chunks.
            continue
        async for doc in db[name].find({}):
            check(name, doc)
            if name in ("fs_chunks", "fs.chunks"):
                file_ids.add(doc["files_id"])
    for file_id in sorted(file_ids, key=str):
        doc = await db["fs.files"].find_one({"_id": file_id})
        if doc is not None:
            check("fs.files", doc)
    return found


def _bytes_as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
