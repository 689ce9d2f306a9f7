"""Concurrent writes of one kind go to the database together (`graphql_api/group_commit.py`),
and concurrent messages still leave exactly the notifications, outbox flags and read marks that
one-at-a-time sending leaves."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import BulkWriteError

from graphql_api.database import connect, database_of
from graphql_api.group_commit import GroupCommit
from tests.command_counting import CountingListener
from tests.documents import SEND_MESSAGE
from tests.subscription_helpers import bakery_conversation

UNREAD = "query($id: ID!) { conversation(id: $id) { unreadCount } }"
HISTORY = """query($id: ID!) { conversation(id: $id) {
  messages(first: 100) { edges { node { author { id } } } } } }"""


@pytest.fixture
async def counted_db(mongo_uri: str) -> Any:
    inserts = CountingListener(lambda event: event.command_name == "insert")
    client = connect(mongo_uri, listeners=[inserts])
    yield database_of(client), inserts
    await client.close()


async def test_writes_submitted_together_reach_the_database_as_one_command(counted_db):
    db, inserts = counted_db

    async def write(docs: list[dict[str, Any]]) -> None:
        await db.batched.insert_many(docs)

    group = GroupCommit(write)
    await asyncio.gather(*(group.submit({"_id": f"doc-{i}"}) for i in range(10)))
    assert inserts.count == 1
    assert await db.batched.count_documents({}) == 10
    await group.submit({"_id": "alone"})  # nothing waiting: written at once, on its own
    assert inserts.count == 2


async def test_a_failed_batch_reaches_every_caller_of_it(counted_db):
    db, _ = counted_db
    await db.batched.insert_one({"_id": "taken"})

    async def write(docs: list[dict[str, Any]]) -> None:
        await db.batched.insert_many(docs)

    group = GroupCommit(write)
    outcomes = await asyncio.gather(
        group.submit({"_id": "taken"}), group.submit({"_id": "free"}), return_exceptions=True
    )
    assert [type(o) for o in outcomes] == [BulkWriteError, BulkWriteError]
    await group.submit({"_id": "later"})  # the next batch is not affected
    assert await db.batched.find_one({"_id": "later"}) is not None


async def test_concurrent_replies_leave_right_unread_counts_and_notifications(api, db):
    cid = await bakery_conversation(api)  # bob (author of message 1), paul, alice may read
    senders = ["bob", "paul", "alice"] * 6
    await asyncio.gather(
        *(
            api.gql(
                SEND_MESSAGE, {"input": {"conversationId": cid, "body": f"<p>{i}</p>"}}, as_=who
            )
            for i, who in enumerate(senders)
        )
    )
    history = await api.gql(HISTORY, {"id": cid}, as_="bob")
    authors = [e["node"]["author"]["id"] for e in history["conversation"]["messages"]["edges"]]
    assert len(authors) == 19
    for who in ("bob", "paul", "alice"):
        me = api.ids["users"][who]
        last_own = max(seq for seq, author in enumerate(authors, start=1) if author == me)
        expected = sum(1 for author in authors[last_own:] if author != me)
        unread = await api.gql(UNREAD, {"id": cid}, as_=who)
        assert unread["conversation"]["unreadCount"] == expected, who
    # Participants (bob, paul) are notified of every message but their own; alice reads the
    # conversation through her favorite, so she is not notified.
    for who, own in (("bob", 7), ("paul", 6)):
        count = await db.notifications.count_documents({"user_id": api.ids["users"][who]})
        assert count == 19 - own, who
    assert await db.messages.count_documents({"fanout": "pending"}) == 0


async def test_stopping_the_writer_mid_write_releases_every_caller():
    # At shutdown the writer task is cancelled while a batch is in the database: its callers
    # and the ones queued behind must be told (cancelled), not left waiting forever.
    started = asyncio.Event()

    async def stuck(_items: list[str]) -> None:
        started.set()
        await asyncio.Event().wait()

    group: GroupCommit[str] = GroupCommit(stuck)
    in_flight = asyncio.create_task(group.submit("first"))
    await started.wait()
    queued = asyncio.create_task(group.submit("second"))
    await asyncio.sleep(0)
    assert group._writer is not None
    group._writer.cancel()
    async with asyncio.timeout(5):
        outcomes = await asyncio.gather(in_flight, queued, return_exceptions=True)
    assert [type(o) for o in outcomes] == [asyncio.CancelledError, asyncio.CancelledError]
