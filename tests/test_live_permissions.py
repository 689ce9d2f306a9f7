"""Open WebSockets follow the viewer's current permissions (SPEC §3 and §8; issue 20, finding 2).

Every operation on a socket, each query, each mutation and each subscription event, runs with the
viewer as stored now (read through the process's user cache), not as it was at
`connection_init`: a client removed from its company or a practitioner who removed a favorite
stops reading at once, a deleted user's subscriptions end with UNAUTHENTICATED and its socket's
operations answer UNAUTHENTICATED, and a replaced user document applies like an updated one.

Changes made by this process (a favorite removed over HTTP) apply at once; changes made straight
in the database, as another process would, apply once the change stream has delivered them:
`tests/user_writes.py` waits for that event. Real app, real sockets (`tests/ws_client.py`).

The standard directory (`tests/factories.py`): practitioners alice (favorite bakery) and paul (no
favorites); clients bob (bakery; favorite bakery) and carla (bakery).
"""

from __future__ import annotations

from typing import Any

from tests.conversation_helpers import (
    ADD_FAVORITE,
    REMOVE_FAVORITE,
    company_id,
    create,
    send,
    set_companies,
    user_id,
)
from tests.subscription_helpers import connect, wait_for_subscribers
from tests.user_writes import delete_user, replace_user
from tests.ws_client import (
    GraphQLWs,
    complete_message,
    error_message,
    next_message,
)

HISTORY = """
query($id: ID!) {
  conversation(id: $id) { messages(last: 10) { edges { cursor node { bodyText } } } }
}
"""
SEND = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { bodyText } }"
VIEWER = "{ viewer { name } }"
MESSAGE_TEXT = """
subscription($c: ID!, $after: String) {
  messageAdded(conversationId: $c, after: $after) { bodyText }
}
"""
NOTIFICATION_ADDED = "subscription { notificationAdded { id } }"
INBOX_UPDATED = "subscription { inboxUpdated { id } }"

NOT_FOUND = ("conversation not found", "NOT_FOUND")
DELETED = ("the token's user no longer exists", "UNAUTHENTICATED")


async def run(client: GraphQLWs, document: str, variables: dict[str, Any] | None = None) -> Any:
    """One query or mutation over the socket: its payload (data, and errors if any)."""
    operation = await client.subscribe(document, variables)
    answer = await client.receive()
    assert answer["id"] == operation and answer["type"] == "next", answer
    assert await client.receive() == complete_message(operation)
    return answer["payload"]


def error_of(payload: Any) -> tuple[str, str]:
    (error,) = payload["errors"]
    return error["message"], error["extensions"]["code"]


async def history(client: GraphQLWs, conversation_id: str) -> list[str] | None:
    """The texts of the conversation as read over the socket; None when it is not readable."""
    payload = await run(client, HISTORY, {"id": conversation_id})
    conversation = payload["data"]["conversation"]
    if conversation is None:
        return None
    return [edge["node"]["bodyText"] for edge in conversation["messages"]["edges"]]


async def reply(client: GraphQLWs, conversation_id: str, text: str) -> Any:
    message = {"conversationId": conversation_id, "body": f"<p>{text}</p>"}
    return await run(client, SEND, {"input": message})


async def newest_cursor(client: GraphQLWs, conversation_id: str) -> str:
    payload = await run(client, HISTORY, {"id": conversation_id})
    return payload["data"]["conversation"]["messages"]["edges"][-1]["cursor"]


async def test_a_client_removed_from_its_company_stops_reading_it_on_its_open_socket(api, db):
    cid = (await create(api, "alice", "COMPANY", ["bob"], company="bakery", body="<p>One</p>"))[
        "id"
    ]
    async with await connect(api, "bob") as bob:
        assert await history(bob, cid) == ["One"]
        live = await bob.subscribe(MESSAGE_TEXT, {"c": cid, "after": await newest_cursor(bob, cid)})
        await send(api, "alice", cid, "<p>Two</p>")
        assert await bob.next_data(live) == {"messageAdded": {"bodyText": "Two"}}

        await set_companies(db, api, "bob", [])  # as an import would; returns once the app knows
        # The subscription says why it ends, without waiting for the next message.
        assert await bob.receive() == error_message(live, *NOT_FOUND)
        assert await bob.receive() == complete_message(live)
        await send(api, "alice", cid, "<p>Three, after the removal</p>")
        assert await history(bob, cid) is None
        assert error_of(await reply(bob, cid, "still here?")) == NOT_FOUND
        await bob.ping()  # the socket itself stays open
    assert await api.gql(HISTORY, {"id": cid}, as_="bob") == {"conversation": None}
    # The conversation goes on without bob: alice reads the message he no longer sees.
    read_by_alice = (await api.gql(HISTORY, {"id": cid}, as_="alice"))["conversation"]
    assert [edge["node"]["bodyText"] for edge in read_by_alice["messages"]["edges"]] == [
        "One",
        "Two",
        "Three, after the removal",
    ]


