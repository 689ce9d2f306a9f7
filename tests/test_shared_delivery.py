"""A new message is executed once for all subscribers that see the same thing, and per viewer
for whatever depends on the viewer (`schema/shared_events.py`).

Real app, real sockets; a PyMongo command listener on the app's own client counts the lookups
that delivering one message costs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from tests.command_counting import CountingListener
from tests.conftest import Api
from tests.subscription_helpers import bakery_conversation, connect, uid, wait_for_subscribers
from tests.upload_helpers import uploaded
from tests.ws_client import next_message

# Fragments and an inline fragment: the shared path must read selections written every way.
CHAT_VIEW = """
subscription($c: ID!) { messageAdded(conversationId: $c) { ...Line } }
fragment Line on Message {
  id bodyText ... on Message { author { id name } attachments { filename } }
}
"""
WITH_LINKS = """
subscription($c: ID!) { messageAdded(conversationId: $c) { id attachments { filename url } } }
"""
WITH_UNREAD = """
subscription($c: ID!) { messageAdded(conversationId: $c) { id conversation { unreadCount } } }
"""
SEND = """mutation($input: SendMessageInput!) { sendMessage(input: $input) {
  id author { name } } }"""


@pytest.fixture
async def counted_api(aiohttp_client: Any, settings, ids) -> tuple[Api, CountingListener]:
    # Finds on the attachments collection: the attachment lookups of deliveries (authors come
    # from the process's user cache, which costs no command whether shared or not).
    lookups = CountingListener(
        lambda event: event.command_name == "find" and event.command.get("find") == "attachments"
    )
    http = await aiohttp_client(init_app(settings, mongo_listeners=[lookups]))
    return Api(http=http, tokens=TokenService(settings), ids=ids), lookups


async def test_a_message_reaching_many_subscribers_loads_its_author_once(counted_api):
    api, lookups = counted_api
    cid = await bakery_conversation(api)
    readers = ["alice", "paul", "bob"] * 3  # nine sockets of the conversation's three readers
    sockets = [await connect(api, user) for user in readers]
    try:
        operations = [await ws.subscribe(CHAT_VIEW, {"c": cid}) for ws in sockets]
        await wait_for_subscribers(api, len(sockets))
        await api.gql(
            SEND, {"input": {"conversationId": cid, "body": "<p>Invoices</p>"}}, as_="bob"
        )
        attachment = await uploaded(api, "bob", b"receipts", filename="receipts.txt")
        lookups.count = 0
        answer = await api.gql(
            SEND,
            {
                "input": {
                    "conversationId": cid,
                    "body": "<p>Receipts</p>",
                    "attachmentIds": [attachment["id"]],
                }
            },
            as_="bob",
        )
        expected = {
            "messageAdded": {
                "id": answer["sendMessage"]["id"],
                "bodyText": "Receipts",
                "author": {"id": uid(api, "bob"), "name": answer["sendMessage"]["author"]["name"]},
                "attachments": [{"filename": "receipts.txt"}],
            }
        }
        for ws, operation in zip(sockets, operations, strict=True):
            assert (await ws.receive())["payload"]["data"]["messageAdded"]["bodyText"] == "Invoices"
            assert await ws.receive() == next_message(operation, expected)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    # The mutation's own (1: the attachment's name goes into the search fields), then one
    # lookup shared by the nine deliveries, where each subscriber used to load it itself (9).
    assert lookups.count == 2


async def test_signed_download_links_stay_per_viewer(api):
    cid = await bakery_conversation(api)
    alice, paul = await connect(api, "alice"), await connect(api, "paul")
    try:
        operations = [await ws.subscribe(WITH_LINKS, {"c": cid}) for ws in (alice, paul)]
        await wait_for_subscribers(api, 2)
        attachment = await uploaded(api, "bob", b"ledger", filename="ledger.txt")
        await api.gql(
            SEND,
            {
                "input": {
                    "conversationId": cid,
                    "body": "<p>See file</p>",
                    "attachmentIds": [attachment["id"]],
                }
            },
            as_="bob",
        )
        links = []
        for ws, operation in zip((alice, paul), operations, strict=True):
            frame = await ws.receive()
            assert frame["id"] == operation
            (received,) = frame["payload"]["data"]["messageAdded"]["attachments"]
            assert received["filename"] == "ledger.txt"
            links.append(received["url"])
    finally:
        await alice.close()
        await paul.close()
    assert links[0] != links[1]
    for link in links:  # each link works as a plain browser link for its own viewer
        response = await api.http.session.get(link)
        assert response.status == 200
        assert await response.read() == b"ledger"


async def test_unread_counts_in_a_delivery_are_each_viewers_own(api):
    cid = await bakery_conversation(api)  # bob wrote the first message; paul has read nothing
    bob, paul = await connect(api, "bob"), await connect(api, "paul")
    try:
        operations = [await ws.subscribe(WITH_UNREAD, {"c": cid}) for ws in (bob, paul)]
        await wait_for_subscribers(api, 2)
        answer = await api.gql(
            SEND, {"input": {"conversationId": cid, "body": "<p>Reply</p>"}}, as_="bob"
        )
        message_id = answer["sendMessage"]["id"]
        assert await bob.receive() == next_message(
            operations[0], {"messageAdded": {"id": message_id, "conversation": {"unreadCount": 0}}}
        )
        assert await paul.receive() == next_message(
            operations[1], {"messageAdded": {"id": message_id, "conversation": {"unreadCount": 2}}}
        )
    finally:
        await bob.close()
        await paul.close()


INBOX_VIEW = """subscription { inboxUpdated { id unreadCount lastMessage { bodyText } } }"""
NOTIFICATION_VIEW = """subscription { notificationAdded {
  conversation { subject } message { bodyText author { name } } } }"""
READS = ("conversations", "messages", "read_marks")


@pytest.fixture
async def reads_api(aiohttp_client: Any, settings, ids) -> tuple[Api, dict[str, int]]:
    """An app counting its finds of conversations, messages and read marks, per collection."""
    finds = dict.fromkeys(READS, 0)

    def wanted(event: Any) -> bool:
        collection = event.command.get("find") if event.command_name == "find" else None
        if collection in finds:
            finds[collection] += 1
        return False

    http = await aiohttp_client(init_app(settings, mongo_listeners=[CountingListener(wanted)]))
    return Api(http=http, tokens=TokenService(settings), ids=ids), finds


async def test_a_message_reaches_its_readers_inboxes_and_notifications_for_one_read(reads_api):
    """Each reader's inbox shows the message and its own unread count, and the notified
    participant its notification, while the process reads the read marks once for all of
    them and nothing else (the conversation and the message come with the event); each
    subscriber used to read them again (two or three finds per delivery)."""
    api, finds = reads_api
    cid = await bakery_conversation(api)  # bob with paul; alice reads it from her favorites
    readers = ["alice", "bob", "paul"]
    sockets = [await connect(api, user) for user in readers]
    try:
        inboxes = [await ws.subscribe(INBOX_VIEW) for ws in sockets]
        notified = await sockets[2].subscribe(NOTIFICATION_VIEW)
        await wait_for_subscribers(api, 4)
        finds.update(dict.fromkeys(READS, 0))
        await api.gql(SEND, {"input": {"conversationId": cid, "body": "<p>Books</p>"}}, as_="bob")
        unread = {"alice": 2, "bob": 0, "paul": 2}  # bob wrote both; alice never opened it
        frames = [[await ws.receive()] for ws in sockets]
        frames[2].append(await sockets[2].receive())  # paul's notification too, in any order
        for user, received, operation in zip(readers, frames, inboxes, strict=True):
            inbox = {"id": cid, "unreadCount": unread[user], "lastMessage": {"bodyText": "Books"}}
            assert next_message(operation, {"inboxUpdated": inbox}) in received
        notification = {
            "conversation": {"subject": "Bakery books"},
            "message": {"bodyText": "Books", "author": {"name": "Bob Martin"}},
        }
        assert next_message(notified, {"notificationAdded": notification}) in frames[2]
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    # The mutation's own read of the conversation (its guard), then one read of the marks.
    assert finds == {"conversations": 1, "messages": 0, "read_marks": 1}
