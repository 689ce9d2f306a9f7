"""Erasure (SPEC §17): after `messager erase-user`, the person's name and email are nowhere in
the database, its tokens fail, and the firm's messages stay readable as written by "Former
user" (emptied with `--delete-messages`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.compliance import chain, commands, erasure
from graphql_api.keys import SERVICES
from graphql_api.recovery import recover_once
from tests.cli_helpers import cli_env, messager
from tests.compliance_helpers import audit_entries, documents_mentioning, make_admins
from tests.conftest import Api
from tests.conversation_helpers import create, send
from tests.upload_helpers import uploaded
from tests.ws_client import WAIT_SECONDS

BOB = ("Bob Martin", "bob@bakery.test")
HISTORY = """query($id: ID!) { conversation(id: $id) {
  participants { id name }
  messages(first: 10) { edges { node { bodyText deletedAt author { id name } } } } } }"""
VIEWER = "{ viewer { name } }"
SETTINGS = (
    'mutation { updateNotificationSettings(email: DAILY, dailyHour: 8, timeZone: "Europe/Paris")'
    " { email } }"
)
SEARCH = 'query { search(query: "march", first: 10) { edges { node { snippet } } } }'


@pytest.fixture
async def bobs_traces(api: Api, db) -> dict[str, Any]:
    """bob everywhere: conversations, messages, notifications, read marks, favorites, email
    settings, an upload never attached, audit records."""
    await make_admins(db)
    first = await create(api, "bob", "COMPANY", ["alice"], company="bakery", subject="Invoices")
    await send(api, "bob", first["id"], "<p>March invoices attached</p>")
    await send(api, "alice", first["id"], "<p>Thank you</p>")  # notifies bob
    second = await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="Payroll")
    await api.gql(SETTINGS, as_="bob")
    await uploaded(api, "bob", b"draft", filename="draft.txt")
    assert await documents_mentioning(db, *BOB)  # the scan finds what is there
    return {"first": first["id"], "second": second["id"], "bob": api.ids["users"]["bob"]}


async def erase(db, delete_messages: bool = False) -> erasure.Erased:
    erased, _ = await commands.erase(db, BOB[1], delete_messages)
    assert erased is not None
    return erased


async def test_after_erasure_the_name_and_email_are_nowhere_in_the_database(db, bobs_traces):
    await erase(db)
    assert await documents_mentioning(db, *BOB) == []
    assert await db.users.find_one({"_id": bobs_traces["bob"]}) is None
    assert await db.notifications.count_documents({"user_id": bobs_traces["bob"]}) == 0
    assert await db.read_marks.count_documents({"user_id": bobs_traces["bob"]}) == 0


async def test_the_firms_messages_stay_readable_as_written_by_a_former_user(
    api: Api, db, bobs_traces
):
    await erase(db)
    data = await api.gql(HISTORY, {"id": bobs_traces["first"]}, as_="alice")
    messages = [edge["node"] for edge in data["conversation"]["messages"]["edges"]]
    assert [(m["author"]["name"], m["bodyText"]) for m in messages] == [
        ("Former user", "Hello"),
        ("Former user", "March invoices attached"),
        ("Alice Roy", "Thank you"),
    ]
    names = {p["name"] for p in data["conversation"]["participants"]}
    assert names == {"Former user", "Alice Roy"}
    assert len((await api.gql(SEARCH, as_="alice"))["search"]["edges"]) == 1


async def test_delete_messages_empties_what_the_user_wrote(api: Api, db, bobs_traces):
    erased = await erase(db, delete_messages=True)
    assert erased.messages_emptied == 2
    data = await api.gql(HISTORY, {"id": bobs_traces["first"]}, as_="alice")
    messages = [edge["node"] for edge in data["conversation"]["messages"]["edges"]]
    assert [(m["bodyText"], m["deletedAt"] is not None) for m in messages] == [
        ("", True),
        ("", True),
        ("Thank you", False),
    ]
    assert (await api.gql(SEARCH, as_="alice"))["search"]["edges"] == []
    assert await documents_mentioning(db, "March invoices") == []


async def test_the_users_tokens_stop_working(api: Api, db, bobs_traces):
    assert (await api.gql(VIEWER, as_="bob"))["viewer"]["name"] == "Bob Martin"  # cached now
    await erase(db)
    # Another process's write: the users change stream evicts bob from this app's cache.
    async with asyncio.timeout(WAIT_SECONDS):
        while (await api.raw(VIEWER, as_="bob")).get("data"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert await api.error_code(VIEWER, as_="bob") == "UNAUTHENTICATED"
    fresh = api.tokens.issue(bobs_traces["bob"], ttl_seconds=60)
    answer = await api.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {fresh}"}
    )
    assert (await answer.json())["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_the_erasure_is_audited_without_the_persons_data(api: Api, db, bobs_traces):
    await erase(db)
    [entry] = await audit_entries(api, "alice", action="user.erased")
    assert (entry["actor"], entry["address"]) == (None, "command line")
    assert entry["details"] == {"userId": bobs_traces["bob"], "messagesDeleted": False}
    created = await audit_entries(api, "alice", action="conversation.created")
    assert {e["actor"]["name"] for e in created} == {"Former user", "Alice Roy"}
    assert await chain.verify_firm(db, api.ids["firms"]["acme"]) == (3, None)


@pytest.fixture
async def quick_api(aiohttp_client: Any, settings, ids) -> Api:
    quick = settings.model_copy(
        update={"recovery_grace_seconds": 0.001, "recovery_interval_seconds": 3600}
    )
    return Api(await aiohttp_client(init_app(quick)), TokenService(quick), ids)


async def test_an_erasure_a_crash_interrupted_is_finished_by_the_recovery(
    quick_api: Api, db, bobs_traces
):
    user_id = await erasure.begin_erasure(db, BOB[1])  # then the process died
    assert await quick_api.error_code(VIEWER, as_="bob") == "UNAUTHENTICATED"
    assert await documents_mentioning(db, *BOB) == []  # the user document is scrubbed first
    assert await db.notifications.count_documents({"user_id": user_id}) > 0
    await recover_once(quick_api.http.app[SERVICES])
    assert await db.notifications.count_documents({"user_id": user_id}) == 0
    assert await db.users.find_one({"_id": user_id}) is None
    assert len(await audit_entries(quick_api, "alice", action="user.erased")) == 1


async def test_erase_user_from_the_command_line(
    api: Api, bobs_traces, db, tmp_path: Path, mongo_uri: str
):
    env = cli_env(tmp_path / "data", mongo_uri)
    result = await messager("erase-user", "Bob@Bakery.test", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"erased user {bobs_traces['bob']}: personal data removed, messages kept"
    )
    assert await documents_mentioning(db, *BOB) == []
    again = await messager("erase-user", BOB[1], env=env, cwd=tmp_path)
    assert again.returncode == 1 and "no user with email" in again.stderr
