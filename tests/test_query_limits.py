"""Abuse limits of `/graphql` (issue 6, OWASP GraphQL): query depth, aliases, tokens, directives,
fragment cycles, `__typename` floods, deep nesting (of selections, argument lists and HTML
bodies), page sizes, body size, batching, and CSRF (mutations by GET, non-JSON POST bodies,
uploads authenticated by a cookie).

Every request goes over real HTTP to the app on the test's database. "Answers quickly" is a
generous bound around the request (`FAST`), never a measured time.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import aiohttp

from graphql_api.ids import new_id
from graphql_api.pagination import MAX_PAGE_SIZE
from schema.limits import MAX_ALIASES, MAX_DEPTH, MAX_DIRECTIVES, MAX_TOKENS
from tests.documents import CREATE_CONVERSATION

FAST = 15.0  # seconds: a bound on a refusal that must not make the server work hard

TOKEN_LIMIT_ERROR = (
    f"Syntax Error: Document contains more than {MAX_TOKENS} tokens. Parsing aborted."
)


def nested(fields: list[str], leaf: str = "id") -> str:
    """`{ f1 { f2 { ... leaf } } }`."""
    return "{ " + "".join(f"{field} {{ " for field in fields) + leaf + " }" * len(fields) + " }"


# conversations > edges > node > messages > edges > node > conversation > messages > edges > node
# puts the leaf `id` 10 levels below the root field (small pages: under the cost limit).
DEPTH_10_PATH = [
    "conversations(first: 5)",
    "edges",
    "node",
    "messages(first: 5)",
    "edges",
    "node",
    "conversation",
    "messages(first: 5)",
    "edges",
    "node",
]


async def post(api, body: object, *, as_: str | None = "alice", **kwargs):
    return await asyncio.wait_for(
        api.http.post("/graphql", json=body, headers=api.headers(as_), **kwargs), FAST
    )


async def error_messages(api, query: str, *, as_: str = "alice") -> list[str]:
    response = await post(api, {"query": query}, as_=as_)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body.get("data") is None, body
    return [error["message"] for error in body["errors"]]


# -- depth, aliases, tokens, directives -------------------------------------------------------


async def test_query_at_the_maximum_depth_is_accepted(api):
    assert MAX_DEPTH == 10
    data = await api.gql(nested(DEPTH_10_PATH), as_="alice")
    assert data == {"conversations": {"edges": []}}


async def test_query_one_level_deeper_than_the_maximum_is_refused(api):
    query = nested([*DEPTH_10_PATH, "conversation"])
    assert await error_messages(api, query) == ["'anonymous' exceeds maximum operation depth of 10"]


async def test_fifteen_aliases_are_accepted(api):
    assert MAX_ALIASES == 15
    query = "{ " + " ".join(f"a{n}: __typename" for n in range(15)) + " }"
    data = await api.gql(query, as_="alice")
    assert data == {f"a{n}": "Query" for n in range(15)}


async def test_alias_flood_of_sixteen_aliases_is_refused(api):
    query = "{ " + " ".join(f"a{n}: viewer {{ id }}" for n in range(16)) + " }"
    assert await error_messages(api, query) == ["16 aliases found. Allowed: 15"]


async def test_token_flood_over_2000_tokens_is_refused_before_execution(api, db):
    # A createConversation with a 2,000-element list argument: refused while parsing, so
    # nothing is created.
    participants = ", ".join(f'"{n}"' for n in range(MAX_TOKENS))
    query = (
        'mutation { createConversation(input: {type: PRIVATE, subject: "s", body: "b", '
        f"participantIds: [{participants}]}}) {{ id }} }}"
    )
    assert await error_messages(api, query) == [TOKEN_LIMIT_ERROR]
    assert await db.conversations.count_documents({}) == 0


async def test_twenty_directives_are_accepted(api):
    assert MAX_DIRECTIVES == 20
    query = "{ " + " ".join(f"a{n}: __typename @include(if: true)" for n in range(10))
    query += " " + " ".join("viewer @skip(if: false) { id }" for _ in range(10)) + " }"
    data = await api.gql(query, as_="alice")
    assert data == {
        **{f"a{n}": "Query" for n in range(10)},
        "viewer": {"id": api.ids["users"]["alice"]},
    }


async def test_directive_flood_of_twenty_one_directives_is_refused(api):
    query = "{ " + " ".join("__typename @include(if: true)" for _ in range(21)) + " }"
    assert await error_messages(api, query) == ["an operation may use at most 20 directives"]


# -- fragment cycles, floods, deep nesting ----------------------------------------------------


async def test_circular_fragments_answer_a_validation_error(api):
    query = """
    { conversations { edges { node { ...C } } } }
    fragment C on Conversation { lastMessage { ...M } }
    fragment M on Message { conversation { ...C } }
    """
    assert await error_messages(api, query) == ["Cannot spread fragment 'C' within itself via 'M'."]


async def test_fragment_spreading_itself_answers_a_validation_error(api):
    query = "{ viewer { ...U } } fragment U on User { id ...U }"
    assert await error_messages(api, query) == ["Cannot spread fragment 'U' within itself."]


async def test_typename_flood_of_5000_selections_is_refused_quickly(api):
    query = "{ " + "__typename " * 5000 + "}"
    assert await error_messages(api, query) == [TOKEN_LIMIT_ERROR]


async def test_typename_flood_under_the_token_limit_is_refused_quickly(api):
    # Within the token limit, the work of comparing 1,990 identical selections for merging is
    # what an attacker buys: graphql-core's validation budget stops it.
    query = "{ " + "__typename " * 1990 + "}"
    assert await error_messages(api, query) == ["Validation aborted."]


async def test_ten_thousand_deep_selection_set_is_refused_and_the_server_still_answers(api):
    query = "{" + "a{" * 10_000 + "a" + "}" * 10_001
    assert await error_messages(api, query) == [
        "Syntax Error: Document is nested too deeply. Parsing aborted."
    ]
    assert await api.gql("{ viewer { id } }", as_="alice") == {
        "viewer": {"id": api.ids["users"]["alice"]}
    }


async def test_ten_thousand_deep_lists_in_an_argument_are_refused(api):
    query = "{ companies(search: " + "[" * 10_000 + '"x"' + "]" * 10_000 + ") { id } }"
    assert await error_messages(api, query) == [
        "Syntax Error: Document is nested too deeply. Parsing aborted."
    ]


# -- page sizes ---------------------------------------------------------------------------------


async def insert_private_conversations(db, ids, count: int) -> None:
    """`count` PRIVATE conversations of alice and paul, in the shape `Conversations.create`
    stores (the inbox reads only conversation documents)."""
    alice, paul = ids["users"]["alice"], ids["users"]["paul"]
    firm = (await db.users.find_one({"_id": alice}))["firm_id"]
    now = datetime.now(UTC)
    await db.conversations.insert_many(
        [
            {
                "_id": new_id(),
                "firm_id": firm,
                "type": "PRIVATE",
                "company_id": None,
                "subject": f"Conversation {n}",
                "participant_ids": [alice, paul],
                "created_by": alice,
                "created_at": now,
                "last_activity_ms": 1_700_000_000_000 + n,
                "last_message_id": None,
                "message_count": 0,
                "client_visible": False,
            }
            for n in range(count)
        ]
    )


async def test_page_size_of_1000_is_clamped_to_100(api, db):
    assert MAX_PAGE_SIZE == 100
    await insert_private_conversations(db, api.ids, 105)
    data = await api.gql(
        "{ conversations(first: 1000) { edges { node { subject } } pageInfo { hasNextPage } } }",
        as_="alice",
    )
    subjects = [edge["node"]["subject"] for edge in data["conversations"]["edges"]]
    assert subjects == [f"Conversation {n}" for n in range(104, 4, -1)]
    assert data["conversations"]["pageInfo"] == {"hasNextPage": True}


async def test_negative_page_size_is_bad_user_input(api):
    body = await api.raw("{ notifications(first: -1) { edges { cursor } } }", as_="alice")
    assert body == {
        "data": None,
        "errors": [
            {
                "message": "first must not be negative",
                "locations": [{"line": 1, "column": 3}],
                "path": ["notifications"],
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ],
    }


# -- the HTTP envelope --------------------------------------------------------------------------


async def test_request_body_over_one_mebibyte_is_refused_with_413(api):
    body = json.dumps({"query": "{ __typename }", "variables": {"pad": "a" * (1024 * 1024)}})
    response = await asyncio.wait_for(
        api.http.post(
            "/graphql",
            data=io.BytesIO(body.encode()),
            headers={**api.headers("alice"), "Content-Type": "application/json"},
        ),
        FAST,
    )
    assert response.status == 413
    (error,) = (await response.json())["errors"]
    assert error["message"] == "Maximum request body size 1048576 exceeded."
    assert error["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_request_body_just_under_one_mebibyte_is_accepted(api):
    envelope = {"query": "{ __typename }", "variables": {"pad": ""}}
    pad = 1024 * 1024 - len(json.dumps(envelope))
    body = json.dumps({**envelope, "variables": {"pad": "a" * pad}}).encode()
    assert len(body) == 1024 * 1024
    response = await api.http.post(
        "/graphql",
        data=io.BytesIO(body),
        headers={**api.headers("alice"), "Content-Type": "application/json"},
    )
    assert response.status == 200
    assert await response.json() == {"data": {"__typename": "Query"}}


async def test_batched_operations_in_a_json_array_are_refused(api, db):
    operation = {"query": CREATE_CONVERSATION, "variables": {"input": private_input(api)}}
    response = await post(api, [operation, operation])
    assert response.status == 400
    assert (await response.json())["errors"][0]["message"] == "Batching is not enabled"
    assert await db.conversations.count_documents({}) == 0


def private_input(api) -> dict:
    return {
        "type": "PRIVATE",
        "participantIds": [api.ids["users"]["paul"]],
        "subject": "Forged",
        "body": "<p>Forged</p>",
    }


async def test_mutation_by_get_is_refused_and_not_executed(api, db):
    paul, bakery = api.ids["users"]["paul"], api.ids["companies"]["bakery"]
    mutation = f'mutation {{ addFavoriteCompany(companyId: "{bakery}") {{ isFavorite }} }}'
    response = await api.http.get(
        "/graphql", params={"query": mutation}, headers=api.headers("paul")
    )
    assert response.status == 400
    (error,) = (await response.json())["errors"]
    assert error["message"] == "mutations are not allowed when using GET"
    assert (await db.users.find_one({"_id": paul}))["favorite_company_ids"] == []


async def test_query_by_get_still_works(api):
    response = await api.http.get(
        "/graphql", params={"query": "{ viewer { name } }"}, headers=api.headers("alice")
    )
    assert response.status == 200
    assert await response.json() == {"data": {"viewer": {"name": "Alice Roy"}}}


async def cross_site_post(api, content_type: str, payload: str):
    """A POST that a cross-site HTML form or a CORS-simple fetch can send without preflight."""
    return await api.http.post(
        "/graphql",
        data=payload.encode(),
        headers={**api.headers("alice"), "Content-Type": content_type},
    )


async def test_text_plain_post_of_a_mutation_is_not_executed(api, db):
    payload = json.dumps({"query": CREATE_CONVERSATION, "variables": {"input": private_input(api)}})
    response = await cross_site_post(api, "text/plain", payload)
    assert response.status == 400
    assert (await response.json())["errors"][0]["message"] == "Unsupported content type"
    assert await db.conversations.count_documents({}) == 0


async def test_form_urlencoded_post_of_a_mutation_is_not_executed(api, db):
    inp = private_input(api)
    mutation = (
        'mutation { createConversation(input: {type: PRIVATE, subject: "Forged", '
        f'body: "Forged", participantIds: ["{inp["participantIds"][0]}"]}}) {{ id }} }}'
    )
    response = await cross_site_post(
        api, "application/x-www-form-urlencoded", urlencode({"query": mutation})
    )
    assert response.status == 400
    assert (await response.json())["errors"][0]["message"] == "Unsupported content type"
    assert await db.conversations.count_documents({}) == 0


async def test_upload_with_the_token_in_a_cookie_but_no_bearer_header_is_refused(api, db):
    # A cross-site form can make the browser send cookies, never an Authorization header.
    form = aiohttp.FormData()
    form.add_field("file", b"forged", filename="forged.txt")
    token = api.token("alice")
    response = await api.http.post(
        "/attachments",
        data=form,
        headers={"Cookie": f"token={token}; Authorization=Bearer%20{token}"},
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "UNAUTHENTICATED"
    assert await db.attachments.count_documents({}) == 0


async def test_ten_thousand_deep_nested_html_body_is_refused_as_nested_too_deeply(api, db):
    conversation = await api.gql(CREATE_CONVERSATION, {"input": private_input(api)}, as_="alice")
    deep = "<b>" * 10_000 + "deep" + "</b>" * 10_000
    send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { body bodyText } }"
    variables = {"i": {"conversationId": conversation["createConversation"]["id"], "body": deep}}
    answer = await asyncio.wait_for(api.raw(send, variables, as_="alice"), FAST)
    assert [(e["extensions"]["code"], e["message"]) for e in answer["errors"]] == [
        (
            "BAD_USER_INPUT",
            "body formatting is nested too deeply: at most 100 levels of lists, quotes and "
            "styles inside one another",
        )
    ]
    assert await db.messages.count_documents({}) == 1  # the conversation's first message


async def test_html_body_nested_100_deep_is_stored_and_sanitizing_it_again_is_stable(api):
    conversation = await api.gql(CREATE_CONVERSATION, {"input": private_input(api)}, as_="alice")
    deep = "<b>" * 100 + "deep" + "</b>" * 100
    send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { body bodyText } }"
    variables = {"i": {"conversationId": conversation["createConversation"]["id"], "body": deep}}
    first = await asyncio.wait_for(api.gql(send, variables, as_="alice"), FAST)
    assert first["sendMessage"] == {"body": deep, "bodyText": "deep"}
    variables["i"]["body"] = first["sendMessage"]["body"]
    again = await asyncio.wait_for(api.gql(send, variables, as_="alice"), FAST)
    assert again == first
