"""Live updates over WebSocket (SPEC §8): `messageAdded`, `notificationAdded`, `inboxUpdated`.

Real app, real sockets (aiohttp's WebSocket client speaking `graphql-transport-ws`, see
`tests/ws_client.py`), events through the embedded server's change streams. No test sleeps to wait
for an event: each waits (bounded) for the message it expects, and "not delivered" is shown by
ordering: a later event that must arrive comes first.

A subscription is live once the server has registered it with the event hub. `messageAdded`
subscriptions mostly pass `after` (the cursor of the newest message), which makes them
deterministic whatever the timing: a message stored after that cursor is replayed or delivered
live. The others wait until the hub counts the new subscriber.

The standard directory (`tests/factories.py`): firm acme has companies bakery, garage and florist;
practitioners alice (favorite bakery) and paul (no favorites); clients bob (bakery; favorite
bakery), carla (bakery; no favorites) and dan (garage, florist; favorite garage).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from bson import ObjectId

from graphql_api.app import init_app
from graphql_api.conversations.models import Message
from graphql_api.ids import new_id
from graphql_api.keys import SERVICES
from graphql_api.realtime.events import MessageAdded
from graphql_api.realtime.hub import (
    SLOW_CONSUMER_CLOSE_CODE,
    SUBSCRIBER_QUEUE_SIZE,
)
from graphql_api.settings import Settings
from tests.documents import SEND_MESSAGE
from tests.subscription_helpers import (
    bakery_conversation,
    company,
    connect,
    create,
    uid,
    wait_for_subscribers,
)
from tests.ws_client import (
    LEGACY_WS,
    TRANSPORT_WS,
    GraphQLWs,
    bearer,
    close_code,
    complete_message,
    drain_until_closed,
    error_message,
    next_message,
    receive_json,
)

ADD_FAVORITE = "mutation($id: ID!) { addFavoriteCompany(companyId: $id) { isFavorite } }"
REMOVE_FAVORITE = "mutation($id: ID!) { removeFavoriteCompany(companyId: $id) { isFavorite } }"
LAST_CURSOR = """
query($id: ID!) { conversation(id: $id) { messages(last: 1) { edges { cursor node { id } } } } }
"""
HISTORY_AFTER = """
query($id: ID!, $after: String) {
  conversation(id: $id) { messages(first: 100, after: $after) { edges { node { bodyText } } } }
}
"""

MESSAGE_ADDED = """
subscription($c: ID!, $after: String) {
  messageAdded(conversationId: $c, after: $after) {
    id body bodyText author { id } conversation { id }
  }
}
"""
MESSAGE_TEXT = """
subscription($c: ID!, $after: String) {
  messageAdded(conversationId: $c, after: $after) { bodyText }
}
"""
NOTIFICATION_ADDED = """
subscription {
  notificationAdded { id readAt message { id bodyText } conversation { id subject } }
}
"""
INBOX_UPDATED = """
subscription { inboxUpdated { id subject type unreadCount lastMessage { bodyText } } }
"""
INBOX_SUBJECTS = "subscription { inboxUpdated { subject lastMessage { bodyText } } }"


# -- helpers ------------------------------------------------------------------------------


async def send(api: Any, as_: str, conversation_id: str, text: str) -> str:
    """Reply with `<p>text</p>`; answers the message id."""
    answer = await api.gql(
        SEND_MESSAGE,
        {"input": {"conversationId": conversation_id, "body": f"<p>{text}</p>"}},
        as_=as_,
    )
    return answer["sendMessage"]["id"]


async def last_cursor(api: Any, as_: str, conversation_id: str) -> tuple[str, str]:
    """(cursor, message id) of the conversation's newest message, as `as_` reads it."""
    data = await api.gql(LAST_CURSOR, {"id": conversation_id}, as_=as_)
    (edge,) = data["conversation"]["messages"]["edges"]
    return edge["cursor"], edge["node"]["id"]


async def subscribe_live(api: Any, client: GraphQLWs, query: str, expected: int) -> str:
    """Subscribe (no `after`) and wait until the hub holds `expected` subscriptions."""
    operation = await client.subscribe(query)
    await wait_for_subscribers(api, expected)
    return operation


