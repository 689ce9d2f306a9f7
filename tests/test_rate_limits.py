"""Per-user rate limits on writes answer RATE_LIMITED with a retry-after hint."""

from __future__ import annotations

import aiohttp
import pytest

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.settings import Settings
from tests.conftest import Api

SEND = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
CREATE = "mutation($i: CreateConversationInput!) { createConversation(input: $i) { id } }"


@pytest.fixture
async def limited(aiohttp_client, settings: Settings, ids) -> Api:
    strict = settings.model_copy(
        update={
            "rate_limits": True,
            "messages_burst": 3,
            "messages_per_minute": 6,
            "conversations_burst": 2,
            "conversations_per_minute": 6,
            "uploads_burst": 1,
            "uploads_per_minute": 6,
        }
    )
    http = await aiohttp_client(init_app(strict))
    return Api(http=http, tokens=TokenService(strict), ids=ids)


def _new_conversation(api: Api) -> dict:
    return {
        "i": {
            "type": "PRIVATE",
            "participantIds": [api.ids["users"]["paul"]],
            "subject": "s",
            "body": "b",
        }
    }


async def test_a_burst_of_messages_beyond_the_limit_is_rate_limited_with_retry_after(limited):
    created = await limited.gql(CREATE, _new_conversation(limited), as_="alice")
    conversation = created["createConversation"]["id"]
    for n in range(3):
        await limited.gql(
            SEND, {"i": {"conversationId": conversation, "body": f"m{n}"}}, as_="alice"
        )
    answer = await limited.raw(
        SEND, {"i": {"conversationId": conversation, "body": "m4"}}, as_="alice"
    )
    error = answer["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] == 10  # 6 a minute: one every 10 s
    assert error["message"] == "too many messages: try again in 10 s"


async def test_the_limit_is_per_user(limited):
    created = await limited.gql(CREATE, _new_conversation(limited), as_="alice")
    conversation = created["createConversation"]["id"]
    for n in range(3):
        await limited.gql(
            SEND, {"i": {"conversationId": conversation, "body": f"a{n}"}}, as_="alice"
        )
    await limited.gql(
        SEND, {"i": {"conversationId": conversation, "body": "from paul"}}, as_="paul"
    )


async def test_new_conversations_are_limited(limited):
    for _ in range(2):
        await limited.gql(CREATE, _new_conversation(limited), as_="alice")
    assert await limited.error_code(CREATE, _new_conversation(limited), as_="alice") == (
        "RATE_LIMITED"
    )


async def test_uploads_beyond_the_limit_answer_429_with_retry_after(limited):
    statuses = []
    for _ in range(2):
        form = aiohttp.FormData()
        form.add_field("file", b"hello", filename="a.txt")
        response = await limited.http.post(
            "/attachments", data=form, headers=limited.headers("alice")
        )
        statuses.append((response.status, response.headers.get("Retry-After")))
    assert statuses == [(201, None), (429, "10")]


async def test_the_limit_holds_for_mutations_sent_over_websocket(limited):
    created = await limited.gql(CREATE, _new_conversation(limited), as_="alice")
    conversation = created["createConversation"]["id"]
    ws = await limited.http.ws_connect("/graphql", protocols=["graphql-transport-ws"])
    await ws.send_json(
        {
            "type": "connection_init",
            "payload": {"Authorization": f"Bearer {limited.token('alice')}"},
        }
    )
    assert (await ws.receive_json())["type"] == "connection_ack"
    codes = []
    for n in range(4):
        await ws.send_json(
            {
                "id": str(n),
                "type": "subscribe",
                "payload": {
                    "query": SEND,
                    "variables": {"i": {"conversationId": conversation, "body": f"w{n}"}},
                },
            }
        )
        reply = await ws.receive_json()
        errors = reply["payload"].get("errors") if reply["type"] == "next" else reply["payload"]
        codes.append(errors[0]["extensions"]["code"] if errors else "OK")
        if reply["type"] == "next":
            assert (await ws.receive_json())["type"] == "complete"
    await ws.close()
    assert codes == ["OK", "OK", "OK", "RATE_LIMITED"]


async def test_refused_costly_bodies_count_against_the_limit(limited):
    # Issue 20: a body is checked (and its cost paid) after the request is counted, so a burst
    # of bodies refused as too deeply nested uses the budget like accepted messages.
    created = await limited.gql(CREATE, _new_conversation(limited), as_="alice")
    conversation = created["createConversation"]["id"]
    deep = "x" + "<ul><li>" * 12_799
    for _ in range(3):
        answer = await limited.raw(
            SEND, {"i": {"conversationId": conversation, "body": deep}}, as_="alice"
        )
        assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    answer = await limited.raw(
        SEND, {"i": {"conversationId": conversation, "body": "fine"}}, as_="alice"
    )
    assert answer["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
