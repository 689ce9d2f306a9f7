"""The crash recovery (issue 18), one interrupted write at a time, in-process.

Each test leaves in the database exactly what a process killed at one point of a write leaves
(the same documents the service writes, stopped where the process would have died), and runs an
app whose recovery uses a one-second grace period: counts, the inbox and notifications must then
become exact on their own. The real kill -9 runs in tests/test_crash_consistency.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.keys import SERVICES
from graphql_api.recovery import recover_once
from tests.conftest import Api
from tests.notification_helpers import (
    create,
    notified_users,
    send,
    store_pending_message,
    uid,
    unread_count,
)
from tests.upload_helpers import uploaded
from tests.ws_client import WAIT_SECONDS

GRACE_SECONDS = 1.0
INBOX = """
query { conversations(first: 10) { edges { node { id unreadCount lastMessage { id } } } } }
"""
SEND_KEYED = """
mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }
"""


@pytest.fixture
async def api(aiohttp_client: Any, settings, ids) -> Api:
    """The app with a short recovery grace period, run every 0.2 s."""
    quick = settings.model_copy(
        update={"recovery_grace_seconds": GRACE_SECONDS, "recovery_interval_seconds": 0.2}
    )
    return Api(await aiohttp_client(init_app(quick)), TokenService(quick), ids)


async def take_number_and_die(db: Any, conversation_id: str) -> str:
    """What a reply leaves when its process dies after taking its number (the conversation
    names it as the last message, at this time) and before storing it."""
    lost_id = str(ObjectId())
    await db.conversations.update_one(
        {"_id": conversation_id},
        {
            "$inc": {"message_count": 1, "staff_count": 1, "client_count": 1},
            "$set": {
                "last_activity_ms": _now_ms(),
                "last_message_id": lost_id,
                "client_activity_ms": _now_ms(),
                "client_last_message_id": lost_id,
            },
        },
    )
    return lost_id


def _now_ms() -> int:
    return int(time.time() * 1000)


async def until_unread(api: Api, user: str, conversation_id: str, expected: int) -> None:
    """Wait (bounded) until the user's unread count of the conversation is `expected`."""
    async with asyncio.timeout(WAIT_SECONDS):
        # Polls what another task (the recovery) writes: no event to wait on from here.
        while await unread_count(api, user, conversation_id) != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def inbox(api: Api, user: str) -> list[dict[str, Any]]:
    return [edge["node"] for edge in (await api.gql(INBOX, as_=user))["conversations"]["edges"]]


async def test_a_number_taken_by_a_reply_that_died_stops_counting_as_unread(api, db):
    cid = await create(api, "bob", "PRIVATE", ["paul"], subject="interrupted")
    reply = await send(api, "bob", cid, "stored")
    other = await create(api, "bob", "PRIVATE", ["paul"], subject="later")
    await take_number_and_die(db, cid)
    assert [c["id"] for c in await inbox(api, "paul")] == [cid, other]  # bumped by the lost one
    assert await unread_count(api, "paul", cid) == 3

    await until_unread(api, "paul", cid, 2)
    # The conversation names its newest stored message again, and sorts by its time.
    assert await inbox(api, "paul") == [
        {"id": other, "unreadCount": 1, "lastMessage": {"id": await first_id(db, other)}},
        {"id": cid, "unreadCount": 2, "lastMessage": {"id": reply}},
    ]
    assert await unread_count(api, "bob", cid) == 0
    await send(api, "bob", cid, "after the crash")
    assert await unread_count(api, "paul", cid) == 3


async def first_id(db: Any, conversation_id: str) -> str:
    return (await db.messages.find_one({"conversation_id": conversation_id, "seq": 1}))["_id"]


async def test_a_lost_number_of_a_conversation_that_stays_active_is_settled(api, db):
    cid = await create(api, "bob", "PRIVATE", ["paul"])
    await take_number_and_die(db, cid)
    await send(api, "bob", cid, "stored after the lost one")
    sent = 1
    # Replies keep coming: the conversation never stays quiet for the grace period, but the
    # lost number is below a stored message older than that: no send can still store it.
    async with asyncio.timeout(WAIT_SECONDS):
        while await unread_count(api, "paul", cid) != 1 + sent:  # the first message and replies
            await send(api, "bob", cid, f"busy {sent}")
            sent += 1
            await asyncio.sleep(GRACE_SECONDS / 4)