def text_of(message: dict[str, Any]) -> str:
    return message["payload"]["data"]["messageAdded"]["bodyText"]


# -- messageAdded ---------------------------------------------------------------------------


async def test_message_added_delivers_a_new_message_to_each_reader(api):
    cid = await bakery_conversation(api)
    participant = await connect(api, "paul")
    favorite_reader = await connect(api, "alice")
    try:
        ops = [
            await participant.subscribe(MESSAGE_ADDED, {"c": cid}),
            await favorite_reader.subscribe(MESSAGE_ADDED, {"c": cid}),
        ]
        await wait_for_subscribers(api, 2)
        message_id = await send(api, "bob", cid, "Invoices <b>attached</b>")
        expected = {
            "messageAdded": {
                "id": message_id,
                "body": "<p>Invoices <b>attached</b></p>",
                "bodyText": "Invoices attached",
                "author": {"id": uid(api, "bob")},
                "conversation": {"id": cid},
            }
        }
        assert await participant.receive() == next_message(ops[0], expected)
        assert await favorite_reader.receive() == next_message(ops[1], expected)
    finally:
        await participant.close()
        await favorite_reader.close()


async def test_message_added_refuses_an_unreadable_or_unknown_conversation_alike(api):
    cid = await bakery_conversation(api)
    async with await connect(api, "dan") as client:  # no access to bakery conversations
        answers = []
        for conversation_id in [cid, str(ObjectId()), "not-an-id"]:
            operation = await client.subscribe(MESSAGE_ADDED, {"c": conversation_id})
            answers.append(await client.receive())
            assert await client.receive() == complete_message(operation)
    assert answers == [
        error_message(str(n), "conversation not found", "NOT_FOUND") for n in (1, 2, 3)
    ]


async def test_message_added_after_a_cursor_replays_what_was_missed_then_goes_live(api):
    cid = await bakery_conversation(api)
    first_cursor, _ = await last_cursor(api, "alice", cid)
    async with await connect(api, "alice") as client:
        operation = await client.subscribe(MESSAGE_TEXT, {"c": cid, "after": first_cursor})
        seen_id = await send(api, "bob", cid, "seen")
        assert await client.next_data(operation) == {"messageAdded": {"bodyText": "seen"}}
    cursor, newest_id = await last_cursor(api, "alice", cid)
    assert newest_id == seen_id  # the cursor of the last message the client received

    for text in ["missed 1", "missed 2", "missed 3"]:  # while disconnected
        await send(api, "paul", cid, text)

    async with await connect(api, "alice") as client:
        operation = await client.subscribe(MESSAGE_TEXT, {"c": cid, "after": cursor})
        replayed = [await client.receive() for _ in range(3)]
        await send(api, "bob", cid, "live")
        live = await client.receive()
    assert [*replayed, live] == [
        next_message(operation, {"messageAdded": {"bodyText": text}})
        for text in ["missed 1", "missed 2", "missed 3", "live"]
    ]


async def test_message_added_after_a_cursor_has_no_gap_nor_duplicate_while_messages_arrive(api):
    cid = await bakery_conversation(api)
    cursor, _ = await last_cursor(api, "alice", cid)

    async def sender(user: str) -> None:
        for n in range(10):
            await send(api, user, cid, f"{user} {n}")

    async with await connect(api, "alice") as client:
        # Two authors send 20 messages while the subscription replays and goes live.
        senders = asyncio.gather(sender("bob"), sender("paul"))
        operation = await client.subscribe(MESSAGE_TEXT, {"c": cid, "after": cursor})
        await senders
        received = [text_of(await client.receive()) for _ in range(20)]
        await send(api, "bob", cid, "after the burst")
        following = await client.receive()

    history = await api.gql(HISTORY_AFTER, {"id": cid, "after": cursor}, as_="alice")
    in_seq_order = [e["node"]["bodyText"] for e in history["conversation"]["messages"]["edges"]]
    assert len(in_seq_order) == 21
    assert received == in_seq_order[:20]
    assert sorted(received) == sorted(
        [f"bob {n}" for n in range(10)] + [f"paul {n}" for n in range(10)]
    )
    assert following == next_message(operation, {"messageAdded": {"bodyText": "after the burst"}})


