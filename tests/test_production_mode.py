"""Production mode (issue 6): no introspection, no GraphiQL, no "Did you mean" schema leaks.

`MESSAGER_ENV=production` turns introspection and GraphiQL off unless `MESSAGER_INTROSPECTION`
turns them on again explicitly; with introspection off, every error message loses its
"Did you mean …?" suggestion (field, argument, enum, type, input field and variable errors), since
those reveal the schema bit by bit. Each app here is the real one over HTTP or WebSocket.
"""

from __future__ import annotations

import pytest

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.settings import Settings
from tests.conftest import Api
from tests.ws_client import GraphQLWs, bearer

INTROSPECTION = "{ __schema { queryType { name } } }"
TYPE_INTROSPECTION = '{ __type(name: "User") { name } }'

# (query, variables, message in production, the suggestion development adds)
SUGGESTIONS = {
    "field": (
        "{ viewr { id } }",
        None,
        "Cannot query field 'viewr' on type 'Query'.",
        " Did you mean 'viewer'?",
    ),
    "argument": (
        "{ conversations(frist: 1) { edges { cursor } } }",
        None,
        "Unknown argument 'frist' on field 'Query.conversations'.",
        " Did you mean 'first'?",
    ),
    "enum literal": (
        "{ conversations(type: COMPAN) { edges { cursor } } }",
        None,
        "Value 'COMPAN' does not exist in 'ConversationType' enum.",
        " Did you mean the enum value 'COMPANY'?",
    ),
    "enum variable": (
        "query($t: ConversationType) { conversations(type: $t) { edges { cursor } } }",
        {"t": "COMPAN"},
        "Variable '$t' has invalid value: Value 'COMPAN' does not exist in 'ConversationType' "
        "enum.",
        " Did you mean the enum value 'COMPANY'?",
    ),
    "type": (
        "{ viewer { ...F } } fragment F on Usr { id }",
        None,
        "Unknown type 'Usr'.",
        " Did you mean 'User'?",
    ),
}


async def production_api(aiohttp_client, settings: Settings, ids, **overrides) -> Api:
    chosen = settings.model_copy(update={"env": "production", **overrides})
    http = await aiohttp_client(init_app(chosen))
    return Api(http=http, tokens=TokenService(chosen), ids=ids)


@pytest.fixture
async def prod(aiohttp_client, settings, ids) -> Api:
    return await production_api(aiohttp_client, settings, ids)


@pytest.fixture
async def prod_with_introspection(aiohttp_client, settings, ids) -> Api:
    return await production_api(aiohttp_client, settings, ids, introspection=True)


async def messages(api: Api, query: str, variables: dict | None = None) -> list[str]:
    body = await api.raw(query, variables, as_="alice")
    assert body["data"] is None, body
    return [error["message"] for error in body["errors"]]


def test_production_turns_introspection_off_by_default():
    # (Arguments win over the environment, so these hold whatever MESSAGER_* is set.)
    assert Settings(env="production", introspection=None).introspection_enabled is False
    assert Settings(env="production", introspection=True).introspection_enabled is True
    assert Settings(env="development", introspection=None).introspection_enabled is True


async def test_schema_introspection_is_refused_in_production(prod):
    assert await messages(prod, INTROSPECTION) == [
        "GraphQL introspection has been disabled, but the requested query contained the field "
        "'__schema'.",
        "GraphQL introspection has been disabled, but the requested query contained the field "
        "'queryType'.",
    ]


async def test_type_introspection_is_refused_in_production(prod):
    assert await messages(prod, TYPE_INTROSPECTION) == [
        "GraphQL introspection has been disabled, but the requested query contained the field "
        "'__type'."
    ]


async def test_typename_still_answers_in_production(prod):
    assert await prod.gql("{ __typename viewer { __typename } }", as_="alice") == {
        "__typename": "Query",
        "viewer": {"__typename": "User"},
    }


async def test_graphiql_is_not_served_in_production(prod):
    response = await prod.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status == 404
    assert response.content_type == "application/json"  # no page
    (error,) = (await response.json())["errors"]
    assert (error["message"], error["extensions"]["code"]) == ("Not Found", "NOT_FOUND")


@pytest.mark.parametrize("kind", SUGGESTIONS)
async def test_suggestions_are_stripped_from_errors_in_production(prod, kind):
    query, variables, message, _ = SUGGESTIONS[kind]
    assert await messages(prod, query, variables) == [message]


async def test_suggestions_are_stripped_from_input_field_errors_in_production(prod):
    variables = {"i": {"type": "PRIVATE", "subjet": "s", "body": "b", "participantIds": []}}
    found = await messages(
        prod,
        "mutation($i: CreateConversationInput!) { createConversation(input: $i) { id } }",
        variables,
    )
    assert found == [
        "Variable '$i' has invalid value: Expected value of type 'CreateConversationInput' to "
        "include required field 'subject', found: {'type': 'PRIVATE', 'subjet': 's', 'body': 'b',"
        " 'participantIds': []}.",
        "Variable '$i' has invalid value: Expected value of type 'CreateConversationInput' not to "
        "include unknown field 'subjet'. Found: {'type': 'PRIVATE', 'subjet': 's', 'body': 'b', "
        "'participantIds': []}.",
    ]


async def test_suggestions_are_stripped_from_websocket_errors_in_production(prod):
    async with await GraphQLWs.connect(prod.http, bearer(prod.token("alice"))) as client:
        operation = await client.subscribe("subscription { notificationAdde { id } }")
        assert await client.receive() == {
            "id": operation,
            "type": "error",
            "payload": [
                {
                    "message": "Cannot query field 'notificationAdde' on type 'Subscription'.",
                    "locations": [{"line": 1, "column": 16}],
                    "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
                }
            ],
        }


async def test_explicit_introspection_in_production_allows_introspection(prod_with_introspection):
    assert await prod_with_introspection.gql(INTROSPECTION) == {
        "__schema": {"queryType": {"name": "Query"}}
    }


async def test_explicit_introspection_in_production_serves_graphiql(prod_with_introspection):
    response = await prod_with_introspection.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "GraphiQL" in await response.text()


@pytest.mark.parametrize("kind", SUGGESTIONS)
async def test_explicit_introspection_in_production_keeps_suggestions(
    prod_with_introspection, kind
):
    query, variables, message, suggestion = SUGGESTIONS[kind]
    assert await messages(prod_with_introspection, query, variables) == [message + suggestion]
