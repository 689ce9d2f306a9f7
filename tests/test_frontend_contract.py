"""What a frontend developer relies on beyond the core contract (SPEC §19): `Message.cursor` to
resume, `markConversationRead` clearing the conversation's notifications, error codes on every
GraphQL error and JSON bodies on every HTTP error, WebSocket close reasons that say what to fix,
and CORS for exact origins.

The standard directory (`tests/factories.py`): firm acme has company bakery; practitioners alice
(favorite bakery) and paul; clients bob (bakery; favorite bakery) and carla (bakery).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import FormData

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from tests.ws_client import GraphQLWs, SocketClosed, bearer

CREATE = """
mutation Create($input: CreateConversationInput!) {
  createConversation(input: $input) { id messages { edges { cursor node { id cursor } } } }
}
"""
SEND = """
mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { id cursor bodyText } }
"""
HISTORY = """
query History($id: ID!, $after: String) {
  conversation(id: $id) {
    messages(first: 50, after: $after) { edges { cursor node { cursor bodyText } } }
  }
}
"""
MESSAGE_ADDED = """
subscription Live($c: ID!, $after: String) {
  messageAdded(conversationId: $c, after: $after) { cursor bodyText }
}
"""
MARK_CONVERSATION_READ = """
mutation Open($id: ID!) { markConversationRead(conversationId: $id) { id unreadCount } }
"""
UNREAD_NOTIFICATIONS = """
query Badges { notifications(first: 50, unreadOnly: true) {
  edges { node { conversation { id } message { bodyText } } } } }