async def test_two_subscriptions_on_one_socket_both_receive(api):
    cid = await bakery_conversation(api)
    cursor, _ = await last_cursor(api, "alice", cid)
    async with await connect(api, "alice") as client:
        texts = await client.subscribe(MESSAGE_TEXT, {"c": cid, "after": cursor})
        full = await client.subscribe(MESSAGE_ADDED, {"c": cid, "after": cursor})
        message_id = await send(api, "bob", cid, "to both")
        received = [await client.receive(), await client.receive()]
    assert sorted(received, key=lambda m: m["id"]) == [
        next_message(texts, {"messageAdded": {"bodyText": "to both"}}),
        next_message(
            full,
            {
                "messageAdded": {
                    "id": message_id,
                    "body": "<p>to both</p>",
                    "bodyText": "to both",
                    "author": {"id": uid(api, "bob")},
                    "conversation": {"id": cid},
                }
            },
        ),
    ]


async def test_complete_from_the_client_stops_only_that_subscription(api):
    cid = await bakery_conversation(api)
    cursor, _ = await last_cursor(api, "alice", cid)
    async with await connect(api, "alice") as client:
        stopped = await client.subscribe(MESSAGE_TEXT, {"c": cid, "after": cursor})
        kept = await client.subscribe(MESSAGE_TEXT, {"c": cid, "after": cursor})
        await send(api, "bob", cid, "both live")
        assert sorted([(await client.receive())["id"], (await client.receive())["id"]]) == [
            stopped,
            kept,
        ]
        await client.complete(stopped)
        await client.ping()  # the server has read the `complete`
        await send(api, "bob", cid, "second")
        await send(api, "bob", cid, "third")
        received = [await client.receive(), await client.receive()]
    assert received == [
        next_message(kept, {"messageAdded": {"bodyText": "second"}}),
        next_message(kept, {"messageAdded": {"bodyText": "third"}}),
    ]


async def test_message_added_ends_with_not_found_once_the_favorite_is_removed(api):
    cid = await bakery_conversation(api)
    cursor, _ = await last_cursor(api, "alice", cid)
    async with await connect(api, "alice") as client:  # reads it through her favorite only
        operation = await client.subscribe(MESSAGE_TEXT, {"c": cid, "after": cursor})
        await send(api, "bob", cid, "still readable")
        assert await client.next_data(operation) == {"messageAdded": {"bodyText": "still readable"}}
        assert await api.gql(REMOVE_FAVORITE, {"id": company(api, "bakery")}, as_="alice") == {
            "removeFavoriteCompany": {"isFavorite": False}
        }
        await send(api, "bob", cid, "no longer readable")
        assert await client.receive() == error_message(
            operation, "conversation not found", "NOT_FOUND"
        )
        assert await client.receive() == complete_message(operation)


# -- notificationAdded ----------------------------------------------------------------------


async def test_notification_added_delivers_the_viewers_new_notification(api):
    cid = await bakery_conversation(api)
    async with await connect(api, "paul") as client:
        operation = await subscribe_live(api, client, NOTIFICATION_ADDED, 1)
        message_id = await send(api, "bob", cid, "Please check")
        assert await client.receive() == next_message(
            operation,
            {
                "notificationAdded": {
                    "id": f"{message_id}:{uid(api, 'paul')}",
                    "readAt": None,
                    "message": {"id": message_id, "bodyText": "Please check"},
                    "conversation": {"id": cid, "subject": "Bakery books"},
                }
            },
        )


async def test_notification_added_reaches_participants_only(api):
    cid = await bakery_conversation(api)
    async with await connect(api, "alice") as client:  # reads cid through her favorite
        operation = await subscribe_live(api, client, NOTIFICATION_ADDED, 1)
        await send(api, "bob", cid, "for the participants")
        private = await create(api, "bob", "PRIVATE", ["alice"], subject="Private", body="Hi")
        received = await client.receive()
    assert received["id"] == operation
    assert received["payload"]["data"]["notificationAdded"]["conversation"]["id"] == private


# -- inboxUpdated ---------------------------------------------------------------------------


