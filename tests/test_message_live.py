"""Receipts and live changes (SPEC §14): `seenBy`, `readStates`, `messageUpdated` and
`conversationUpdated`, over real HTTP and WebSocket, with the per-event access checks of
`messageAdded`.

Directory: alice (practitioner, favorite bakery), paul (practitioner, no favorite), bob (client
of bakery), carla (client of bakery), olga (another firm).
"""

from __future__ import annotations

from tests.conftest import Api
from tests.conversation_helpers import MARK_READ, REMOVE_FAVORITE, company_id, create, send, user_id
from tests.documents import DELETE_MESSAGE, EDIT_MESSAGE
from tests.ws_client import GraphQLWs, bearer, error_message

RECEIPTS = """
query($id: ID!) { conversation(id: $id) {
  readStates { user { id } lastReadMessage { id } lastReadAt }
  messages { edges { node { id seenBy { id } } } }
} }
"""
MESSAGE_UPDATED = """
subscription($id: ID!) { messageUpdated(conversationId: $id) { id body deletedAt editedAt } }
"""
CONVERSATION_UPDATED = """
subscription($id: ID!) { conversationUpdated(conversationId: $id) {
  id readStates { user { id } lastReadMessage { id } } } }
"""


async def receipts(api: Api, as_: str, conversation_id: str) -> tuple[dict, dict]:
    """({reader: last read message id}, {message id: [seen by]}) as `as_` sees them."""
    data = (await api.gql(RECEIPTS, {"id": conversation_id}, as_=as_))["conversation"]
    states = {s["user"]["id"]: (s["lastReadMessage"] or {}).get("id") for s in data["readStates"]}
    seen = {
        e["node"]["id"]: sorted(u["id"] for u in e["node"]["seenBy"])
        for e in data["messages"]["edges"]
    }
    return states, seen


async def test_seen_by_and_read_states_follow_read_marks(api: Api):
    conversation = await create(api, "alice", "COMPANY", ["bob", "carla"], company="bakery")
    question = await send(api, "alice", conversation["id"], "<p>Did you get it?</p>")
    alice, bob, carla = (user_id(api, u) for u in ("alice", "bob", "carla"))

    states, seen = await receipts(api, "alice", conversation["id"])
    assert seen[question["id"]] == []
    assert states == {alice: question["id"], bob: None, carla: None}

    await api.gql(MARK_READ, {"id": conversation["id"]}, as_="bob")
    states, seen = await receipts(api, "alice", conversation["id"])
    assert seen[question["id"]] == [bob]
    assert states[bob] == question["id"]

    # A client sees the practitioners' receipts and its own, never another client's.
    await api.gql(MARK_READ, {"id": conversation["id"]}, as_="carla")
    states, seen = await receipts(api, "carla", conversation["id"])
    assert states == {alice: question["id"], carla: question["id"]}
    assert seen[question["id"]] == [carla]
    answer = await send(api, "bob", conversation["id"], "<p>Yes</p>")
    states, seen = await receipts(api, "carla", conversation["id"])
    assert seen[answer["id"]] == []  # alice has not read it yet
    states, seen = await receipts(api, "alice", conversation["id"])
    assert seen[question["id"]] == sorted([bob, carla])


async def test_receipts_are_for_participants_only(api: Api):
    conversation = await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    # carla reads it through her favorite; she is not a participant: no receipt of hers.
    await api.gql(
        "mutation($id: ID!) { addFavoriteCompany(companyId: $id) { id } }",
        {"id": company_id(api, "bakery")},
        as_="carla",
    )
    await api.gql(MARK_READ, {"id": conversation["id"]}, as_="carla")
    states, _ = await receipts(api, "alice", conversation["id"])
    assert set(states) == {user_id(api, "alice"), user_id(api, "bob")}


async def test_edits_and_deletions_arrive_live_to_readers_only(api: Api):
    conversation = await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    message = await send(api, "alice", conversation["id"], "<p>Draft</p>")
    async with (
        await GraphQLWs.connect(api.http, bearer(api.token("bob"))) as bob,
        await GraphQLWs.connect(api.http, bearer(api.token("olga"))) as olga,
    ):
        watching = await bob.subscribe(MESSAGE_UPDATED, {"id": conversation["id"]})
        refused = await olga.subscribe(MESSAGE_UPDATED, {"id": conversation["id"]})
        assert await olga.receive() == error_message(refused, "conversation not found", "NOT_FOUND")
        await bob.ping()
        await api.gql(EDIT_MESSAGE, {"id": message["id"], "body": "<p>Final</p>"}, as_="alice")
        edited = (await bob.next_data(watching))["messageUpdated"]
        assert (edited["id"], edited["body"], edited["deletedAt"]) == (
            message["id"],
            "<p>Final</p>",
            None,
        )
        await api.gql(DELETE_MESSAGE, {"id": message["id"]}, as_="alice")
        deleted = (await bob.next_data(watching))["messageUpdated"]
        assert deleted["body"] == "" and deleted["deletedAt"] is not None


async def test_losing_access_ends_message_updated(api: Api):
    conversation = await create(api, "paul", "COMPANY", ["bob"], company="bakery")
    message = await send(api, "paul", conversation["id"], "<p>Draft</p>")
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as alice:
        watching = await alice.subscribe(MESSAGE_UPDATED, {"id": conversation["id"]})
        await alice.ping()
        await api.gql(REMOVE_FAVORITE, {"id": company_id(api, "bakery")}, as_="alice")
        await api.gql(EDIT_MESSAGE, {"id": message["id"], "body": "<p>Secret</p>"}, as_="paul")
        assert await alice.receive() == error_message(
            watching, "conversation not found", "NOT_FOUND"
        )


async def test_read_receipts_change_live(api: Api):
    conversation = await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as alice:
        watching = await alice.subscribe(CONVERSATION_UPDATED, {"id": conversation["id"]})
        await alice.ping()
        await api.gql(MARK_READ, {"id": conversation["id"]}, as_="bob")
        update = (await alice.next_data(watching))["conversationUpdated"]
        states = {s["user"]["id"]: s["lastReadMessage"] for s in update["readStates"]}
        assert states[user_id(api, "bob")] is not None