"""


async def private_conversation(api: Any, author: str, participant: str, text: str) -> str:
    data = {
        "type": "PRIVATE",
        "participantIds": [api.ids["users"][participant]],
        "subject": "Year-end closing",
        "body": f"<p>{text}</p>",
    }
    return (await api.gql(CREATE, {"input": data}, as_=author))["createConversation"]["id"]


async def send(api: Any, author: str, conversation_id: str, text: str) -> dict[str, Any]:
    data = {"conversationId": conversation_id, "body": f"<p>{text}</p>"}
    return (await api.gql(SEND, {"input": data}, as_=author))["sendMessage"]


# -- Message.cursor -----------------------------------------------------------------------------


async def test_message_cursor_is_its_cursor_in_messages(api):
    cid = await private_conversation(api, "alice", "bob", "one")
    sent = [await send(api, "alice", cid, text) for text in ["two", "three"]]
    history = await api.gql(HISTORY, {"id": cid}, as_="bob")
    edges = history["conversation"]["messages"]["edges"]
    assert [e["node"]["cursor"] for e in edges] == [e["cursor"] for e in edges]
    assert [e["cursor"] for e in edges[1:]] == [m["cursor"] for m in sent]


async def test_messages_after_a_message_cursor_answers_the_messages_after_it(api):
    cid = await private_conversation(api, "alice", "bob", "one")
    two = await send(api, "alice", cid, "two")
    await send(api, "bob", cid, "three")
    history = await api.gql(HISTORY, {"id": cid, "after": two["cursor"]}, as_="bob")
    assert [e["node"]["bodyText"] for e in history["conversation"]["messages"]["edges"]] == [
        "three"
    ]


async def test_message_added_after_the_cursor_of_a_received_message_resumes_after_it(api):
    cid = await private_conversation(api, "alice", "bob", "one")
    async with await GraphQLWs.connect(api.http, bearer(api.token("bob"))) as client:
        first = await send(api, "alice", cid, "before")
        operation = await client.subscribe(MESSAGE_ADDED, {"c": cid, "after": first["cursor"]})
        received = await send(api, "alice", cid, "received live")
        assert await client.next_data(operation) == {
            "messageAdded": {"cursor": received["cursor"], "bodyText": "received live"}
        }
    missed = [await send(api, "alice", cid, f"missed {n}") for n in range(2)]
    async with await GraphQLWs.connect(api.http, bearer(api.token("bob"))) as client:
        operation = await client.subscribe(MESSAGE_ADDED, {"c": cid, "after": received["cursor"]})
        replayed = [await client.next_data(operation) for _ in missed]
    assert replayed == [
        {"messageAdded": {"cursor": m["cursor"], "bodyText": m["bodyText"]}} for m in missed
    ]


# -- markConversationRead -----------------------------------------------------------------------


async def test_mark_conversation_read_marks_that_conversations_notifications_read(api):
    opened = await private_conversation(api, "alice", "bob", "opened 1")
    await send(api, "alice", opened, "opened 2")
    other = await private_conversation(api, "alice", "bob", "other")
    before = await api.gql(UNREAD_NOTIFICATIONS, as_="bob")
    assert len(before["notifications"]["edges"]) == 3

    marked = await api.gql(MARK_CONVERSATION_READ, {"id": opened}, as_="bob")
    assert marked["markConversationRead"] == {"id": opened, "unreadCount": 0}
    after = await api.gql(UNREAD_NOTIFICATIONS, as_="bob")
    assert [e["node"] for e in after["notifications"]["edges"]] == [
        {"conversation": {"id": other}, "message": {"bodyText": "other"}}
    ]


async def test_mark_conversation_read_leaves_other_users_notifications_unread(api):
    cid = await private_conversation(api, "alice", "bob", "hello")
    await api.gql(MARK_CONVERSATION_READ, {"id": cid}, as_="alice")  # the author: nothing to mark
    unread = await api.gql(UNREAD_NOTIFICATIONS, as_="bob")
    assert [e["node"]["message"]["bodyText"] for e in unread["notifications"]["edges"]] == ["hello"]


# -- GraphQL error codes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ viewer { ", {}, "GRAPHQL_PARSE_FAILED"),
        ("query Q { viewer { id } } }", {}, "GRAPHQL_PARSE_FAILED"),
        ("{ viewer { nope } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        (
            "query Q($id: ID!) { conversation(id: $id) { nope } }",
            {"id": "x"},
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("{ a: viewer { id } }  { viewer { id } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        ("query Q($id: ID!) { conversation(id: $id) { id } }", {}, "BAD_USER_INPUT"),
        (
            "query Q($t: ConversationType!) { eligibleParticipants(type: $t) { id } }",
            {"t": "SECRET"},
            "BAD_USER_INPUT",
        ),
    ],
)
async def test_errors_graphql_raises_itself_carry_a_code(api, query, variables, code):
    body = await api.raw(query, variables, as_="alice")
    assert body["errors"], body
    assert {e["extensions"]["code"] for e in body["errors"]} == {code}, body


async def test_a_subscription_that_does_not_validate_answers_the_validation_code(api):
    async with await GraphQLWs.connect(api.http, bearer(api.token("bob"))) as client:
        operation = await client.subscribe("subscription { messageAdded { nope } }")
        message = await client.receive()
    assert message["id"] == operation and message["type"] == "error", message
    assert {e["extensions"]["code"] for e in message["payload"]} == {"GRAPHQL_VALIDATION_FAILED"}


# -- HTTP errors have JSON bodies ---------------------------------------------------------------


async def test_malformed_json_answers_a_graphql_error_body(api):
    response = await api.http.post(
        "/graphql", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert response.content_type == "application/json"
    (error,) = (await response.json())["errors"]
    assert error["message"] == "Unable to parse request body as JSON"
    assert error["extensions"] == {
        "code": "BAD_REQUEST",
        "requestId": response.headers["X-Request-Id"],
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no-such-page", 404, "NOT_FOUND"),
        ("DELETE", "/attachments", 405, "METHOD_NOT_ALLOWED"),
        ("PUT", "/healthz", 405, "METHOD_NOT_ALLOWED"),
    ],
)
async def test_http_errors_outside_graphql_answer_a_json_error(api, method, path, status, code):
    response = await api.http.request(method, path)
    assert response.status == status
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"]["code"] == code
    assert body["error"]["requestId"] == response.headers["X-Request-Id"]
    if status == 405:
        assert response.headers["Allow"]  # the plain answer's headers are kept


@pytest.mark.parametrize(
    ("request_args", "message"),
    [
        ({"params": {"query": "mutation { markNotificationsRead }"}}, "mutations are not allowed"),
        ({"json": {"query": "query A { __typename }", "operationName": "B"}}, "Unknown operation"),
        ({"json": {"variables": {}}}, "No GraphQL query found"),
    ],
)
async def test_requests_graphql_cannot_run_answer_a_graphql_error_body(api, request_args, message):
    method = "GET" if "params" in request_args else "POST"
    response = await api.http.request(method, "/graphql", **request_args)
    assert response.status == 400
    (error,) = (await response.json())["errors"]
    assert error["message"].startswith(message)
    assert error["extensions"]["code"] == "BAD_REQUEST"


# -- WebSocket close reasons --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (
            None,
            "Unauthorized: missing Authorization in the connection_init payload: "
            "send 'Bearer <token>'",
        ),
        (
            "Token abc",
            "Unauthorized: Authorization in the connection_init payload must be 'Bearer <token>'",
        ),
    ],
)
async def test_websocket_close_reason_names_the_connection_init_payload(api, authorization, reason):
    client = await GraphQLWs.open(api.http)
    try:
        await client.init(authorization)
        with pytest.raises(SocketClosed) as closed:
            await client.receive()
    finally:
        await client.close()
    assert (closed.value.code, closed.value.reason) == (4401, reason)


# -- CORS ---------------------------------------------------------------------------------------


@pytest.fixture
async def localhost_cors(aiohttp_client, settings):
    app = init_app(settings.model_copy(update={"cors_origins": ["http://localhost:3000"]}))
    return await aiohttp_client(app)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", True),
        ("http://127.0.0.1:3000", False),  # another origin for the browser
        ("http://localhost:3001", False),
        ("https://localhost:3000", False),
    ],
)
async def test_cors_allows_exactly_the_configured_origin(localhost_cors, origin, allowed):
    response = await localhost_cors.options(
        "/graphql",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    assert (response.status == 200) is allowed


async def test_an_upload_refused_by_the_rate_limit_exposes_retry_after_to_the_page(
    aiohttp_client, settings, ids
):
    limited = settings.model_copy(
        update={
            "cors_origins": ["http://localhost:3000"],
            "rate_limits": True,
            "uploads_per_minute": 1,
            "uploads_burst": 1,
        }
    )
    http = await aiohttp_client(init_app(limited))
    token = TokenService(settings).issue(ids["users"]["alice"])
    headers = {"Origin": "http://localhost:3000", "Authorization": f"Bearer {token}"}
    answers = []
    for _ in range(2):
        form = FormData()
        form.add_field("file", b"hello", filename="a.txt", content_type="text/plain")
        answers.append(await http.post("/attachments", data=form, headers=headers))
    assert [a.status for a in answers] == [201, 429]
    refused = answers[1]
    assert refused.headers["Retry-After"]
    assert refused.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"].split(",")