async def test_inbox_updated_delivers_creations_and_replies_to_readers(api):
    async with await connect(api, "alice") as client:
        operation = await subscribe_live(api, client, INBOX_UPDATED, 1)
        cid = await create(
            api, "bob", "COMPANY", ["paul"], company_key="bakery", subject="New", body="Created"
        )
        created = await client.receive()
        await send(api, "paul", cid, "Replied")
        replied = await client.receive()
    assert [created, replied] == [
        next_message(
            operation,
            {
                "inboxUpdated": {
                    "id": cid,
                    "subject": "New",
                    "type": "COMPANY",
                    "unreadCount": unread,
                    "lastMessage": {"bodyText": text},
                }
            },
        )
        for unread, text in [(1, "Created"), (2, "Replied")]
    ]


async def test_inbox_updated_skips_conversations_the_viewer_may_not_read(api):
    async with await connect(api, "dan") as client:  # client of garage and florist only
        operation = await subscribe_live(api, client, INBOX_SUBJECTS, 1)
        cid = await bakery_conversation(api, subject="Bakery only")
        await send(api, "bob", cid, "bakery reply")
        await create(api, "alice", "PRIVATE", ["dan"], subject="For dan", body="Hello dan")
        received = await client.receive()
    assert received == next_message(
        operation,
        {"inboxUpdated": {"subject": "For dan", "lastMessage": {"bodyText": "Hello dan"}}},
    )


async def test_inbox_updated_skips_a_conversation_once_the_favorite_is_removed(api):
    cid = await bakery_conversation(api)
    async with await connect(api, "alice") as client:
        operation = await subscribe_live(api, client, INBOX_SUBJECTS, 1)
        await send(api, "bob", cid, "while favorite")
        assert await client.next_data(operation) == {
            "inboxUpdated": {
                "subject": "Bakery books",
                "lastMessage": {"bodyText": "while favorite"},
            }
        }
        await api.gql(REMOVE_FAVORITE, {"id": company(api, "bakery")}, as_="alice")
        await send(api, "bob", cid, "after removal")
        await create(api, "bob", "PRIVATE", ["alice"], subject="Private", body="Direct")
        received = await client.receive()
    assert received == next_message(
        operation, {"inboxUpdated": {"subject": "Private", "lastMessage": {"bodyText": "Direct"}}}
    )


async def test_inbox_updated_resumes_once_the_favorite_is_added_back(api):
    cid = await bakery_conversation(api)
    await api.gql(REMOVE_FAVORITE, {"id": company(api, "bakery")}, as_="alice")
    async with await connect(api, "alice") as client:  # subscribes without access
        operation = await subscribe_live(api, client, INBOX_SUBJECTS, 1)
        assert await api.gql(ADD_FAVORITE, {"id": company(api, "bakery")}, as_="alice") == {
            "addFavoriteCompany": {"isFavorite": True}
        }
        await send(api, "bob", cid, "readable again")
        await create(api, "bob", "PRIVATE", ["alice"], subject="Private", body="Direct")
        # The reply comes first: no waiting for an event that might not come.
        assert await client.next_data(operation) == {
            "inboxUpdated": {
                "subject": "Bakery books",
                "lastMessage": {"bodyText": "readable again"},
            }
        }
        assert await client.next_data(operation) == {
            "inboxUpdated": {"subject": "Private", "lastMessage": {"bodyText": "Direct"}}
        }


# -- authentication and protocol ------------------------------------------------------------


@pytest.mark.parametrize("credential", ["none", "bad", "expired", "unknown user"])
async def test_connection_init_without_a_valid_token_is_closed_with_4401(api, credential):
    authorization = {
        "none": None,
        "bad": "Bearer not-a-token",
        "expired": bearer(api.tokens.issue(uid(api, "bob"), ttl_seconds=-60)),
        "unknown user": bearer(api.tokens.issue(str(ObjectId()), ttl_seconds=600)),
    }[credential]
    client = await GraphQLWs.open(api.http)
    try:
        await client.init(authorization)
        assert await close_code(client.ws) == 4401
    finally:
        await client.close()


async def test_legacy_graphql_ws_is_refused_by_default(api):
    ws = await api.http.ws_connect("/graphql", protocols=[LEGACY_WS])
    try:
        assert ws.protocol is None  # no subprotocol agreed
        assert await close_code(ws) == 4406
    finally:
        await ws.close()


