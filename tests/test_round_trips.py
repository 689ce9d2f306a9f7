"""Database round-trips per operation stay constant in the page size (no N+1).

A `pymongo.monitoring.CommandListener` on the application's own client counts the commands one
GraphQL request sends: those issued while a request is being served (the request id of the log
context is set), not the background jobs' (crash recovery, index builds) that run meanwhile.
Counts are taken on a warm process: the viewer has made a request before, so its user comes
from the process's user cache (no command).
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import monitoring

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.logging_setup import REQUEST_ID

INBOX = """query($first: Int!) { conversations(first: $first) { edges { cursor node {
  id subject type company { name isFavorite } participants { name kind }
  createdBy { name } lastMessage { bodyText author { name } createdAt } unreadCount
} } pageInfo { hasNextPage endCursor } } }"""

VIEWER = "{ viewer { id name } }"

IGNORED = {"hello", "ismaster", "isMaster", "ping", "endSessions", "killCursors"}


class CommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in IGNORED and REQUEST_ID.get() is not None:
            self.commands.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def counted(aiohttp_client: Any, settings, ids):
    counter = CommandCounter()
    http = await aiohttp_client(init_app(settings, mongo_listeners=[counter]))
    return http, counter, TokenService(settings)


async def _create(http, token: str, company: str, participant: str, n: int) -> None:
    mutation = """mutation($i: CreateConversationInput!) { createConversation(input: $i) { id } }
    """
    for i in range(n):
        response = await http.post(
            "/graphql",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "query": mutation,
                "variables": {
                    "i": {
                        "type": "COMPANY",
                        "companyId": company,
                        "participantIds": [participant],
                        "subject": f"s{i}",
                        "body": f"<p>message {i}</p>",
                    }
                },
            },
        )
        assert "errors" not in await response.json()


async def _count(http, counter: CommandCounter, token: str, query: str, variables) -> int:
    counter.commands.clear()
    response = await http.post(
        "/graphql",
        headers={"Authorization": f"Bearer {token}"},
        json={"query": query, "variables": variables},
    )
    body = await response.json()
    assert "errors" not in body, body
    return len(counter.commands)


async def test_inbox_page_costs_the_same_round_trips_for_10_and_50_conversations(counted, ids):
    http, counter, tokens = counted
    bob = tokens.issue(ids["users"]["bob"])
    await _create(http, bob, ids["companies"]["bakery"], ids["users"]["alice"], 55)
    alice = tokens.issue(ids["users"]["alice"])
    await _count(http, counter, alice, VIEWER, {})  # warms the user cache
    small = await _count(http, counter, alice, INBOX, {"first": 10})
    large = await _count(http, counter, alice, INBOX, {"first": 50})
    # the two readable branches of the policy, users, companies, last messages, read marks
    assert small == large == 6, counter.commands


async def test_send_message_costs_a_fixed_number_of_round_trips(counted, ids):
    http, counter, tokens = counted
    alice = tokens.issue(ids["users"]["alice"])
    await _create(http, alice, ids["companies"]["bakery"], ids["users"]["bob"], 1)
    inbox = await http.post(
        "/graphql",
        headers={"Authorization": f"Bearer {alice}"},
        json={"query": "{ conversations { edges { node { id } } } }"},
    )
    conversation_id = (await inbox.json())["data"]["conversations"]["edges"][0]["node"]["id"]
    send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id createdAt } }"
    count = await _count(
        http, counter, alice, send, {"i": {"conversationId": conversation_id, "body": "hello"}}
    )
    # conversation (policy), counter update, message insert, notifications insert,
    # notification outbox cleared, read mark (the viewer is cached since the inbox request)
    assert count == 6, counter.commands


async def test_a_request_that_only_reads_the_viewer_costs_no_command_on_a_warm_process(
    counted, ids
):
    http, counter, tokens = counted
    alice = tokens.issue(ids["users"]["alice"])
    first = await _count(http, counter, alice, VIEWER, {})
    again = await _count(http, counter, alice, VIEWER, {})
    another_token = tokens.issue(ids["users"]["alice"], ttl_seconds=60)
    other_token = await _count(http, counter, another_token, VIEWER, {})
    assert (first, again, other_token) == (1, 0, 0), counter.commands


SEARCH = """query($first: Int!) { search(query: "message", first: $first) { edges { cursor node {
  snippet message { bodyText author { name } createdAt } conversation { subject company { name } }
} } pageInfo { hasNextPage endCursor } } }"""


async def test_search_page_costs_the_same_round_trips_for_5_and_50_results(counted, ids):
    http, counter, tokens = counted
    bob = tokens.issue(ids["users"]["bob"])
    await _create(http, bob, ids["companies"]["bakery"], ids["users"]["alice"], 55)
    alice = tokens.issue(ids["users"]["alice"])
    await _count(http, counter, alice, VIEWER, {})  # a warm process: the viewer is cached
    small = await _count(http, counter, alice, SEARCH, {"first": 5})
    large = await _count(http, counter, alice, SEARCH, {"first": 50})
    # ranking ($text), messages, conversations, authors, companies
    assert small == large == 5, counter.commands


async def test_a_note_costs_one_round_trip_more_than_a_message_and_a_message_none(counted, ids):
    http, counter, tokens = counted
    alice = tokens.issue(ids["users"]["alice"])
    await _create(http, alice, ids["companies"]["bakery"], ids["users"]["paul"], 1)
    inbox = await http.post(
        "/graphql",
        headers={"Authorization": f"Bearer {alice}"},
        json={"query": "{ conversations { edges { node { id } } } }"},
    )
    conversation_id = (await inbox.json())["data"]["conversations"]["edges"][0]["node"]["id"]
    send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id kind } }"
    note = {"i": {"conversationId": conversation_id, "body": "internal", "internal": True}}
    message = {"i": {"conversationId": conversation_id, "body": "hello"}}
    # A note's recipients are the practitioner participants (paul): one query on `users` for
    # their kinds (the send of a message needs none); the rest is a message's six.
    assert await _count(http, counter, alice, send, note) == 7, counter.commands
    # The message after notes still costs what it cost before notes existed.
    assert await _count(http, counter, alice, send, message) == 6, counter.commands


SUMMARY = "{ unreadSummary { conversations messages notifications } }"


async def test_unread_summary_costs_the_same_round_trips_for_5_and_60_conversations(counted, ids):
    http, counter, tokens = counted
    bob = tokens.issue(ids["users"]["bob"])
    alice = tokens.issue(ids["users"]["alice"])
    await _count(http, counter, alice, VIEWER, {})  # warms the user cache
    await _create(http, bob, ids["companies"]["bakery"], ids["users"]["alice"], 5)
    small = await _count(http, counter, alice, SUMMARY, {})
    await _create(http, bob, ids["companies"]["bakery"], ids["users"]["alice"], 55)
    large = await _count(http, counter, alice, SUMMARY, {})
    # the two readable branches of the policy (projected to counters), the viewer's read
    # marks, a count of its unread notifications
    assert small == large == 4, counter.commands
