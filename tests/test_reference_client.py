"""Subscriptions driven by the client library frontends use: `graphql-ws` on `ws`, under Node.

`tests/js/subscribe.mjs` subscribes to `messageAdded` and prints one JSON line per event on stdout
(see its header); `tests/node_clients.py` installs and runs it.
"""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.auth import TokenService
from graphql_api.settings import Settings
from tests.conftest import Api
from tests.node_clients import node_script, ws_url

CREATE = """
mutation($input: CreateConversationInput!) {
  createConversation(input: $input) { id messages(first: 1) { edges { cursor node { id } } } }
}
"""
SEND_WITH_CURSOR = """
mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { cursor bodyText } }
"""
SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) { id body bodyText author { id name } conversation { id } createdAt }
}
"""

# -- Tests ---------------------------------------------------------------------------------------


async def test_graphql_ws_client_receives_sent_messages_in_order(api: Api, node: str):
    created = (
        await api.gql(
            CREATE,
            {
                "input": {
                    "type": "PRIVATE",
                    "participantIds": [api.ids["users"]["bob"]],
                    "subject": "Year-end documents",
                    "body": "<p>Opening</p>",
                }
            },
            as_="alice",
        )
    )["createConversation"]
    conversation_id = created["id"]
    opening_cursor = created["messages"]["edges"][0]["cursor"]
    bodies = [
        "<p>First: the <strong>balance sheet</strong></p>",
        "<p>Second — accents éàü &amp; emoji 🍞</p>",
        "<p>Third</p><ul><li>invoices</li><li>receipts</li></ul>",
    ]

    async def send(body: str) -> dict[str, Any]:
        message = {"conversationId": conversation_id, "body": body}
        return (await api.gql(SEND, {"input": message}, as_="alice"))["sendMessage"]

    # `after` (the opening message's cursor) makes the subscription replay whatever it did not
    # see live, so no message is lost to the time the client takes to subscribe.
    args = (ws_url(api), api.token("bob"), conversation_id, str(len(bodies)), opening_cursor)
    async with node_script(node, "subscribe.mjs", *args) as client:
        await client.expect("connected")
        sent = [await send(bodies[0])]
        first = await client.expect("next")
        # The subscription is live by now: the others arrive as live events.
        sent += [await send(body) for body in bodies[1:]]
        rest = [await client.expect("next") for _ in bodies[1:]]
        assert await client.exit_code() == 0, client.report()

    assert [message["body"] for message in sent] == bodies  # stored as sent
    assert [line["payload"] for line in [first, *rest]] == [
        {"data": {"messageAdded": message}} for message in sent
    ]
    alice = api.ids["users"]["alice"]
    assert {line["payload"]["data"]["messageAdded"]["author"]["id"] for line in rest} == {alice}


@pytest.mark.parametrize("token", ["garbage", "wrong-secret", "expired"])
async def test_graphql_ws_client_with_a_bad_token_is_closed_with_4401(
    api: Api, node: str, settings: Settings, token: str
):
    bob = api.ids["users"]["bob"]
    if token == "wrong-secret":
        other = Settings(data_dir=settings.data_dir, jwt_secret="another-secret-" + "x" * 32)
        token = TokenService(other).issue(bob)
    elif token == "expired":
        token = TokenService(settings).issue(bob, ttl_seconds=-60)
    created = (
        await api.gql(
            CREATE,
            {
                "input": {
                    "type": "PRIVATE",
                    "participantIds": [bob],
                    "subject": "Refused",
                    "body": "<p>Hello</p>",
                }
            },
            as_="alice",
        )
    )["createConversation"]

    async with node_script(node, "subscribe.mjs", ws_url(api), token, created["id"], "1") as client:
        code = await client.exit_code()
    lines = client.seen
    assert code == 1, client.report()
    closed = [line for line in lines if line.get("type") == "closed"]
    assert [line["code"] for line in closed] == [4401], client.report()
    assert closed[0]["reason"].startswith("Unauthorized: "), client.report()
    assert not [line for line in lines if line["type"] in ("connected", "next")], client.report()


async def test_graphql_ws_client_resumes_after_a_lost_connection_from_the_last_cursor(
    api: Api, node: str
):
    created = (
        await api.gql(
            CREATE,
            {
                "input": {
                    "type": "PRIVATE",
                    "participantIds": [api.ids["users"]["bob"]],
                    "subject": "Payroll",
                    "body": "<p>Opening</p>",
                }
            },
            as_="alice",
        )
    )["createConversation"]
    conversation_id = created["id"]
    opening_cursor = created["messages"]["edges"][0]["cursor"]

    async def send(text: str) -> dict[str, Any]:
        message = {"conversationId": conversation_id, "body": f"<p>{text}</p>"}
        return (await api.gql(SEND_WITH_CURSOR, {"input": message}, as_="alice"))["sendMessage"]

    args = (ws_url(api), api.token("bob"), conversation_id, opening_cursor, "1", "4")
    async with node_script(node, "resume.mjs", *args) as client:
        await client.expect("connected")
        seen = await send("seen live")
        before = await client.expect("next")
        disconnected = await client.expect("disconnected")
        missed = [await send(f"missed {n}") for n in (1, 2, 3)]  # while the client is away
        await client.say("reconnect")
        await client.expect("connected")
        replayed = [await client.expect("next") for _ in missed]
        live = await send("live again")  # the resumed subscription goes on live
        after = await client.expect("next")
        assert await client.exit_code() == 0, client.report()

    assert before["payload"]["data"]["messageAdded"]["cursor"] == seen["cursor"]
    assert disconnected["lastCursor"] == seen["cursor"]
    assert [line["payload"] for line in [*replayed, after]] == [
        {"data": {"messageAdded": {"cursor": m["cursor"], "bodyText": m["bodyText"]}}}
        for m in [*missed, live]
    ]
