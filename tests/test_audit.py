"""The audit log (SPEC §17): one record per audited action, written with it, read by admins
only, and chained so that a change behind the API's back is found and named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.compliance import audit, chain
from graphql_api.conversations.models import ConversationType, new_conversation_doc
from graphql_api.ids import new_id
from graphql_api.keys import SERVICES
from graphql_api.recovery import recover_once
from tests.compliance_helpers import AUDIT_LOG, audit_entries, conversation_with_file, make_admins
from tests.conftest import Api
from tests.conversation_helpers import company_id, create, create_input, send, user_id


@pytest.fixture
async def admins(db, ids) -> None:
    await make_admins(db)


async def test_creating_a_conversation_leaves_one_record_an_admin_reads(api: Api, admins):
    created = await create(api, "bob", "COMPANY", ["alice"], company="bakery", subject="VAT")
    [entry] = await audit_entries(api, "alice")
    assert entry["action"] == "conversation.created"
    assert entry["actor"] == {"id": user_id(api, "bob"), "name": "Bob Martin"}
    assert entry["conversationId"] == created["id"]
    assert entry["company"] == {"id": company_id(api, "bakery"), "name": "Martin Bakery"}
    assert entry["address"] == "127.0.0.1"
    assert entry["details"] == {
        "type": "COMPANY",
        "participantIds": [user_id(api, "bob"), user_id(api, "alice")],
    }
    assert (entry["seq"], entry["prevHash"]) == (1, chain.GENESIS)


async def test_a_creation_that_fails_leaves_no_record(api: Api, admins, db):
    data = create_input(api, "COMPANY", ["olga"], company="bakery")  # another firm's user
    answer = await api.raw(
        "mutation($i: CreateConversationInput!) { createConversation(input: $i) { id } }",
        {"i": data},
        as_="alice",
    )
    assert answer["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert await audit_entries(api, "alice") == []
    assert await db.audit_log.count_documents({}) == 0


@pytest.mark.parametrize("user", ["paul", "bob"])
async def test_the_audit_log_is_forbidden_to_a_practitioner_or_client_who_is_not_admin(
    api: Api, admins, user: str
):
    await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    assert await api.error_code(AUDIT_LOG, {}, as_=user) == "FORBIDDEN"


async def test_an_admin_reads_only_its_firm_and_another_firms_company_is_not_found(
    api: Api, admins
):
    await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    await create(api, "olga", "COMPANY", ["oscar"], company="rival")
    assert [e["action"] for e in await audit_entries(api, "olga")] == ["conversation.created"]
    [olgas] = await audit_entries(api, "olga")
    assert olgas["company"]["name"] == "Rival Bakery"
    rival = company_id(api, "rival")
    code = await api.error_code(AUDIT_LOG, {"companyId": rival}, as_="alice")
    assert code == "NOT_FOUND"


async def test_filters_and_pages_select_exactly_the_matching_records(api: Api, admins):
    for subject in ("one", "two", "three"):
        await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject=subject)
    await create(api, "bob", "COMPANY", ["alice"], company="bakery", subject="four")
    await create(api, "dan", "COMPANY", ["alice"], company="garage", subject="five")
    by_bob = await audit_entries(api, "alice", userId=user_id(api, "bob"))
    assert [e["actor"]["name"] for e in by_bob] == ["Bob Martin"]
    garage = await audit_entries(api, "alice", companyId=company_id(api, "garage"))
    assert [e["conversation"]["subject"] for e in garage] == ["five"]
    assert await audit_entries(api, "alice", action="attachment.downloaded") == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await audit_entries(api, "alice", since=future) == []
    assert len(await audit_entries(api, "alice", until=future)) == 5
    first = await api.gql(AUDIT_LOG, {"first": 2}, as_="alice")
    page = first["auditLog"]
    assert [e["node"]["seq"] for e in page["edges"]] == [5, 4]
    rest = await api.gql(
        AUDIT_LOG, {"first": 10, "after": page["pageInfo"]["endCursor"]}, as_="alice"
    )
    assert [e["node"]["seq"] for e in rest["auditLog"]["edges"]] == [3, 2, 1]
    assert rest["auditLog"]["pageInfo"]["hasNextPage"] is False


async def test_a_download_of_a_conversations_file_is_recorded_with_who_and_where(api: Api, admins):
    conversation_id, attachment_id = await conversation_with_file(api)
    response = await api.http.get(f"/attachments/{attachment_id}", headers=api.headers("bob"))
    assert response.status == 200
    [download] = await audit_entries(api, "alice", action="attachment.downloaded")
    assert download["actor"]["name"] == "Bob Martin"
    assert download["conversationId"] == conversation_id
    assert download["details"] == {"attachmentId": attachment_id, "filename": "ledger.pdf"}
    refused = await api.http.get(f"/attachments/{attachment_id}", headers=api.headers("dan"))
    assert refused.status == 404
    assert len(await audit_entries(api, "alice", action="attachment.downloaded")) == 1


# -- written with the action: a crash between the action and the log --------------------------


@pytest.fixture
async def quick_api(aiohttp_client: Any, settings, ids, db) -> Api:
    """The app with a one-second recovery grace period."""
    await make_admins(db)
    quick = settings.model_copy(
        update={"recovery_grace_seconds": 1.0, "recovery_interval_seconds": 3600}
    )
    return Api(await aiohttp_client(init_app(quick)), TokenService(quick), ids)


async def crashed_creation(db, api: Api) -> str:
    """What a creation leaves when its process dies after storing the conversation (the commit
    point, carrying its audit entry) and before chaining the entry: the same documents."""
    now = datetime.now(UTC) - timedelta(seconds=5)
    conversation_id = new_id()
    doc = new_conversation_doc(
        conversation_id=conversation_id,
        firm_id=api.ids["firms"]["acme"],
        kind=ConversationType.PRIVATE,
        company_id=None,
        subject="Crashed",
        participant_ids=[user_id(api, "alice"), user_id(api, "paul")],
        created_by=user_id(api, "alice"),
        created_at=now,
        first_message_id=new_id(),
        client_visible_by=[],
        client_message_id=None,
    )
    entry = audit.new_entry(
        doc["firm_id"],
        audit.Actor(user_id(api, "alice"), "10.0.0.7"),
        audit.AuditAction.CONVERSATION_CREATED,
        conversation_id=conversation_id,
        at=now,
    )
    doc.update(audit.pending_document_fields(entry))
    await db.conversations.insert_one(doc)
    return conversation_id


async def test_a_record_is_never_lost_when_the_process_dies_after_the_action(quick_api: Api, db):
    conversation_id = await crashed_creation(db, quick_api)
    assert await audit_entries(quick_api, "alice") == []  # the crash: not chained yet
    services = quick_api.http.app[SERVICES]
    await recover_once(services)
    await recover_once(services)  # twice, as several processes would: still one record
    [entry] = await audit_entries(quick_api, "alice")
    assert (entry["conversationId"], entry["address"]) == (conversation_id, "10.0.0.7")
    stored = await db.conversations.find_one({"_id": conversation_id})
    assert audit.PENDING_SINCE not in stored and not stored.get(audit.PENDING)


async def test_a_record_whose_writer_died_after_taking_its_number_is_stored_by_the_next(
    quick_api: Api, db
):
    await create(quick_api, "alice", "COMPANY", ["bob"], company="bakery")
    # The process took number 2 (the head carries the record) and died before storing it.
    head = await db.audit_chains.find_one({})
    entry = audit.new_entry(
        head["_id"], audit.Actor.system(), audit.AuditAction.CONVERSATION_PURGED
    )
    record = {**entry, "seq": 2, "prev_hash": head["hash"]}
    record["hash"] = chain.content_hash(record)
    await db.audit_chains.update_one(
        {"_id": head["_id"]}, {"$set": {"seq": 2, "hash": record["hash"], "pending": record}}
    )
    await create(quick_api, "alice", "COMPANY", ["bob"], company="bakery")
    entries = await audit_entries(quick_api, "alice")
    assert [e["seq"] for e in entries] == [3, 2, 1]
    assert [e["action"] for e in entries][1] == "conversation.purged"
    assert await chain.verify_firm(db, head["_id"]) == (3, None)


# -- the conversation's life (SPEC §13, §14) ---------------------------------------------------

LIFECYCLE = {
    "add": "mutation($c: ID!, $u: [ID!]!) { addParticipants(conversationId: $c, userIds: $u) "
    "{ id } }",
    "remove": "mutation($c: ID!, $u: ID!) { removeParticipant(conversationId: $c, userId: $u) "
    "{ id } }",
    "rename": "mutation($c: ID!, $s: String!) { renameConversation(conversationId: $c, "
    "subject: $s) { id } }",
    "status": "mutation($c: ID!) { setConversationStatus(conversationId: $c, status: RESOLVED) "
    "{ id } }",
    "assign": "mutation($c: ID!, $u: ID) { assignConversation(conversationId: $c, "
    "assigneeId: $u) { id } }",
    "edit": "mutation($m: ID!, $b: String!) { editMessage(messageId: $m, body: $b) { id } }",
    "delete": "mutation($m: ID!) { deleteMessage(messageId: $m) { id } }",
}


async def test_every_change_of_a_conversation_and_its_messages_leaves_one_record(api: Api, admins):
    created = await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="VAT")
    c = created["id"]
    paul, carla = user_id(api, "paul"), user_id(api, "carla")
    await api.gql(LIFECYCLE["add"], {"c": c, "u": [carla]}, as_="alice")
    await api.gql(LIFECYCLE["remove"], {"c": c, "u": carla}, as_="alice")
    await api.gql(LIFECYCLE["rename"], {"c": c, "s": "VAT 2026"}, as_="bob")
    await api.gql(LIFECYCLE["status"], {"c": c}, as_="alice")
    await api.gql(LIFECYCLE["assign"], {"c": c, "u": paul}, as_="alice")
    sent = await send(api, "bob", c, "<p>Draft</p>")
    await api.gql(LIFECYCLE["edit"], {"m": sent["id"], "b": "<p>Final</p>"}, as_="bob")
    await api.gql(LIFECYCLE["delete"], {"m": sent["id"]}, as_="alice")
    entries = list(reversed(await audit_entries(api, "alice")))
    assert [(e["action"], e["actor"]["name"]) for e in entries] == [
        ("conversation.created", "Alice Roy"),
        ("conversation.participants_added", "Alice Roy"),
        ("conversation.participant_removed", "Alice Roy"),
        ("conversation.subject_changed", "Bob Martin"),
        ("conversation.status_changed", "Alice Roy"),
        ("conversation.assignee_changed", "Alice Roy"),
        ("message.edited", "Bob Martin"),
        ("message.deleted", "Alice Roy"),
    ]
    assert {e["conversationId"] for e in entries} == {c}
    assert entries[1]["details"] == {"added_user_ids": [carla]}
    assert entries[3]["details"] == {"old_subject": "VAT", "new_subject": "VAT 2026"}
    assert entries[5]["details"] == {
        "added_user_ids": [paul],
        "assignee_id": paul,
        "assignee_changed": True,
    }
    assert entries[7]["details"]["messageId"] == sent["id"]


async def test_a_refused_change_leaves_no_record(api: Api, admins):
    created = await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    code = await api.error_code(LIFECYCLE["status"], {"c": created["id"]}, as_="bob")
    assert code == "FORBIDDEN"
    sent = await send(api, "alice", created["id"], "<p>Mine</p>")
    code = await api.error_code(LIFECYCLE["edit"], {"m": sent["id"], "b": "<p>x</p>"}, as_="bob")
    assert code in ("FORBIDDEN", "NOT_FOUND")
    assert [e["action"] for e in await audit_entries(api, "alice")] == ["conversation.created"]
