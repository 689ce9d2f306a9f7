"""Internal notes leave no trace for a client (SPEC §13): a client's answers, surface by surface,
are the same before and after a burst of notes; practitioners see them as activity.

Standard directory (`tests/factories.py`): practitioners alice (favorite bakery) and paul;
clients bob (bakery, favorite bakery: a participant makes the conversation client-visible) and
carla (bakery; given the bakery as favorite here, she reads through favorites). Real app over
HTTP and WebSocket.
"""

from __future__ import annotations

from typing import Any

from tests.conversation_helpers import create, send, set_favorites
from tests.subscription_helpers import connect, wait_for_subscribers

SEND = """mutation($input: SendMessageInput!) {
  sendMessage(input: $input) { id kind cursor bodyText } }"""
CLIENT_VIEW = """query($id: ID!) {
  conversations(first: 10) { edges { cursor node { id lastMessageAt unreadCount
    lastMessage { id bodyText kind } } } pageInfo { hasNextPage endCursor } }
  unread: conversations(first: 10, unreadOnly: true) { edges { cursor node { id } } }
  conversation(id: $id) {
    lastMessageAt unreadCount lastMessage { id }
    newest: messages(last: 2) { edges { cursor node { id bodyText kind } }
      pageInfo { hasPreviousPage hasNextPage startCursor endCursor } }
    oldest: messages(first: 2) { edges { cursor node { id bodyText kind } }
      pageInfo { hasPreviousPage hasNextPage startCursor endCursor } }
  }
  notifications(first: 20) { edges { cursor node { id message { bodyText } } } }
}"""
HISTORY = """query($id: ID!) {
  conversation(id: $id) { unreadCount messages(last: 20) { edges { node { bodyText kind } } } } }"""
INBOX = "{ conversations(first: 10) { edges { node { id lastMessage { bodyText } } } } }"
MESSAGE_ADDED = """subscription($c: ID!, $after: String) {
  messageAdded(conversationId: $c, after: $after) { bodyText kind } }"""
INBOX_UPDATED = "subscription { inboxUpdated { id lastMessage { bodyText } } }"
NOTIFICATION_ADDED = "subscription { notificationAdded { message { bodyText } } }"
NOTIFIED = "{ notifications(first: 20) { edges { node { message { bodyText kind } } } } }"


async def note(api: Any, as_: str, conversation_id: str, text: str) -> dict[str, Any]:
    data = {"conversationId": conversation_id, "body": f"<p>{text}</p>", "internal": True}
    return (await api.gql(SEND, {"input": data}, as_=as_))["sendMessage"]


async def two_conversations(api: Any, db: Any) -> tuple[str, str]:
    """`older` (alice with bob and paul, a message from bob) and `newer` after it; carla reads
    both through her favorite."""
    older = (await create(api, "alice", "COMPANY", ["bob", "paul"], company="bakery"))["id"]
    await send(api, "bob", older, "<p>from bob</p>")
    await send(api, "alice", older, "<p>from alice</p>")
    newer = (await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="New"))["id"]
    await set_favorites(db, api, "carla", ["bakery"])
    return older, newer


async def test_a_clients_answers_are_the_same_before_and_after_a_burst_of_notes(api, db):
    older, newer = await two_conversations(api, db)
    before = {u: await api.gql(CLIENT_VIEW, {"id": older}, as_=u) for u in ("bob", "carla")}
    assert before["bob"]["conversations"]["edges"][0]["node"]["id"] == newer

    for n in range(5):
        assert (await note(api, "alice", older, f"internal {n}"))["kind"] == "NOTE"

    after = {u: await api.gql(CLIENT_VIEW, {"id": older}, as_=u) for u in ("bob", "carla")}
    assert after == before
    # The practitioners see them: history, unread, order, notifications (participants only).
    paul = (await api.gql(HISTORY, {"id": older}, as_="paul"))["conversation"]
    assert [e["node"]["kind"] for e in paul["messages"]["edges"]][-5:] == ["NOTE"] * 5
    assert paul["unreadCount"] == 3 + 5  # never opened: three messages and the notes
    paul_inbox = (await api.gql(INBOX, as_="paul"))["conversations"]["edges"]
    assert paul_inbox[0]["node"]["id"] == older  # moved up by the notes
    notified = (await api.gql(NOTIFIED, as_="paul"))["notifications"]["edges"]
    assert [e["node"]["message"]["kind"] for e in notified].count("NOTE") == 5