async def test_a_favorite_removed_over_http_stops_reading_on_the_open_socket_at_once(api):
    # alice reads it only through her favorite bakery.
    cid = (await create(api, "bob", "COMPANY", ["paul"], company="bakery", body="<p>Hi</p>"))["id"]
    bakery = company_id(api, "bakery")
    async with await connect(api, "alice") as alice:
        assert await history(alice, cid) == ["Hi"]
        assert await api.gql(REMOVE_FAVORITE, {"id": bakery}, as_="alice") == {
            "removeFavoriteCompany": {"id": bakery, "isFavorite": False}
        }
        assert await history(alice, cid) is None
        assert error_of(await reply(alice, cid, "a reply")) == NOT_FOUND

        await api.gql(ADD_FAVORITE, {"id": bakery}, as_="alice")
        assert await history(alice, cid) == ["Hi"]
        assert await reply(alice, cid, "back") == {"data": {"sendMessage": {"bodyText": "back"}}}


async def test_a_favorite_removed_on_the_socket_applies_to_the_sockets_next_operation(api):
    cid = (await create(api, "bob", "COMPANY", ["paul"], company="bakery", body="<p>Hi</p>"))["id"]
    bakery = company_id(api, "bakery")
    async with await connect(api, "alice") as alice:
        assert await run(alice, REMOVE_FAVORITE, {"id": bakery}) == {
            "data": {"removeFavoriteCompany": {"id": bakery, "isFavorite": False}}
        }
        assert await history(alice, cid) is None


async def test_a_deleted_users_subscriptions_end_and_its_socket_answers_unauthenticated(api, db):
    cid = (await create(api, "bob", "COMPANY", ["paul"], company="bakery"))["id"]
    async with await connect(api, "bob") as bob:
        after = await newest_cursor(bob, cid)
        operations = [
            await bob.subscribe(MESSAGE_TEXT, {"c": cid, "after": after}),
            await bob.subscribe(NOTIFICATION_ADDED),
            await bob.subscribe(INBOX_UPDATED),
        ]
        await wait_for_subscribers(api, len(operations))

        await delete_user(db, api.http.app, user_id(api, "bob"))
        received = [await bob.receive() for _ in range(2 * len(operations))]
        assert sorted(received, key=lambda m: (m["id"], m["type"] == "complete")) == [
            message
            for operation in operations
            for message in (error_message(operation, *DELETED), complete_message(operation))
        ]
        assert error_of(await run(bob, VIEWER)) == DELETED
        assert error_of(await reply(bob, cid, "from beyond")) == DELETED
        assert error_of(await run(bob, HISTORY, {"id": cid})) == DELETED
    assert await api.error_code(VIEWER, as_="bob") == "UNAUTHENTICATED"


async def test_a_replaced_user_document_applies_on_the_open_socket_and_over_http(api, db):
    cid = (await create(api, "bob", "COMPANY", ["paul"], company="bakery", body="<p>Hi</p>"))["id"]
    alice_id = user_id(api, "alice")
    async with await connect(api, "alice") as alice:
        live = await alice.subscribe(
            MESSAGE_TEXT, {"c": cid, "after": await newest_cursor(alice, cid)}
        )
        await wait_for_subscribers(api, 1)
        replacement = await db.users.find_one({"_id": alice_id})
        replacement.update(name="Alice Renamed", favorite_company_ids=[])
        await replace_user(db, api.http.app, alice_id, replacement)

        assert await alice.receive() == error_message(live, *NOT_FOUND)
        assert await alice.receive() == complete_message(live)
        assert await run(alice, VIEWER) == {"data": {"viewer": {"name": "Alice Renamed"}}}
        assert await history(alice, cid) is None
    assert await api.gql(VIEWER, as_="alice") == {"viewer": {"name": "Alice Renamed"}}
    assert await api.gql(HISTORY, {"id": cid}, as_="alice") == {"conversation": None}


async def test_a_notification_subscription_goes_on_after_its_user_changes(api, db):
    """A change that keeps the user (a removed company) does not end `notificationAdded`: it
    goes on delivering what the user may still read."""
    private = (await create(api, "alice", "PRIVATE", ["bob"]))["id"]
    async with await connect(api, "bob") as bob:
        operation = await bob.subscribe(NOTIFICATION_ADDED)
        await wait_for_subscribers(api, 1)
        await set_companies(db, api, "bob", [])
        message = await send(api, "alice", private, "<p>Still private</p>")
        assert await bob.receive() == next_message(
            operation, {"notificationAdded": {"id": f"{message['id']}:{user_id(api, 'bob')}"}}
        )
