"""Notifications and read state (SPEC §5): one notification per participant but the author per new
message, the list (unread first, then newest first), marking read, the fan-out outbox that
completes what a crash interrupted, unread counts and the read mark.

The standard directory (`tests/factories.py`): firm acme has companies bakery, garage and florist;
practitioners alice (favorite bakery) and paul (no favorites); clients bob (bakery; favorite
bakery), carla (bakery; no favorites) and dan (garage, florist; favorite garage).
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from graphql_api.app import init_app
from graphql_api.directory.importer import import_directory
from graphql_api.keys import SERVICES
from tests.notification_helpers import (
    create,
    millis_now,
    notified_users,
    send,
    store_pending_message,
    uid,
    unread_count,
)
from tests.user_writes import app_of, update_user
from tests.ws_client import WAIT_SECONDS

NOTIFICATIONS = """
query($first: Int, $after: String, $unread: Boolean) {
  notifications(first: $first, after: $after, unreadOnly: $unread) {
    edges { cursor node { id readAt message { bodyText } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
MARK = "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) }"
MARK_CONVERSATION = """
mutation($id: ID!) { markConversationRead(conversationId: $id) { id unreadCount } }
"""
UNREAD_INBOX = """
query { conversations(first: 100, unreadOnly: true) { edges { node { subject unreadCount } } } }
"""
READABLE = "query($id: ID!) { conversation(id: $id) { id } }"


# -- helpers ------------------------------------------------------------------------------


async def first_message_id(db: Any, conversation_id: str) -> str:
    doc = await db.messages.find_one({"conversation_id": conversation_id, "seq": 1})
    return doc["_id"]


async def listed(api: Any, as_: str, **variables: Any) -> list[dict[str, Any]]:
    """The nodes of the viewer's notifications (one page of 100)."""
    data = await api.gql(NOTIFICATIONS, {"first": 100, **variables}, as_=as_)
    return [edge["node"] for edge in data["notifications"]["edges"]]


async def listed_texts(api: Any, as_: str, **variables: Any) -> list[str]:
    return [n["message"]["bodyText"] for n in await listed(api, as_, **variables)]


async def mark(api: Any, as_: str, ids: list[str] | None) -> int:
    return (await api.gql(MARK, {"ids": ids}, as_=as_))["markNotificationsRead"]


async def paul_with_five_notifications(api: Any) -> list[str]:
    """bob writes "n1".."n5" to paul in one conversation; answers paul's notification ids,
    oldest first."""
    cid = await create(api, "bob", "PRIVATE", ["paul"], text="n1")
    for n in range(2, 6):
        await send(api, "bob", cid, f"n{n}")
    nodes = await listed(api, "paul")
    assert [n["message"]["bodyText"] for n in nodes] == ["n5", "n4", "n3", "n2", "n1"]
    return [n["id"] for n in reversed(nodes)]


def notifications_service(api: Any) -> Any:
    return api.http.app[SERVICES].notifications


# -- one notification per participant but the author ----------------------------------------


async def test_every_participant_but_the_author_gets_one_notification_per_message(api, db):
    cid = await create(
        api, "bob", "COMPANY", ["alice", "paul", "carla"], company="bakery", text="opening"
    )
    first = await first_message_id(db, cid)
    reply = await send(api, "paul", cid, "reply")

    assert await notified_users(db, first) == sorted(
        uid(api, u) for u in ["alice", "paul", "carla"]
    )
    assert await notified_users(db, reply) == sorted(uid(api, u) for u in ["alice", "bob", "carla"])
    assert await listed_texts(api, "alice") == ["reply", "opening"]
    assert await listed_texts(api, "carla") == ["reply", "opening"]
    assert await listed_texts(api, "paul") == ["opening"]
    assert await listed_texts(api, "bob") == ["reply"]


async def test_fifty_participants_yield_49_notifications_per_message_and_none_for_the_author(
    api, db
):
    extra = await import_directory(
        db,
        {
            "firms": [],
            "companies": [],
            "users": [
                {
                    "key": f"staff{n:02}",
                    "firm": "acme",
                    "kind": "PRACTITIONER",
                    "name": f"Staff {n:02}",
                    "email": f"staff{n:02}@acme.test",
                }
                for n in range(49)
            ],
        },
    )
    api.ids["users"].update(extra["users"])
    staff = sorted(extra["users"])
    cid = await create(api, "alice", "COMPANY", staff, company="bakery", text="to all 49")
    first = await first_message_id(db, cid)
    reply = await send(api, "staff00", cid, "one answers")

    assert len(await notified_users(db, first)) == len(await notified_users(db, reply)) == 49
    assert await notified_users(db, first) == sorted(uid(api, s) for s in staff)
    assert await notified_users(db, reply) == sorted(
        uid(api, u) for u in ["alice", *staff] if u != "staff00"
    )
    assert await listed_texts(api, "alice") == ["one answers"]
    assert await listed_texts(api, "staff00") == ["to all 49"]
    assert await listed_texts(api, "staff48") == ["one answers", "to all 49"]


async def test_readers_who_are_not_participants_get_no_notification(api, db):
    cid = await create(api, "bob", "COMPANY", ["paul"], company="bakery")
    await send(api, "paul", cid, "reply")
    # alice reads the conversation through her favorite, and is no participant.
    assert await api.gql(READABLE, {"id": cid}, as_="alice") == {"conversation": {"id": cid}}
    assert await listed(api, "alice") == []
    assert await db.notifications.count_documents({"user_id": uid(api, "alice")}) == 0


async def test_a_sent_message_leaves_no_pending_fanout(api, db):
    cid = await create(api, "bob", "PRIVATE", ["paul"])
    await send(api, "paul", cid, "reply")
    docs = await db.messages.find({"conversation_id": cid}).sort("seq", 1).to_list()
    assert [(d["seq"], d["fanout"]) for d in docs] == [(1, "done"), (2, "done")]


# -- the list ---------------------------------------------------------------------------------


async def test_notifications_list_unread_first_then_newest_first(api):
    n1, n2, n3, n4, n5 = await paul_with_five_notifications(api)
    assert await mark(api, "paul", [n2, n4]) == 2
    nodes = await listed(api, "paul")
    assert [(n["id"], n["readAt"] is None) for n in nodes] == [
        (n5, True),
        (n3, True),
        (n1, True),
        (n4, False),
        (n2, False),
    ]


async def test_unread_only_lists_only_unread_notifications(api):
    _, n2, _, n4, _ = await paul_with_five_notifications(api)
    await mark(api, "paul", [n2, n4])
    assert await listed_texts(api, "paul", unread=True) == ["n5", "n3", "n1"]


async def test_notifications_paginate_without_gaps_or_duplicates(api):
    _, n2, _, n4, _ = await paul_with_five_notifications(api)
    await mark(api, "paul", [n2, n4])
    for unread_only, expected_pages in [
        (False, [["n5", "n3"], ["n1", "n4"], ["n2"]]),  # the second page spans unread and read
        (True, [["n5", "n3"], ["n1"]]),
    ]:
        pages: list[tuple[list[str], bool, bool]] = []
        after = None
        for _ in expected_pages:
            variables = {"first": 2, "after": after, "unread": unread_only}
            page = (await api.gql(NOTIFICATIONS, variables, as_="paul"))["notifications"]
            edges, info = page["edges"], page["pageInfo"]
            assert (info["startCursor"], info["endCursor"]) == (
                edges[0]["cursor"],
                edges[-1]["cursor"],
            )
            texts = [edge["node"]["message"]["bodyText"] for edge in edges]
            pages.append((texts, info["hasPreviousPage"], info["hasNextPage"]))
            after = info["endCursor"]
        last = len(expected_pages) - 1
        assert pages == [(texts, n > 0, n < last) for n, texts in enumerate(expected_pages)]


async def test_a_notification_of_a_conversation_the_viewer_can_no_longer_read_is_not_listed(
    api, db
):
    company_conversation = await create(
        api, "alice", "COMPANY", ["bob"], company="bakery", text="about the bakery"
    )
    await create(api, "alice", "PRIVATE", ["bob"], text="just between us")
    assert await listed_texts(api, "bob") == ["just between us", "about the bakery"]

    # bob is no longer a client of bakery: he loses its company conversations.
    await update_user(
        db,
        api.http.app,
        uid(api, "bob"),
        {"$set": {"company_ids": [], "favorite_company_ids": []}},
    )
    assert await api.gql(READABLE, {"id": company_conversation}, as_="bob") == {
        "conversation": None
    }
    assert await listed_texts(api, "bob") == ["just between us"]


async def bob_loses_bakery_after_company_and_private_notifications(api, db) -> list[str]:
    """alice writes to bob privately ("private"), then in a bakery conversation ("c1".."c3");
    bob then stops being a client of bakery. Answers the ids of the bakery messages."""
    await create(api, "alice", "PRIVATE", ["bob"], text="private")
    company = await create(api, "alice", "COMPANY", ["bob"], company="bakery", text="c1")
    ids = [await first_message_id(db, company)]
    ids += [await send(api, "alice", company, text) for text in ("c2", "c3")]
    assert await listed_texts(api, "bob") == ["c3", "c2", "c1", "private"]
    await update_user(
        db, app_of(api), uid(api, "bob"), {"$set": {"company_ids": [], "favorite_company_ids": []}}
    )
    return ids


def decoded(cursor: str | None) -> str:
    return base64.urlsafe_b64decode(cursor or "").decode()


async def test_notifications_of_unreadable_conversations_leave_no_trace_in_pages_or_cursors(
    api, db
):
    # Issue 20: the list hid them, but its cursors carried their message ids (so their times)
    # and hasNextPage was true on a page that showed nothing.
    hidden_messages = await bob_loses_bakery_after_company_and_private_notifications(api, db)
    page = (await api.gql(NOTIFICATIONS, {"first": 1}, as_="bob"))["notifications"]
    assert [edge["node"]["message"]["bodyText"] for edge in page["edges"]] == ["private"]
    assert page["pageInfo"]["hasNextPage"] is False
    cursors = [page["pageInfo"]["endCursor"], *(edge["cursor"] for edge in page["edges"])]
    assert not [m for m in hidden_messages for c in cursors if m in decoded(c)]
    for unread in (False, True):
        assert await listed_texts(api, "bob", unread=unread) == ["private"]


async def test_mark_notifications_read_counts_only_notifications_the_viewer_may_read(api, db):
    # Issue 20: marking all read answered 4, counting the bakery ones bob can no longer see.
    hidden_messages = await bob_loses_bakery_after_company_and_private_notifications(api, db)
    hidden = [f"{m}:{uid(api, 'bob')}" for m in hidden_messages]
    assert await mark(api, "bob", hidden) == 0
    assert await mark(api, "bob", None) == 1
    # Back as a client of bakery, bob finds them as he left them: unread.
    await update_user(
        db,
        app_of(api),
        uid(api, "bob"),
        {"$set": {"company_ids": [api.ids["companies"]["bakery"]]}},
    )
    assert await listed_texts(api, "bob", unread=True) == ["c3", "c2", "c1"]


async def test_notifications_stored_without_their_company_get_it_when_an_app_starts(
    api, db, settings, aiohttp_client
):
    # Notifications written before they kept their conversation's company.
    hidden_messages = await bob_loses_bakery_after_company_and_private_notifications(api, db)
    await db.notifications.update_many({}, {"$unset": {"company_id": ""}})
    await db.recovery_state.delete_many({})  # as a database from before has no marker

    await aiohttp_client(init_app(settings))  # a process starting on this database

    async with asyncio.timeout(WAIT_SECONDS):
        # Polls the database another app writes to (no event to wait on from here).
        while await db.notifications.count_documents({"company_id": {"$exists": False}}):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert await listed_texts(api, "bob") == ["private"]
    stored = await db.notifications.find_one({"message_id": hidden_messages[0]})
    assert stored["company_id"] == api.ids["companies"]["bakery"]


async def test_notification_message_and_conversation_resolve(api, db):
    cid = await create(api, "bob", "PRIVATE", ["paul"], subject="Quarterly VAT", text="Due soon")
    message = await db.messages.find_one({"conversation_id": cid})
    data = await api.gql(
        """query { notifications(first: 1) { edges { node {
             id createdAt
             message { id body bodyText author { id } }
             conversation { id subject participants { id } }
           } } } }""",
        as_="paul",
    )
    (edge,) = data["notifications"]["edges"]
    node = edge["node"]
    assert datetime.fromisoformat(node.pop("createdAt")) == message["created_at"].replace(
        tzinfo=UTC
    )
    assert node == {
        "id": f"{message['_id']}:{uid(api, 'paul')}",
        "message": {
            "id": message["_id"],
            "body": "<p>Due soon</p>",
            "bodyText": "Due soon",
            "author": {"id": uid(api, "bob")},
        },
        "conversation": {
            "id": cid,
            "subject": "Quarterly VAT",
            "participants": [{"id": uid(api, "bob")}, {"id": uid(api, "paul")}],
        },
    }


# -- marking read ------------------------------------------------------------------------------


async def test_mark_notifications_read_marks_only_the_given_ids_and_answers_the_count(api):
    n1, n2, n3, n4, n5 = await paul_with_five_notifications(api)
    assert await mark(api, "paul", [n1, n3]) == 2
    nodes = await listed(api, "paul")
    assert {n["id"]: n["readAt"] is not None for n in nodes} == {
        n1: True,
        n2: False,
        n3: True,
        n4: False,
        n5: False,
    }


async def test_mark_notifications_read_ignores_ids_of_other_users(api):
    await create(api, "bob", "PRIVATE", ["paul", "carla"], text="to both")
    (carlas,) = [n["id"] for n in await listed(api, "carla")]
    (pauls,) = [n["id"] for n in await listed(api, "paul")]
    # Another user's notification id, a made-up one and a malformed one change nothing.
    fake = f"{ObjectId()}:{uid(api, 'paul')}"
    assert await mark(api, "paul", [carlas, fake, "not-an-id"]) == 0
    assert [n["readAt"] for n in await listed(api, "carla")] == [None]
    assert await mark(api, "dan", [carlas, pauls]) == 0
    assert [n["readAt"] for n in await listed(api, "carla") + await listed(api, "paul")] == [
        None,
        None,
    ]


async def test_mark_notifications_read_counts_already_read_ones_as_unchanged(api):
    n1, n2, *_ = await paul_with_five_notifications(api)
    assert await mark(api, "paul", [n1]) == 1
    assert await mark(api, "paul", [n1]) == 0
    assert await mark(api, "paul", [n1, n2]) == 1


async def test_mark_notifications_read_without_ids_marks_all_of_the_viewers(api):
    await paul_with_five_notifications(api)
    await create(api, "bob", "PRIVATE", ["carla"], text="for carla")
    assert await mark(api, "paul", None) == 5
    assert [n["readAt"] is not None for n in await listed(api, "paul")] == [True] * 5
    assert [n["readAt"] for n in await listed(api, "carla")] == [None]
    assert await mark(api, "paul", None) == 0


async def test_read_at_is_set_when_a_notification_is_marked_read(api):
    n1, *_ = await paul_with_five_notifications(api)
    assert [n["readAt"] for n in await listed(api, "paul") if n["id"] == n1] == [None]
    _, before_ms = millis_now()
    await mark(api, "paul", [n1])
    _, after_ms = millis_now()
    (read_at,) = [n["readAt"] for n in await listed(api, "paul") if n["id"] == n1]
    read_ms = round(datetime.fromisoformat(read_at).timestamp() * 1000)
    assert before_ms <= read_ms <= after_ms


# -- the outbox ------------------------------------------------------------------------------


async def test_complete_pending_fanouts_writes_exactly_the_missing_notifications(api, db):
    cid = await create(api, "bob", "COMPANY", ["paul", "carla"], company="bakery")
    message_id = await store_pending_message(db, api, cid, "paul", ["bob", "carla"], "crashed")
    # bob's notification was written (and read) before the process died; carla's was not.
    _, created_ms = millis_now(-60_000)
    await db.notifications.insert_one(
        {
            "_id": f"{message_id}:{uid(api, 'bob')}",
            "firm_id": api.ids["firms"]["acme"],
            "user_id": uid(api, "bob"),
            "conversation_id": cid,
            "message_id": message_id,
            "created_at": datetime.fromtimestamp(created_ms / 1000, UTC),
            "created_ms": created_ms,
            "unread": 0,
            "read_ms": created_ms,
        }
    )

    assert await notifications_service(api).complete_pending_fanouts() == 1

    assert await notified_users(db, message_id) == sorted([uid(api, "bob"), uid(api, "carla")])
    assert [n["message"]["bodyText"] for n in await listed(api, "carla", unread=True)] == [
        "crashed",
        "first",
    ]
    bobs = await db.notifications.find_one({"_id": f"{message_id}:{uid(api, 'bob')}"})
    assert (bobs["unread"], bobs["read_ms"]) == (0, created_ms)  # left as it was


async def test_a_recovered_message_is_not_unread_for_its_own_author(api, db):
    cid = await create(api, "bob", "COMPANY", ["paul"], company="bakery")
    await store_pending_message(db, api, cid, "paul", ["bob"], "crashed before the read mark")
    assert await notifications_service(api).complete_pending_fanouts() == 1
    # Sending reads the conversation up to the message, recovered or not.
    assert [await unread_count(api, u, cid) for u in ["paul", "bob"]] == [0, 1]


async def test_complete_pending_fanouts_is_idempotent(api, db):
    cid = await create(api, "bob", "PRIVATE", ["paul", "carla"])
    message_id = await store_pending_message(db, api, cid, "bob", ["paul", "carla"], "crashed")
    service = notifications_service(api)
    assert await service.complete_pending_fanouts() == 1
    (pauls,) = [n["id"] for n in await listed(api, "paul") if n["message"]["bodyText"] == "crashed"]
    assert await mark(api, "paul", [pauls]) == 1

    # As if the process had died after writing the notifications but before clearing the flag.
    await db.messages.update_one({"_id": message_id}, {"$set": {"fanout": "pending"}})
    assert await service.complete_pending_fanouts() == 1
    assert await service.complete_pending_fanouts() == 0

    assert await notified_users(db, message_id) == sorted([uid(api, "paul"), uid(api, "carla")])
    assert [(n["message"]["bodyText"], n["readAt"] is None) for n in await listed(api, "paul")] == [
        ("first", True),
        ("crashed", False),
    ]


async def test_complete_pending_fanouts_clears_the_outbox_flag(api, db):
    cid = await create(api, "bob", "PRIVATE", ["paul"])
    message_id = await store_pending_message(db, api, cid, "bob", ["paul"], "crashed")
    await notifications_service(api).complete_pending_fanouts()
    assert (await db.messages.find_one({"_id": message_id}))["fanout"] == "done"


async def test_complete_pending_fanouts_leaves_a_fanout_still_in_progress_alone(api, db):
    cid = await create(api, "bob", "PRIVATE", ["paul"])
    # Stored just now: its sender is still writing the notifications.
    message_id = await store_pending_message(db, api, cid, "bob", ["paul"], "in flight", age_ms=0)
    assert await notifications_service(api).complete_pending_fanouts() == 0
    assert await notified_users(db, message_id) == []
    assert (await db.messages.find_one({"_id": message_id}))["fanout"] == "pending"


async def test_a_freshly_started_app_completes_pending_fanouts_at_start_up(
    api, db, settings, aiohttp_client
):
    cid = await create(api, "bob", "PRIVATE", ["paul", "carla"])
    message_id = await store_pending_message(db, api, cid, "bob", ["paul", "carla"], "crashed")
    assert await notified_users(db, message_id) == []  # the running app's recovery ran before

    await aiohttp_client(init_app(settings))  # a second process starting on the same database

    async with asyncio.timeout(WAIT_SECONDS):
        # Polls the database another app writes to (no event to wait on from here).
        while (await db.messages.find_one({"_id": message_id}))["fanout"] != "done":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert await notified_users(db, message_id) == sorted([uid(api, "paul"), uid(api, "carla")])
    assert await listed_texts(api, "carla") == ["crashed", "first"]


# -- unread state ----------------------------------------------------------------------------


async def test_unread_count_counts_messages_after_the_read_mark_not_written_by_the_viewer(api):
    cid = await create(api, "bob", "COMPANY", ["paul"], company="bakery")
    assert [await unread_count(api, u, cid) for u in ["bob", "paul", "alice"]] == [0, 1, 1]
    await send(api, "paul", cid, "paul answers")  # sending moves paul's own mark
    assert [await unread_count(api, u, cid) for u in ["bob", "paul", "alice"]] == [1, 0, 2]
    await send(api, "bob", cid, "bob 2")
    await send(api, "bob", cid, "bob 3")
    assert [await unread_count(api, u, cid) for u in ["bob", "paul", "alice"]] == [0, 2, 4]


async def test_mark_conversation_read_moves_the_read_mark_to_the_newest_message(api):
    cid = await create(api, "bob", "PRIVATE", ["paul"])
    await send(api, "bob", cid, "second")
    marked = await api.gql(MARK_CONVERSATION, {"id": cid}, as_="paul")
    assert marked == {"markConversationRead": {"id": cid, "unreadCount": 0}}
    assert await unread_count(api, "paul", cid) == 0
    await send(api, "bob", cid, "third")
    assert await unread_count(api, "paul", cid) == 1


async def test_conversations_unread_only_lists_conversations_with_unread_messages(api):
    await create(api, "bob", "PRIVATE", ["paul"], subject="unread")
    opened = await create(api, "bob", "PRIVATE", ["paul"], subject="opened")
    await api.gql(MARK_CONVERSATION, {"id": opened}, as_="paul")
    own = await create(api, "paul", "PRIVATE", ["bob"], subject="own")
    inbox = (await api.gql(UNREAD_INBOX, as_="paul"))["conversations"]["edges"]
    assert [e["node"] for e in inbox] == [{"subject": "unread", "unreadCount": 1}]

    await send(api, "bob", own, "answer")
    inbox = (await api.gql(UNREAD_INBOX, as_="paul"))["conversations"]["edges"]
    assert [e["node"] for e in inbox] == [
        {"subject": "own", "unreadCount": 1},
        {"subject": "unread", "unreadCount": 1},
    ]


async def test_unread_count_leaves_out_numbers_no_message_has(api, db):
    # A reply whose write lost a race with its own retry on another process leaves its number
    # unused (`skipped_seqs`): readers must not wait for a message that does not exist.
    cid = await create(api, "bob", "COMPANY", ["paul"], company="bakery")
    await send(api, "bob", cid, "two")
    await db.conversations.update_one(
        {"_id": cid},
        {
            "$inc": {"message_count": 1, "staff_count": 1, "client_count": 1},
            "$push": {"skipped_seqs": 3, "skipped_staff": 3, "skipped_client": 3},
        },
    )
    await send(api, "bob", cid, "four")
    assert [await unread_count(api, u, cid) for u in ["bob", "paul", "alice"]] == [0, 3, 3]
    await api.gql(MARK_CONVERSATION, {"id": cid}, as_="paul")
    assert await unread_count(api, "paul", cid) == 0
