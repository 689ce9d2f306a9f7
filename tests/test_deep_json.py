"""JSON nested about 1,000 deep in a request (issue 20, finding 7) answers 400 with a coded
error, over POST, GET and WebSocket, instead of a 500 from Python's RecursionError.

Requests go over real HTTP and WebSocket to the app on the test's database.
"""

from __future__ import annotations

import json

from tests.ws_client import GraphQLWs, bearer, close_code

DEPTH = 1000
NESTED_TOO_DEEPLY = {
    "errors": [
        {
            "message": "the request's JSON is nested too deeply: variables and extensions must "
            "be flatter",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]
}


def deep_list(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int = DEPTH) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


async def post_raw(api, body: str):
    return await api.http.post(
        "/graphql",
        data=body.encode(),
        headers={**api.headers("alice"), "Content-Type": "application/json"},
    )


async def test_variables_nested_1000_deep_answer_400_with_a_coded_error(api):
    body = '{"query": "{ viewer { name } }", "variables": {"x": ' + deep_list() + "}}"
    response = await post_raw(api, body)
    assert response.status == 400
    assert response.content_type == "application/json"
    assert await response.json() == NESTED_TOO_DEEPLY
    assert await api.gql("{ viewer { name } }", as_="alice") == {"viewer": {"name": "Alice Roy"}}


async def test_extensions_nested_1000_deep_answer_400_with_a_coded_error(api):
    body = '{"query": "{ viewer { name } }", "extensions": ' + deep_object() + "}"
    response = await post_raw(api, body)
    assert response.status == 400
    assert await response.json() == NESTED_TOO_DEEPLY


async def test_variables_nested_1000_deep_in_a_get_query_string_answer_400(api):
    response = await api.http.get(
        "/graphql",
        params={"query": "{ viewer { name } }", "variables": '{"x": ' + deep_list() + "}"},
        headers=api.headers("alice"),
    )
    assert response.status == 400
    assert await response.json() == NESTED_TOO_DEEPLY


async def test_variables_nested_100_deep_are_read(api):
    body = json.dumps(
        {"query": "{ viewer { name } }", "variables": {"x": json.loads(deep_list(100))}}
    )
    response = await post_raw(api, body)
    assert response.status == 200
    assert await response.json() == {"data": {"viewer": {"name": "Alice Roy"}}}


async def test_a_websocket_message_nested_1000_deep_closes_the_socket_as_invalid(api):
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as client:
        await client.ws.send_str(
            '{"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }", '
            '"variables": {"x": ' + deep_list() + "}}}"
        )
        assert await close_code(client.ws) == 4400
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as client:
        operation = await client.subscribe("{ viewer { name } }")
        assert await client.next_data(operation) == {"viewer": {"name": "Alice Roy"}}
