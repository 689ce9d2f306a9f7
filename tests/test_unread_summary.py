"""`unreadSummary` (SPEC §14), the badges of a frontend, after every kind of change: a message, an
internal note, a read, a deletion, a removal from the conversation, a favorites change.

The standard directory (`tests/factories.py`): practitioners alice (favorite bakery) and paul (no
favorites); clients bob (bakery; favorite bakery) and carla (bakery).
"""

from __future__ import annotations

from typing import Any

from tests.conversation_helpers import (
    ADD_FAVORITE,
    MARK_READ,
    REMOVE_FAVORITE,
    company_id,
    create,
    send,
    user_id,
)

SUMMARY = "{ unreadSummary { conversations messages notifications } }"
NOTE = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
DELETE = "mutation($m: ID!) { deleteMessage(messageId: $m) { id } }"
REMOVE = """mutation($c: ID!, $u: ID!) { removeParticipant(conversationId: $c, userId: $u) {
  id } }"""


async def summary(api: Any, as_: str) -> tuple[int, int, int]:
    found = (await api.gql(SUMMARY, as_=as_))["unreadSummary"]
    return found["conversations"], found["messages"], found["notifications"]


async def note(api: Any, as_: str, conversation_id: str, text: str) -> str:
    data = {"conversationId": conversation_id, "body": f"<p>{text}</p>", "internal": True}
    return (await api.gql(NOTE, {"i": data}, as_=as_))["sendMessage"]["id"]


async def test_the_badges_follow_messages_notes_reads_deletions_removals_and_favorites(api):
    conversation = (await create(api, "alice", "COMPANY", ["bob", "carla"], company="bakery"))["id"]
    reply = await send(api, "alice", conversation, "<p>Second</p>")
    assert await summary(api, "bob") == (1, 2, 2)

    # A note counts for practitioners only; a client's badges do not move.
    await note(api, "alice", conversation, "internal")
    assert await summary(api, "bob") == (1, 2, 2)
    assert await summary(api, "paul") == (0, 0, 0)  # not a participant, no favorite yet

    # A favorite makes the conversation readable: its messages and the note are unread.
    await api.gql(ADD_FAVORITE, {"id": company_id(api, "bakery")}, as_="paul")
    assert await summary(api, "paul") == (1, 3, 0)
    await api.gql(REMOVE_FAVORITE, {"id": company_id(api, "bakery")}, as_="paul")
    assert await summary(api, "paul") == (0, 0, 0)

    # A deletion stops counting, and so does its notification.
    await api.gql(DELETE, {"m": reply["id"]}, as_="alice")
    assert await summary(api, "bob") == (1, 1, 1)

    await api.gql(MARK_READ, {"id": conversation}, as_="bob")
    assert await summary(api, "bob") == (0, 0, 0)
    await send(api, "alice", conversation, "<p>Third</p>")
    assert await summary(api, "carla") == (1, 2, 2)

    # Removed from the conversation: nothing of it counts any more.
    await api.gql(REMOVE, {"c": conversation, "u": user_id(api, "carla")}, as_="alice")
    assert await summary(api, "carla") == (0, 0, 0)
