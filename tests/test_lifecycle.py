"""A conversation's life after creation (SPEC §13): participants, client visibility, status,
assignee, archive, mute, rename, and the timeline events that record them.

Standard directory (`tests/factories.py`): practitioners alice (favorite bakery) and paul;
clients bob (bakery, favorite bakery), carla (bakery) and dan (garage); olga and oscar are
another firm's. Real app over HTTP and WebSocket.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from tests.conversation_helpers import create, send, set_favorites, user_id
from tests.subscription_helpers import connect, wait_for_subscribers
from tests.ws_client import complete_message, error_message

FIELDS = "id subject status archived muted assignee { name } participants { name }"
ADD = f"""mutation($c: ID!, $u: [ID!]!) {{ addParticipants(conversationId: $c, userIds: $u)
  {{ {FIELDS} }} }}"""
REMOVE = f"""mutation($c: ID!, $u: ID!) {{ removeParticipant(conversationId: $c, userId: $u)
  {{ {FIELDS} }} }}"""
RENAME = f"""mutation($c: ID!, $s: String!) {{ renameConversation(conversationId: $c, subject: $s)
  {{ {FIELDS} }} }}"""
STATUS = f"""mutation($c: ID!, $s: ConversationStatus!) {{
  setConversationStatus(conversationId: $c, status: $s) {{ {FIELDS} }} }}"""
ASSIGN = f"""mutation($c: ID!, $a: ID) {{ assignConversation(conversationId: $c, assigneeId: $a)
  {{ {FIELDS} }} }}"""
ARCHIVE = f"""mutation($c: ID!, $a: Boolean!) {{
  archiveConversation(conversationId: $c, archived: $a) {{ {FIELDS} }} }}"""
MUTE = f"""mutation($c: ID!, $m: Boolean!) {{ muteConversation(conversationId: $c, muted: $m)
  {{ {FIELDS} }} }}"""
READ = """query($c: ID!) { conversation(id: $c) { unreadCount clientVisible
  messages(last: 20) { edges { node { kind bodyText author { name } event {
    actor { name } addedUsers { name } removedUsers { name } oldSubject newSubject status
    assignee { name } } } } } } }"""
INBOX = """query($status: ConversationStatus, $assignee: ID, $archived: Boolean) {
  conversations(first: 20, status: $status, assigneeId: $assignee, archived: $archived) {
    edges { node { id } } } }"""
NOTIFIED = "{ notifications(first: 50) { edges { node { message { bodyText } } } } }"
MESSAGE_ADDED = """subscription($c: ID!) { messageAdded(conversationId: $c) { kind bodyText } }"""
NOT_FOUND = ("conversation not found", "NOT_FOUND")


def ids(api: Any, *keys: str) -> list[str]:
    return [user_id(api, key) for key in keys]


async def bakery(api: Any, participants: list[str]) -> str:
    return (await create(api, "alice", "COMPANY", participants, company="bakery"))["id"]


async def timeline(api: Any, as_: str, cid: str) -> list[dict[str, Any]]:
    edges = (await api.gql(READ, {"c": cid}, as_=as_))["conversation"]["messages"]["edges"]
    return [e["node"] for e in edges]


async def inbox(api: Any, as_: str, **variables: Any) -> list[str]:
    data = await api.gql(INBOX, variables, as_=as_)
    return [e["node"]["id"] for e in data["conversations"]["edges"]]


async def notified(api: Any, as_: str) -> list[str]:
    edges = (await api.gql(NOTIFIED, as_=as_))["notifications"]["edges"]
    return [e["node"]["message"]["bodyText"] for e in edges]


# -- participants -------------------------------------------------------------------------


async def test_an_added_participant_reads_the_history_unread_from_now_and_is_notified(api):
    cid = await bakery(api, ["bob"])
    await send(api, "bob", cid, "<p>before</p>")
    added = await api.gql(ADD, {"c": cid, "u": ids(api, "carla")}, as_="alice")
    assert [p["name"] for p in added["addParticipants"]["participants"]] == [
        "Alice Roy",
        "Bob Martin",
        "Carla Martin",
    ]
    read = await timeline(api, "carla", cid)
    assert [m["bodyText"] for m in read if m["kind"] == "MESSAGE"] == ["Hello", "before"]
    assert read[-1]["kind"] == "EVENT"
    assert read[-1]["event"]["actor"] == {"name": "Alice Roy"}
    assert read[-1]["event"]["addedUsers"] == [{"name": "Carla Martin"}]
    assert (await api.gql(READ, {"c": cid}, as_="carla"))["conversation"]["unreadCount"] == 0
    assert await notified(api, "carla") == []  # events never notify
    await send(api, "bob", cid, "<p>after</p>")
    assert (await api.gql(READ, {"c": cid}, as_="carla"))["conversation"]["unreadCount"] == 1
    assert await notified(api, "carla") == ["after"]


async def test_bad_additions_get_coded_errors_and_change_nothing(api, db):
    cid = await bakery(api, ["bob"])
    before = await db.conversations.find_one({"_id": cid})
    cases = {
        "another firm's user": (ids(api, "olga"), "NOT_FOUND"),
        "an ineligible client": (ids(api, "dan"), "NOT_FOUND"),
        "a participant already": (ids(api, "bob"), "BAD_USER_INPUT"),
        "a repeated user": (ids(api, "carla", "carla"), "BAD_USER_INPUT"),
        "more than 100": ([str(ObjectId()) for _ in range(99)], "BAD_USER_INPUT"),
        "nobody": ([], "BAD_USER_INPUT"),
    }
    for label, (users, code) in cases.items():
        assert await api.error_code(ADD, {"c": cid, "u": users}, as_="alice") == code, label
    unknown = {"c": str(ObjectId()), "u": ids(api, "carla")}
    assert await api.error_code(ADD, unknown, as_="alice") == "NOT_FOUND"
    assert await api.error_code(ADD, {"c": cid, "u": ids(api, "carla")}, as_="oscar") == (
        "NOT_FOUND"
    )
    assert await db.conversations.find_one({"_id": cid}) == before


async def test_a_client_may_leave_but_not_remove_someone_else(api):
    cid = await bakery(api, ["bob", "carla", "paul"])
    remove_paul = {"c": cid, "u": user_id(api, "paul")}
    assert await api.error_code(REMOVE, remove_paul, as_="bob") == "FORBIDDEN"
    await api.gql(REMOVE, {"c": cid, "u": user_id(api, "carla")}, as_="carla")
    assert await api.gql(READ, {"c": cid}, as_="carla") == {"conversation": None}
    removed = await api.gql(REMOVE, remove_paul, as_="alice")
    assert [p["name"] for p in removed["removeParticipant"]["participants"]] == [
        "Alice Roy",
        "Bob Martin",
    ]
    events = [m["event"] for m in await timeline(api, "bob", cid) if m["kind"] == "EVENT"]
    assert [e["removedUsers"] for e in events] == [
        [{"name": "Carla Martin"}],
        [{"name": "Paul Girard"}],
    ]


async def test_removing_the_last_client_who_made_it_visible_revokes_favorite_readers_live(api, db):
    cid = await bakery(api, ["bob", "paul"])
    await set_favorites(db, api, "carla", ["bakery"])
    await send(api, "alice", cid, "<p>for bob</p>")
    assert (await api.gql(READ, {"c": cid}, as_="carla"))["conversation"]["clientVisible"]
    assert "for bob" in await notified(api, "bob")
    async with await connect(api, "carla") as carla, await connect(api, "bob") as bob:
        watching = await carla.subscribe(MESSAGE_ADDED, {"c": cid})
        bob_watching = await bob.subscribe(MESSAGE_ADDED, {"c": cid})
        await wait_for_subscribers(api, 2)
        await api.gql(REMOVE, {"c": cid, "u": user_id(api, "bob")}, as_="alice")
        # Told why, at once, and nothing more: not even the event of the removal.
        assert await carla.receive() == error_message(watching, *NOT_FOUND)
        assert await carla.receive() == complete_message(watching)
        assert await bob.receive() == error_message(bob_watching, *NOT_FOUND)
        assert await bob.receive() == complete_message(bob_watching)
    assert await api.gql(READ, {"c": cid}, as_="carla") == {"conversation": None}
    assert await api.gql(READ, {"c": cid}, as_="bob") == {"conversation": None}
    assert cid not in await inbox(api, "carla")
    assert await notified(api, "bob") == []  # its notifications of it are gone
    # Paul, a practitioner participant, reads on; adding bob back makes it visible again.
    await api.gql(ADD, {"c": cid, "u": ids(api, "bob")}, as_="paul")
    assert (await api.gql(READ, {"c": cid}, as_="carla"))["conversation"]["clientVisible"]


# -- status, assignee, rename ---------------------------------------------------------------


async def test_status_is_set_by_practitioners_and_a_clients_reply_reopens(api):
    cid = await bakery(api, ["bob"])
    other = await bakery(api, ["bob"])
    assert await api.error_code(STATUS, {"c": cid, "s": "RESOLVED"}, as_="bob") == "FORBIDDEN"
    done = await api.gql(STATUS, {"c": cid, "s": "RESOLVED"}, as_="alice")
    assert done["setConversationStatus"]["status"] == "RESOLVED"
    assert await inbox(api, "alice", status="RESOLVED") == [cid]
    assert await inbox(api, "alice", status="OPEN") == [other]
    await send(api, "alice", cid, "<p>a practitioner's message changes nothing</p>")
    assert await inbox(api, "alice", status="RESOLVED") == [cid]
    await send(api, "bob", cid, "<p>one more question</p>")
    assert set(await inbox(api, "alice", status="OPEN")) == {cid, other}
    statuses = [m["event"]["status"] for m in await timeline(api, "bob", cid) if m["event"]]
    assert statuses == ["RESOLVED", "OPEN"]
    # bob's reply read everything before it; the reopening event after it does not count.
    assert (await api.gql(READ, {"c": cid}, as_="bob"))["conversation"]["unreadCount"] == 0


async def test_assigning_adds_the_assignee_and_filters_the_inbox(api):
    cid = await bakery(api, ["bob"])
    paul = user_id(api, "paul")
    assert await api.error_code(ASSIGN, {"c": cid, "a": paul}, as_="bob") == "FORBIDDEN"
    assert await api.error_code(ASSIGN, {"c": cid, "a": user_id(api, "carla")}, as_="alice") == (
        "NOT_FOUND"
    )
    assert await api.error_code(ASSIGN, {"c": cid, "a": user_id(api, "olga")}, as_="alice") == (
        "NOT_FOUND"
    )
    assigned = (await api.gql(ASSIGN, {"c": cid, "a": paul}, as_="alice"))["assignConversation"]
    assert assigned["assignee"] == {"name": "Paul Girard"}
    assert {"name": "Paul Girard"} in assigned["participants"]
    assert await inbox(api, "paul", assignee=paul) == [cid]
    cleared = (await api.gql(ASSIGN, {"c": cid, "a": None}, as_="paul"))["assignConversation"]
    assert cleared["assignee"] is None
    assert await inbox(api, "paul", assignee=paul) == []
    events = [m["event"] for m in await timeline(api, "bob", cid) if m["event"]]
    assert [e["assignee"] for e in events] == [{"name": "Paul Girard"}, None]


async def test_any_reader_renames_with_the_subject_rules(api):
    cid = await bakery(api, ["bob"])
    assert await api.error_code(RENAME, {"c": cid, "s": "   "}, as_="bob") == "BAD_USER_INPUT"
    renamed = await api.gql(RENAME, {"c": cid, "s": "  Invoices 2026 "}, as_="bob")
    assert renamed["renameConversation"]["subject"] == "Invoices 2026"
    (event,) = [m["event"] for m in await timeline(api, "alice", cid) if m["event"]]
    assert (event["oldSubject"], event["newSubject"]) == ("Subject", "Invoices 2026")
    assert event["actor"] == {"name": "Bob Martin"}


async def test_timeline_events_reach_every_reader_live_and_never_count(api):
    cid = await bakery(api, ["bob"])
    async with await connect(api, "bob") as bob:
        watching = await bob.subscribe(MESSAGE_ADDED, {"c": cid})
        await wait_for_subscribers(api, 1)
        await api.gql(RENAME, {"c": cid, "s": "Renamed"}, as_="alice")
        assert await bob.next_data(watching) == {"messageAdded": {"kind": "EVENT", "bodyText": ""}}
    assert (await api.gql(READ, {"c": cid}, as_="bob"))["conversation"]["unreadCount"] == 1
    assert await notified(api, "bob") == ["Hello"]


# -- archive and mute --------------------------------------------------------------------------


async def test_archive_is_per_viewer_until_a_message_it_may_read_arrives(api):
    cid = await bakery(api, ["bob", "paul"])
    archived = await api.gql(ARCHIVE, {"c": cid, "a": True}, as_="bob")
    assert archived["archiveConversation"]["archived"] is True
    await api.gql(ARCHIVE, {"c": cid, "a": True}, as_="paul")
    assert cid not in await inbox(api, "bob")
    assert await inbox(api, "bob", archived=True) == [cid]
    assert cid in await inbox(api, "alice")  # alice did not archive it
    # A note brings it back for practitioners only; a message for everyone.
    data = {"conversationId": cid, "body": "<p>internal</p>", "internal": True}
    await api.gql(
        "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
        {"i": data},
        as_="alice",
    )
    assert cid in await inbox(api, "paul")
    assert cid not in await inbox(api, "bob")
    await send(api, "alice", cid, "<p>visible</p>")
    assert cid in await inbox(api, "bob")


async def test_a_muted_viewer_gets_no_notification_but_unread_counts_still_move(api):
    cid = await bakery(api, ["bob", "paul"])
    muted = await api.gql(MUTE, {"c": cid, "m": True}, as_="paul")
    assert muted["muteConversation"]["muted"] is True
    await send(api, "bob", cid, "<p>quiet</p>")
    assert await notified(api, "paul") == ["Hello"]
    assert (await api.gql(READ, {"c": cid}, as_="paul"))["conversation"]["unreadCount"] == 2
    await api.gql(MUTE, {"c": cid, "m": False}, as_="paul")
    await send(api, "bob", cid, "<p>loud</p>")
    assert await notified(api, "paul") == ["loud", "Hello"]