async def test_a_number_whose_reply_may_still_be_stored_is_left_alone(
    aiohttp_client, settings, ids, db
):
    # The default grace period (60 s): a reply that took its number a moment ago may be in
    # flight on another process, and may still store its message.
    api = Api(await aiohttp_client(init_app(settings)), TokenService(settings), ids)
    cid = await create(api, "bob", "PRIVATE", ["paul"])
    lost_id = await take_number_and_die(db, cid)
    await recover_once(api.http.app[SERVICES])
    assert await unread_count(api, "paul", cid) == 2
    await store_message(db, api, cid, "bob", 2, lost_id)  # it was in flight after all
    await recover_once(api.http.app[SERVICES])
    assert await unread_count(api, "paul", cid) == 2


async def store_message(db: Any, api: Api, cid: str, author: str, seq: int, message_id: str):
    """Store a message as the service does (its fan-out done)."""
    now = datetime.now(UTC).replace(microsecond=0)
    await db.messages.insert_one(
        {
            "_id": message_id,
            "firm_id": api.ids["firms"]["acme"],
            "conversation_id": cid,
            "seq": seq,
            "author_id": uid(api, author),
            "body": "<p>late</p>",
            "body_text": "late",
            "attachment_ids": [],
            "created_at": now,
            "created_ms": int(now.timestamp() * 1000),
            "fanout": "done",
            "recipients": [],
        }
    )
    return message_id


async def test_a_creation_that_died_before_its_conversation_leaves_nothing(api, db):
    # Its first message is stored, with its fan-out pending; the conversation never was.
    orphan = await store_message(db, api, str(ObjectId()), "bob", 1, str(ObjectId()))
    await db.messages.update_one(
        {"_id": orphan}, {"$set": {"fanout": "pending", "recipients": [uid(api, "paul")]}}
    )
    async with asyncio.timeout(WAIT_SECONDS):
        while await db.messages.find_one({"_id": orphan}) is not None:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert await notified_users(db, orphan) == []


async def test_a_retry_writes_the_notifications_its_first_attempt_did_not(api, db):
    cid = await create(api, "bob", "PRIVATE", ["paul", "carla"])
    # The first attempt stored the message and died before its fan-out, a moment ago.
    stored = await store_pending_message(db, api, cid, "bob", ["paul", "carla"], "hi", age_ms=0)
    await db.messages.update_one({"_id": stored}, {"$set": {"client_message_id": "k-1"}})
    retry = {"conversationId": cid, "body": "<p>hi</p>", "clientMessageId": "k-1"}
    answer = await api.gql(SEND_KEYED, {"input": retry}, as_="bob")
    assert answer == {"sendMessage": {"id": stored}}
    assert await notified_users(db, stored) == sorted([uid(api, "paul"), uid(api, "carla")])


async def test_attachments_claimed_by_a_reply_that_died_can_be_attached_again(api, db):
    cid = await create(api, "bob", "PRIVATE", ["paul"])
    file = await uploaded(api, "bob", b"the invoice")
    services = api.http.app[SERVICES]
    bob = await services.directory.user_by_id(uid(api, "bob"))
    # The reply claimed the file for its message, then died before storing the message.
    assert await services.attachments.claim(bob, [file["id"]], str(ObjectId()), cid)
    retry = {"conversationId": cid, "body": "<p>invoice</p>", "attachmentIds": [file["id"]]}
    assert await api.error_code(SEND_KEYED, {"input": retry}, as_="bob") == "NOT_FOUND"

    async with asyncio.timeout(WAIT_SECONDS):
        while (await db.attachments.find_one({"_id": file["id"]}))["state"] != "pending":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    sent = (await api.gql(SEND_KEYED, {"input": retry}, as_="bob"))["sendMessage"]["id"]
    assert (await db.attachments.find_one({"_id": file["id"]}))["message_id"] == sent


async def test_a_lost_note_stops_counting_for_practitioners_and_never_counted_for_clients(api, db):
    cid = await create(api, "bob", "PRIVATE", ["paul"], subject="a note died")
    await send(api, "bob", cid, "stored")
    # A note takes a number and a staff ordinal (no client one), then its process dies.
    lost_id = str(ObjectId())
    await db.conversations.update_one(
        {"_id": cid},
        {
            "$inc": {"message_count": 1, "staff_count": 1},
            "$set": {"last_activity_ms": _now_ms(), "last_message_id": lost_id},
        },
    )
    assert await unread_count(api, "paul", cid) == 3
    assert await unread_count(api, "bob", cid) == 0

    await until_unread(api, "paul", cid, 2)
    stored = await db.conversations.find_one({"_id": cid})
    assert (stored["skipped_seqs"], stored["skipped_staff"]) == ([3], [3])
    assert stored.get("skipped_client", []) == []
    assert stored["last_message_id"] != lost_id
    # A message after it counts once for each audience.
    await send(api, "paul", cid, "after the lost note")
    assert await unread_count(api, "bob", cid) == 1
    await send(api, "bob", cid, "and a reply")
    assert await unread_count(api, "paul", cid) == 1  # his own message read what came before