@pytest.fixture
async def short_init_http(aiohttp_client: Any, settings: Settings, api: Any) -> TestClient:
    """A second app on the same database with the legacy protocol enabled and a 0.5 s
    `connection_init` timeout."""
    legacy = settings.model_copy(
        update={"legacy_graphql_ws": True, "ws_connection_init_timeout_seconds": 0.5}
    )
    return await aiohttp_client(init_app(legacy))


async def test_legacy_graphql_ws_is_accepted_when_enabled(api, short_init_http):
    cid = await bakery_conversation(api)
    cursor, _ = await last_cursor(api, "alice", cid)
    ws = await short_init_http.ws_connect("/graphql", protocols=[LEGACY_WS])
    try:
        assert ws.protocol == LEGACY_WS
        await ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": bearer(api.token("alice"))}}
        )
        assert await receive_json(ws) == {"type": "connection_ack"}
        await ws.send_json(
            {
                "id": "1",
                "type": "start",
                "payload": {"query": MESSAGE_TEXT, "variables": {"c": cid, "after": cursor}},
            }
        )
        await send(api, "bob", cid, "over graphql-ws")  # through the other app
        message = await receive_json(ws)
        while message == {"type": "ka"}:  # the legacy protocol's keep-alives
            message = await receive_json(ws)
    finally:
        await ws.close()
    assert message == {
        "id": "1",
        "type": "data",
        "payload": {"data": {"messageAdded": {"bodyText": "over graphql-ws"}}},
    }


async def test_legacy_graphql_ws_without_connection_init_is_closed_after_the_init_timeout(
    short_init_http,
):
    ws = await short_init_http.ws_connect("/graphql", protocols=[LEGACY_WS])
    try:
        assert ws.protocol == LEGACY_WS
        assert await close_code(ws) == 4408
    finally:
        await ws.close()


async def test_graphql_transport_ws_without_connection_init_is_closed_with_4408(short_init_http):
    ws = await short_init_http.ws_connect("/graphql", protocols=[TRANSPORT_WS])
    try:
        assert ws.protocol == TRANSPORT_WS
        assert await close_code(ws) == 4408
    finally:
        await ws.close()


# -- back-pressure --------------------------------------------------------------------------


async def test_a_slow_consumer_is_closed_with_1013_while_other_subscribers_keep_receiving(api, db):
    cid = await bakery_conversation(api)
    hub = api.http.app[SERVICES].hub
    first = Message.from_doc(await db.messages.find_one({"conversation_id": cid}))
    big_text = "x" * 1_000_000  # a few of these fill the socket buffers of a client not reading

    slow = await connect(api, "alice")
    fast = await connect(api, "bob")
    try:
        slow_op = await slow.subscribe(MESSAGE_TEXT, {"c": cid})  # then never reads
        fast_op = await fast.subscribe(
            "subscription($c: ID!) { messageAdded(conversationId: $c) { id } }", {"c": cid}
        )
        await wait_for_subscribers(api, 2)

        # More events than the slow subscriber's queue holds once its socket is full, published
        # in batches the reading subscriber consumes as they come.
        total, batch, seq = SUBSCRIBER_QUEUE_SIZE + 128, 32, first.seq
        sent: list[str] = []
        for _ in range(total // batch):
            for _ in range(batch):
                seq += 1
                published = replace(first, id=new_id(), seq=seq, body_text=big_text)
                hub.publish(MessageAdded(published))  # each its own id: the hub drops repeats
                sent.append(published.id)
            for _ in range(batch):
                assert await fast.next_data(fast_op) == {"messageAdded": {"id": sent.pop(0)}}

        before_close, code = await drain_until_closed(slow.ws)
        assert code == SLOW_CONSUMER_CLOSE_CODE
        assert 0 < len(before_close) < total
        assert all(m["id"] == slow_op and m["type"] == "next" for m in before_close)

        seq += 1
        last = replace(first, id=new_id(), seq=seq)
        hub.publish(MessageAdded(last))
        assert await fast.next_data(fast_op) == {"messageAdded": {"id": last.id}}
    finally:
        await slow.close()
        await fast.close()
