"""`/metrics` (SPEC §19): scraped as Prometheus does, in its text format, parsed with
prometheus_client's own parser. The registry belongs to the process, so each test compares the
values before and after what it does."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from graphql_api.app import init_app
from graphql_api.embedded import free_port
from graphql_api.keys import SERVICES
from tests.cli_helpers import cli_env
from tests.conftest import JWT_SECRET
from tests.server_process import serving
from tests.ws_client import GraphQLWs, bearer

FAMILIES = {
    "messager_graphql_operations": "counter",
    "messager_graphql_operation_duration_seconds": "histogram",
    "messager_graphql_errors": "counter",
    "messager_http_requests": "counter",
    "messager_http_request_duration_seconds": "histogram",
    "messager_websocket_connections": "gauge",
    "messager_subscriptions_active": "gauge",
    "messager_delivery_lag_seconds": "histogram",
    "messager_db_command_duration_seconds": "histogram",
    "messager_email_outbox_depth": "gauge",
}

CREATE = """
mutation Create($input: CreateConversationInput!) {
  createConversation(input: $input) { id messages { edges { cursor } } }
}
"""
SEND = "mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { id } }"
LIVE = """
subscription Live($c: ID!, $after: String) {
  messageAdded(conversationId: $c, after: $after) { id }
}
"""


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    families: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return families, samples


async def scrape(http, headers: dict[str, str] | None = None) -> tuple[dict[str, str], Samples]:
    response = await http.get("/metrics", headers=headers or {})
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    return parse(await response.text())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def conversation(api: Any) -> tuple[str, str]:
    data = {
        "type": "PRIVATE",
        "participantIds": [api.ids["users"]["bob"]],
        "subject": "Metrics",
        "body": "<p>Opening</p>",
    }
    created = (await api.gql(CREATE, {"input": data}, as_="alice"))["createConversation"]
    return created["id"], created["messages"]["edges"][0]["cursor"]


async def test_metrics_lists_every_family_in_the_prometheus_text_format(api):
    families, samples = await scrape(api.http)
    for name, kind in FAMILIES.items():
        assert families.get(name) == kind, (name, families.get(name))
    assert value(samples, "messager_email_outbox_depth") == 0
    assert (
        value(samples, "messager_db_command_duration_seconds_count", command="find", outcome="ok")
        > 0
    )


async def test_operations_are_counted_and_timed_by_name_and_errors_by_code(api):
    _, before = await scrape(api.http)
    await api.gql("query InboxBadge { viewer { id } }", as_="alice")
    await api.gql("query InboxBadge { viewer { id } }", as_="bob")
    await api.raw("query Missing($id: ID!) { conversation(id: $id) { id } }", {}, as_="alice")
    await api.raw("{ viewer { nope } }", as_="alice")
    _, after = await scrape(api.http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("messager_graphql_operations_total", operation="InboxBadge", type="query") == 2
    assert (
        delta(
            "messager_graphql_operation_duration_seconds_count",
            operation="InboxBadge",
            type="query",
        )
        == 2
    )
    assert delta("messager_graphql_errors_total", code="BAD_USER_INPUT") == 1
    assert delta("messager_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED") == 1
    assert delta("messager_http_requests_total", route="/graphql", method="POST", status="200") == 4


async def test_client_chosen_operation_names_cannot_grow_the_labels(api):
    long_name = "A" * 150
    await api.raw(f"query {long_name} {{ viewer {{ id }} }}", as_="alice")
    _, samples = await scrape(api.http)
    assert not any(long_name in dict(labels).get("operation", "") for _, labels in samples)
    assert (
        value(samples, "messager_graphql_operations_total", operation="invalid", type="query") >= 1
    )


async def test_websockets_subscriptions_and_delivery_lag_are_measured(api):
    cid, cursor = await conversation(api)
    _, before = await scrape(api.http)
    async with await GraphQLWs.connect(api.http, bearer(api.token("bob"))) as client:
        operation = await client.subscribe(LIVE, {"c": cid, "after": cursor})
        hub = api.http.app[SERVICES].hub
        async with asyncio.timeout(10):
            while hub.subscriber_count < 1:  # noqa: ASYNC110 (the hub offers no event for it)
                await asyncio.sleep(0.01)
        _, during = await scrape(api.http)
        data = {"conversationId": cid, "body": "<p>Live</p>"}
        await api.gql(SEND, {"input": data}, as_="alice")
        await client.next_data(operation)
        _, delivered = await scrape(api.http)
    # The server notices the closed socket on its own time: wait for the gauge to come back.
    async with asyncio.timeout(10):
        while True:
            _, after = await scrape(api.http)
            if value(after, "messager_websocket_connections") == value(
                before, "messager_websocket_connections"
            ):
                break
            await asyncio.sleep(0.05)

    connections = "messager_websocket_connections"
    assert value(during, connections) == value(before, connections) + 1
    active = ("messager_subscriptions_active", {"subscription": "messageAdded"})
    assert value(during, active[0], **active[1]) == value(before, active[0], **active[1]) + 1
    assert value(after, active[0], **active[1]) == value(before, active[0], **active[1])
    lag = "messager_delivery_lag_seconds_count"
    assert value(delivered, lag) == value(before, lag) + 1
    started = ("messager_graphql_operations_total", {"operation": "Live", "type": "subscription"})
    assert value(after, started[0], **started[1]) == value(before, started[0], **started[1]) + 1


@pytest.fixture
async def token_http(aiohttp_client, settings):
    return await aiohttp_client(
        init_app(settings.model_copy(update={"metrics_token": SecretStr("scrape-me")}))
    )


async def test_a_metrics_token_keeps_other_scrapers_out(token_http):
    refused = await token_http.get("/metrics")
    assert refused.status == 401
    assert (await refused.json())["error"]["code"] == "UNAUTHENTICATED"
    wrong = await token_http.get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status == 401
    await wrong.read()  # the body read, its connection goes back to the pool
    families, _ = await scrape(token_http, {"Authorization": "Bearer scrape-me"})
    assert "messager_graphql_operations" in families


async def test_one_scrape_of_serve_workers_sums_every_worker(tmp_path, mongo_uri):
    env = {**cli_env(tmp_path / "data", mongo_uri, JWT_SECRET)}
    with serving(
        "--workers", "2", env=env, log_dir=tmp_path, name="workers", port=free_port()
    ) as serve:
        await serve.until_healthy()
        requests = 20
        # Fresh connections, so that the kernel spreads them over both workers.
        for _ in range(requests):
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"{serve.url}/graphql", json={"query": "query Probe { __typename }"}
                ) as answer:
                    assert answer.status == 200
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{serve.url}/metrics") as answer:
                _, samples = parse(await answer.text())
    assert (
        value(samples, "messager_graphql_operations_total", operation="Probe", type="query")
        == requests
    )


async def test_metrics_can_be_turned_off(aiohttp_client, settings):
    http = await aiohttp_client(init_app(settings.model_copy(update={"metrics": False})))
    response = await http.get("/metrics")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "NOT_FOUND"
