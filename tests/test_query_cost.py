"""The query cost limit (issue 20, finding 1): an operation is costed from its document and its
`first`/`last` arguments before it runs, and refused over the limit with `QUERY_TOO_COSTLY`;
nested history pages are read once each, a few at a time.

The cost (`schema/query_cost.py`): 1 per object field each time it is resolved, a connection's
`edges` resolved once per item of its page. Every request goes over real HTTP or WebSocket to
the app on the test's database.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import monitoring

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.settings import Settings
from schema.limits import MAX_QUERY_COST
from tests.conftest import Api
from tests.documents import CREATE_CONVERSATION, SEND_MESSAGE
from tests.ws_client import GraphQLWs, bearer

# The probe of issue 20: within the depth (10) and alias (15) limits, 400,000 messages an alias.
PROBE_INNER = (
    "edges { node { id body conversation { id messages(first: 100) "
    "{ edges { node { id body } } } } } }"
)
PROBE = (
    "{ "
    + " ".join(
        f"a{n}: conversations(first: 40) {{ edges {{ node {{ id messages(first: 100) "
        f"{{ {PROBE_INNER} }} }} }} }}"
        for n in range(3)
    )
    + " }"
)
# Per alias: conversations 1 + 40 edges x (1 + node 1 + messages 1 + 100 edges x (1 + node 1
# + conversation 1 + messages 1 + 100 edges x (1 + node 1))) = 816,121.
PROBE_COST = 3 * (1 + 40 * (3 + 100 * (4 + 100 * 2)))

NESTED_BY_VARIABLE = """query($n: Int) {
  conversations(first: $n) { edges { node { messages(first: $n) { edges { node { id } } } } } }
}"""

# Everyday queries of the README and of a frontend: an inbox of 50 with the last message and the
# participants, a history page of 100, a page of 100 notifications.
README_INBOX = """{ conversations(first: 20) { edges { cursor node { id subject unreadCount
  lastMessage { bodyText } } } } }"""
README_HISTORY = """query ($id: ID!) { conversation(id: $id) {
  messages(last: 50) { edges { node { author { name } body } } } } }"""
INBOX_50 = """{ conversations(first: 50) {
  edges { cursor node {
    id type subject lastMessageAt unreadCount
    company { id name }
    participants { id name kind }
    lastMessage { id bodyText createdAt author { id name } }
  } }
  pageInfo { hasNextPage endCursor }
} }"""
HISTORY_100 = """query($id: ID!) { conversation(id: $id) {
  messages(last: 100) {
    edges { cursor node { id body bodyText createdAt author { id name }
      attachments { id filename url } } }
    pageInfo { hasPreviousPage startCursor }
  } } }"""
NOTIFICATIONS_100 = """{ notifications(first: 100) { edges { cursor node { id createdAt readAt
  conversation { id subject participants { name } } message { id bodyText author { name } } } }
  pageInfo { hasNextPage endCursor } } }"""


def too_costly(cost: int, limit: int = MAX_QUERY_COST) -> dict[str, Any]:
    return {
        "data": None,
        "errors": [
            {
                "message": f"this operation costs {cost}, over the limit of {limit}: ask for "
                "smaller pages (first/last) or fewer nested connections",
                "extensions": {"code": "QUERY_TOO_COSTLY", "cost": cost, "maxCost": limit},
            }
        ],
    }


async def private_conversation(api: Api, messages: int = 1) -> str:
    """A PRIVATE conversation of alice and paul with `messages` messages; answers its id."""
    data = await api.gql(
        CREATE_CONVERSATION,
        {
            "input": {
                "type": "PRIVATE",
                "participantIds": [api.ids["users"]["paul"]],
                "subject": "Costed",
                "body": "<p>m1</p>",
            }
        },
        as_="alice",
    )
    conversation_id = data["createConversation"]["id"]
    for n in range(2, messages + 1):
        await api.gql(
            SEND_MESSAGE,
            {"input": {"conversationId": conversation_id, "body": f"<p>m{n}</p>"}},
            as_="paul",
        )
    return conversation_id


# -- the limit ------------------------------------------------------------------------------------


async def test_the_probe_query_is_refused_before_it_runs_naming_its_cost_and_the_limit(api):
    await private_conversation(api, messages=3)
    assert MAX_QUERY_COST == 5000
    assert await api.raw(PROBE, as_="alice") == too_costly(PROBE_COST)
    assert await api.gql("{ viewer { name } }", as_="alice") == {"viewer": {"name": "Alice Roy"}}


async def test_page_sizes_given_by_variables_are_costed(api):
    await private_conversation(api)
    # 1 + n x (1 + node 1 + messages 1 + n x (1 + node 1)): 20,301 for 100, 231 for 10.
    assert await api.raw(NESTED_BY_VARIABLE, {"n": 100}, as_="alice") == too_costly(20_301)
    data = await api.gql(NESTED_BY_VARIABLE, {"n": 10}, as_="alice")
    assert [len(e["node"]["messages"]["edges"]) for e in data["conversations"]["edges"]] == [1]


async def test_a_page_size_from_a_variable_default_is_costed(api):
    query = NESTED_BY_VARIABLE.replace("$n: Int", "$n: Int = 100")
    assert await api.raw(query, as_="alice") == too_costly(20_301)


async def test_pages_without_first_or_last_are_costed_at_their_default_size(api):
    # conversations: 20 by default, messages: 50; 1 + 20 x (3 + 50 x (4 + 50 x 2)) = 104,061.
    query = """{ conversations { edges { node { messages { edges { node {
      conversation { messages { edges { node { id } } } } } } } } } } }"""
    assert await api.raw(query, as_="alice") == too_costly(104_061)


async def test_fragments_are_costed_wherever_they_are_spread(api):
    fragment = "fragment Previews on Conversation { messages(last: 10) { edges { node { id } } } }"

    def inbox(aliases: str) -> str:
        spread = "conversations(first: 100) { edges { node { ...Previews } } }"
        return "{ " + " ".join(f"{alias}: {spread}" for alias in aliases) + " } " + fragment

    # Each alias costs 1 + 100 x (1 + node 1 + messages 1 + 10 x 2) = 2,301.
    assert await api.gql(inbox("ab"), as_="alice") == {"a": {"edges": []}, "b": {"edges": []}}
    assert await api.raw(inbox("abc"), as_="alice") == too_costly(6_903)


async def test_everyday_queries_of_the_readme_and_of_a_frontend_pass(api):
    conversation_id = await private_conversation(api, messages=2)
    for query, variables in (
        (README_INBOX, None),
        (README_HISTORY, {"id": conversation_id}),
        (INBOX_50, None),
        (HISTORY_100, {"id": conversation_id}),
        (NOTIFICATIONS_100, None),
    ):
        assert (await api.raw(query, variables, as_="alice")).get("errors") is None, query


@pytest.fixture
async def strict(aiohttp_client, settings: Settings, ids) -> Api:
    """The app with a cost limit of 201 (`MESSAGER_MAX_QUERY_COST`)."""
    strict = settings.model_copy(update={"max_query_cost": 201})
    return Api(http=await aiohttp_client(init_app(strict)), tokens=TokenService(strict), ids=ids)


async def test_the_limit_is_a_setting_and_an_operation_at_the_limit_passes(strict):
    at_the_limit = "{ conversations(first: 100) { edges { node { id } } } }"  # 1 + 100 x 2
    assert await strict.gql(at_the_limit, as_="alice") == {"conversations": {"edges": []}}
    one_more = "{ conversations(first: 100) { edges { node { id } } pageInfo { hasNextPage } } }"
    assert await strict.raw(one_more, as_="alice") == too_costly(202, limit=201)


async def test_a_costly_query_over_websocket_is_refused(api):
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as client:
        operation = await client.subscribe(PROBE)
        answer = await client.receive()
    # graphql-transport-ws answers an operation refused before it runs with an `error` message.
    assert answer == {"id": operation, "type": "error", "payload": too_costly(PROBE_COST)["errors"]}


async def test_a_costly_subscription_is_refused_before_it_starts(api):
    conversation_id = await private_conversation(api)
    # messageAdded 1 + conversation 1 + messages 1 + 100 x (1 + node 1 + conversation 1
    # + messages 1 + 100 x 2) = 20,403, for every message the subscription would deliver.
    subscription = """subscription($c: ID!) { messageAdded(conversationId: $c) {
      conversation { messages(first: 100) { edges { node { conversation {
        messages(first: 100) { edges { node { id } } } } } } } } } }"""
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as client:
        operation = await client.subscribe(subscription, {"c": conversation_id})
        answer = await client.receive()
    assert answer == {"id": operation, "type": "next", "payload": too_costly(20_403)}


# -- nested history pages ---------------------------------------------------------------------


class HistoryReads(monitoring.CommandListener):
    """Counts the `find`s on messages, and the most in flight at once."""

    def __init__(self) -> None:
        self.started_ids: set[int] = set()
        self.count = 0
        self.in_flight = 0
        self.most_in_flight = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == "messages":
            self.started_ids.add(event.request_id)
            self.count += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _ended(self, event: Any) -> None:
        if event.request_id in self.started_ids:
            self.started_ids.discard(event.request_id)
            self.in_flight -= 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._ended(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._ended(event)


@pytest.fixture
async def counted(aiohttp_client, settings: Settings, ids) -> tuple[Api, HistoryReads]:
    reads = HistoryReads()
    http = await aiohttp_client(init_app(settings, mongo_listeners=[reads]))
    return Api(http=http, tokens=TokenService(settings), ids=ids), reads


async def test_nested_history_pages_are_read_once_each_and_a_few_at_a_time(counted):
    api, reads = counted
    conversations = [await private_conversation(api, messages=2) for _ in range(12)]
    query = """{ conversations(first: 12) { edges { node { id messages(first: 5) { edges { node {
      conversation { id messages(first: 5) { edges { node { id } } } } } } } } } } }"""
    reads.count = reads.most_in_flight = 0
    data = await asyncio.wait_for(api.gql(query, as_="alice"), 15)
    pages = [edge["node"] for edge in data["conversations"]["edges"]]
    assert sorted(page["id"] for page in pages) == sorted(conversations)
    for page in pages:
        inner = [edge["node"]["conversation"] for edge in page["messages"]["edges"]]
        assert [c["id"] for c in inner] == [page["id"]] * 2
        assert {len(c["messages"]["edges"]) for c in inner} == {2}
    # 12 outer pages; the 24 inner ones are 12 distinct pages, read once each: 24 reads, not 36.
    assert reads.count == 24
    assert reads.most_in_flight <= 4


async def test_a_history_asked_again_on_the_same_websocket_is_read_again(api):
    conversation_id = await private_conversation(api, messages=1)
    history = (
        "query($id: ID!) { conversation(id: $id) { messages { edges { node { bodyText } } } } }"
    )
    async with await GraphQLWs.connect(api.http, bearer(api.token("alice"))) as client:
        first = await client.subscribe(history, {"id": conversation_id})
        before = await client.next_data(first)
        await client.receive()  # complete
        await api.gql(
            SEND_MESSAGE, {"input": {"conversationId": conversation_id, "body": "m2"}}, as_="paul"
        )
        again = await client.subscribe(history, {"id": conversation_id})
        after = await client.next_data(again)
    texts = [
        [e["node"]["bodyText"] for e in d["conversation"]["messages"]["edges"]]
        for d in (before, after)
    ]
    assert texts == [["m1"], ["m1", "m2"]]