async def test_a_client_reply_after_notes_reads_like_a_conversation_without_them(api, db):
    older, _ = await two_conversations(api, db)
    await note(api, "alice", older, "internal")
    await send(api, "alice", older, "<p>visible</p>")
    bob = (await api.gql(HISTORY, {"id": older}, as_="bob"))["conversation"]
    assert [e["node"]["bodyText"] for e in bob["messages"]["edges"]] == [
        "Hello",
        "from bob",
        "from alice",
        "visible",
    ]
    assert bob["unreadCount"] == 2  # "from alice" and "visible": the note never counted
    await note(api, "paul", older, "another")
    assert (await api.gql(HISTORY, {"id": older}, as_="bob"))["conversation"]["unreadCount"] == 2


async def test_clients_never_receive_a_note_live_nor_in_replay_nor_in_their_inbox(api, db):
    older, _ = await two_conversations(api, db)
    sent = await api.gql(SEND, {"input": {"conversationId": older, "body": "x"}}, as_="alice")
    cursor_before = sent["sendMessage"]["cursor"]
    async with (
        await connect(api, "bob") as live_socket,
        await connect(api, "bob") as inbox_socket,
        await connect(api, "bob") as notified_socket,
        await connect(api, "paul") as staff_socket,
    ):
        live = await live_socket.subscribe(MESSAGE_ADDED, {"c": older})
        inbox = await inbox_socket.subscribe(INBOX_UPDATED)
        notified = await notified_socket.subscribe(NOTIFICATION_ADDED)
        staff = await staff_socket.subscribe(MESSAGE_ADDED, {"c": older})
        await wait_for_subscribers(api, 4)
        await note(api, "alice", older, "internal")
        await send(api, "alice", older, "<p>visible</p>")
        # The first thing each client stream shows is the message, never the note.
        assert await live_socket.next_data(live) == {
            "messageAdded": {"bodyText": "visible", "kind": "MESSAGE"}
        }
        assert await inbox_socket.next_data(inbox) == {
            "inboxUpdated": {"id": older, "lastMessage": {"bodyText": "visible"}}
        }
        assert await notified_socket.next_data(notified) == {
            "notificationAdded": {"message": {"bodyText": "visible"}}
        }
        assert await staff_socket.next_data(staff) == {
            "messageAdded": {"bodyText": "internal", "kind": "NOTE"}
        }
        assert await staff_socket.next_data(staff) == {
            "messageAdded": {"bodyText": "visible", "kind": "MESSAGE"}
        }
        # Replay after a cursor taken before the note: the message only.
        await live_socket.complete(live)
        replay = await live_socket.subscribe(MESSAGE_ADDED, {"c": older, "after": cursor_before})
        assert await live_socket.next_data(replay) == {
            "messageAdded": {"bodyText": "visible", "kind": "MESSAGE"}
        }
        await staff_socket.complete(staff)
        staff_replay = await staff_socket.subscribe(
            MESSAGE_ADDED, {"c": older, "after": cursor_before}
        )
        assert await staff_socket.next_data(staff_replay) == {
            "messageAdded": {"bodyText": "internal", "kind": "NOTE"}
        }


async def test_a_client_may_not_post_a_note_and_nothing_is_stored(api, db):
    older, _ = await two_conversations(api, db)
    count = await db.messages.count_documents({"conversation_id": older})
    data = {"conversationId": older, "body": "<p>sneaky</p>", "internal": True}
    assert await api.error_code(SEND, {"input": data}, as_="bob") == "FORBIDDEN"
    assert await db.messages.count_documents({"conversation_id": older}) == count


async def test_a_note_notifies_practitioner_participants_only(api, db):
    older, _ = await two_conversations(api, db)
    before = (await api.gql(NOTIFIED, as_="bob"))["notifications"]["edges"]
    await note(api, "paul", older, "for the team")
    assert (await api.gql(NOTIFIED, as_="bob"))["notifications"]["edges"] == before
    alice = (await api.gql(NOTIFIED, as_="alice"))["notifications"]["edges"]
    assert alice[0]["node"]["message"] == {"bodyText": "for the team", "kind": "NOTE"}
