"""Retention (SPEC §17): the purge removes exactly the conversations past their firm's
`retentionYears`, with everything hanging off them, never a company on legal hold; each purge is
audited; a purge a crash interrupted is finished by the next run; several processes may run it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from graphql_api.attachments.store import AttachmentStore
from graphql_api.compliance import chain, retention
from graphql_api.database import connect, database_of
from tests.cli_helpers import cli_env, messager
from tests.compliance_helpers import audit_entries, conversation_with_file, make_admins
from tests.conftest import Api
from tests.conversation_helpers import create, inbox_subjects, send

TWO_YEARS_AGO_MS = int(datetime(datetime.now(UTC).year - 2, 1, 1, tzinfo=UTC).timestamp() * 1000)
SEARCH = 'query { search(query: "ledger", first: 10) { edges { node { snippet } } } }'


@pytest.fixture
async def aged(api: Api, db) -> dict[str, str]:
    """acme keeps 1 year, garage is on legal hold; `other` keeps forever. Conversations:
    old (bakery, with a file, a reply, notifications and read marks), old_private, held
    (garage), recent (bakery), and other_old (firm `other`); the old ones 2 years quiet."""
    await make_admins(db, retention_years={"acme": 1}, legal_hold=("garage",))
    old, _ = await conversation_with_file(api, subject="Old ledger")
    await send(api, "bob", old, "<p>Old reply about the ledger</p>")
    conversations = {
        "old": old,
        "old_private": (await create(api, "alice", "PRIVATE", ["paul"], subject="Old lunch"))["id"],
        "held": (await create(api, "dan", "COMPANY", ["alice"], company="garage", subject="Held"))[
            "id"
        ],
        "recent": (await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="New"))[
            "id"
        ],
        "other_old": (
            await create(api, "olga", "COMPANY", ["oscar"], company="rival", subject="Other old")
        )["id"],
    }
    for key in ("old", "old_private", "held", "other_old"):
        await db.conversations.update_one(
            {"_id": conversations[key]}, {"$set": {"last_activity_ms": TWO_YEARS_AGO_MS}}
        )
    return conversations


async def remains_of(db, conversation_id: str) -> dict[str, int]:
    of = {"conversation_id": conversation_id}
    files = [doc["_id"] for doc in await db.attachments.find(of).to_list()]
    return {
        "conversations": await db.conversations.count_documents({"_id": conversation_id}),
        "messages": await db.messages.count_documents(of),
        "notifications": await db.notifications.count_documents(of),
        "read_marks": await db.read_marks.count_documents(of),
        "attachments": len(files),
    }


NOTHING = {"conversations": 0, "messages": 0, "notifications": 0, "read_marks": 0, "attachments": 0}


async def purge(db) -> int:
    return await retention.purge_once(db, AttachmentStore(db))


async def test_the_purge_removes_exactly_what_is_past_retention(api: Api, db, aged):
    before = await remains_of(db, aged["old"])
    assert before["messages"] == 2 and before["attachments"] == 1 and before["notifications"] > 0
    [file_id] = [
        doc["_id"] for doc in await db.attachments.find({"conversation_id": aged["old"]}).to_list()
    ]
    chunks_before = len(await db["fs.chunks"].find({"files_id": file_id}).to_list())
    assert await purge(db) == 2
    assert await remains_of(db, aged["old"]) == NOTHING
    assert await remains_of(db, aged["old_private"]) == NOTHING
    assert await db["fs.files"].find_one({"_id": file_id}) is None
    assert await db["fs.chunks"].find({"files_id": file_id}).to_list() == []
    assert chunks_before > 0
    for kept in ("held", "recent", "other_old"):
        assert (await remains_of(db, aged[kept]))["conversations"] == 1, kept
    assert await inbox_subjects(api, "alice") == ["New", "Held"]
    assert (await api.gql(SEARCH, as_="alice"))["search"]["edges"] == []
    assert await purge(db) == 0  # nothing more is past retention


async def test_each_purge_is_audited_by_the_system(api: Api, db, aged):
    await purge(db)
    purged = await audit_entries(api, "alice", action="conversation.purged")
    assert sorted(e["conversationId"] for e in purged) == sorted([aged["old"], aged["old_private"]])
    assert {(e["actor"], e["address"], e["conversation"]) for e in purged} == {
        (None, "system", None)
    }
    assert await audit_entries(api, "olga", action="conversation.purged") == []


async def test_a_purge_a_crash_interrupted_is_finished_by_the_next_run(api: Api, db, aged):
    # What a process leaves when it dies right after the commit point: the purge recorded,
    # the conversation gone, everything else still there.
    doc = await db.conversations.find_one({"_id": aged["old"]})
    await retention._begin(db, doc, TWO_YEARS_AGO_MS + 1)
    await db.conversations.delete_one({"_id": aged["old"]})
    assert (await remains_of(db, aged["old"]))["messages"] == 2
    # Nothing half-deleted shows (the private one is not purged yet).
    assert await inbox_subjects(api, "alice") == ["New", "Held", "Old lunch"]
    await purge(db)
    assert await remains_of(db, aged["old"]) == NOTHING
    assert await db.purges.count_documents({}) == 0
    purged = await audit_entries(api, "alice", action="conversation.purged")
    assert sorted(e["conversationId"] for e in purged) == sorted([aged["old"], aged["old_private"]])


async def test_a_conversation_active_again_before_its_purge_is_kept(api: Api, db, aged):
    doc = await db.conversations.find_one({"_id": aged["old_private"]})
    await retention._begin(db, doc, TWO_YEARS_AGO_MS + 1)  # begun, then the process died
    await send(api, "paul", aged["old_private"], "<p>Back from lunch</p>")
    await purge(db)
    assert (await remains_of(db, aged["old_private"]))["messages"] == 2
    purged = await audit_entries(api, "alice", action="conversation.purged")
    assert [e["conversationId"] for e in purged] == [aged["old"]]


async def test_several_processes_purging_at_once_purge_each_conversation_once(
    api: Api, db, aged, mongo_uri
):
    clients = [connect(mongo_uri) for _ in range(3)]
    try:
        counts = await asyncio.gather(*(purge(database_of(client)) for client in clients))
    finally:
        for client in clients:
            await client.close()
    assert sum(counts) >= 2
    for key in ("old", "old_private"):
        assert await remains_of(db, aged[key]) == NOTHING
    purged = await audit_entries(api, "alice", action="conversation.purged")
    assert len(purged) == 2
    assert await chain.verify_firm(db, api.ids["firms"]["acme"]) == (
        len(await audit_entries(api, "alice")),
        None,
    )


async def test_the_purge_command_runs_it_now(api: Api, aged, tmp_path: Path, mongo_uri: str):
    env = cli_env(tmp_path / "data", mongo_uri)
    result = await messager("purge", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "purged 2 conversations past their firm's retention"
