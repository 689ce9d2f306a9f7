"""Editing and deleting messages (SPEC §14), over real HTTP against the embedded server.

The standard directory (`tests/factories.py`): alice is a practitioner with bakery in her
favorites, bob a client of bakery (favorite bakery), carla a client of bakery, olga and oscar of
another firm.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.database import Db
from graphql_api.settings import Settings
from tests.conftest import Api
from tests.conversation_helpers import MARK_READ, create, send, user_id
from tests.documents import DELETE_MESSAGE, EDIT_MESSAGE
from tests.upload_helpers import fetch, uploaded

HISTORY = """
query($id: ID!) { conversation(id: $id) {
  unreadCount
  lastMessage { id body deletedAt attachments { id } }
  messages { edges { node {
    id body bodyText editedAt deletedAt deletedBy { id } revisions { body editedAt }
    attachments { id url }
  } } }
} }
"""
NOTIFICATIONS = (
    "{ notifications { edges { node { message { id body bodyText attachments { id } } } } } }"
)
SUMMARY = "{ unreadSummary { conversations messages notifications } }"


async def conversation_with_reply(api: Api, body: str = "<p>Tax return attached</p>") -> tuple:
    """alice's bakery conversation with bob, and alice's reply in it (ids)."""
    conversation = await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    message = await send(api, "alice", conversation["id"], body)
    return conversation["id"], message["id"]


async def history(api: Api, as_: str, conversation_id: str) -> list[dict[str, Any]]:
    data = await api.gql(HISTORY, {"id": conversation_id}, as_=as_)
    return [edge["node"] for edge in data["conversation"]["messages"]["edges"]]


async def message_in_history(api: Api, as_: str, conversation_id: str, message_id: str) -> dict:
    (found,) = [m for m in await history(api, as_, conversation_id) if m["id"] == message_id]
    return found


def code_of(body: dict[str, Any]) -> str:
    assert body["data"] is None, body
    (error,) = body["errors"]
    return error["extensions"]["code"]


# -- editing -------------------------------------------------------------------------------------


async def test_an_edit_keeps_every_earlier_version_for_readers(api: Api):
    conversation_id, message_id = await conversation_with_reply(api, "<p>Frist draft</p>")
    await api.gql(EDIT_MESSAGE, {"id": message_id, "body": "<p>First draft</p>"}, as_="alice")
    edited = (await api.gql(EDIT_MESSAGE, {"id": message_id, "body": "<p>Final</p>"}, as_="alice"))[
        "editMessage"
    ]
    assert edited["body"] == "<p>Final</p>" and edited["editedAt"] is not None
    seen_by_bob = await message_in_history(api, "bob", conversation_id, message_id)
    assert seen_by_bob["body"] == "<p>Final</p>"
    assert [r["body"] for r in seen_by_bob["revisions"]] == [
        "<p>Frist draft</p>",
        "<p>First draft</p>",
    ]
    first, second = seen_by_bob["revisions"]
    assert first["editedAt"] <= second["editedAt"] <= seen_by_bob["editedAt"]


async def test_an_edit_is_sanitized_like_a_new_message(api: Api):
    _, message_id = await conversation_with_reply(api)
    hostile = '<p onclick="steal()">Hi<script>alert(1)</script></p>'
    edited = (await api.gql(EDIT_MESSAGE, {"id": message_id, "body": hostile}, as_="alice"))[
        "editMessage"
    ]
    assert edited["body"] == "<p>Hi</p>"


async def assert_unchanged(api: Api, conversation_id: str, message_id: str, body: str) -> None:
    stored = await message_in_history(api, "alice", conversation_id, message_id)
    assert (stored["body"], stored["editedAt"], stored["revisions"]) == (body, None, [])


async def test_only_the_author_edits_a_message(api: Api):
    conversation_id, message_id = await conversation_with_reply(api)
    body = await api.raw(EDIT_MESSAGE, {"id": message_id, "body": "<p>Mine now</p>"}, as_="bob")
    assert code_of(body) == "FORBIDDEN"
    await assert_unchanged(api, conversation_id, message_id, "<p>Tax return attached</p>")


async def test_an_empty_edit_is_refused(api: Api):
    conversation_id, message_id = await conversation_with_reply(api)
    body = await api.raw(EDIT_MESSAGE, {"id": message_id, "body": "<p> <br></p>"}, as_="alice")
    assert code_of(body) == "BAD_USER_INPUT"
    await assert_unchanged(api, conversation_id, message_id, "<p>Tax return attached</p>")


@pytest.mark.parametrize("who", ["olga", "carla", "paul"])
async def test_a_message_the_viewer_cannot_read_answers_not_found(api: Api, who: str):
    # olga: another firm; carla: a client of bakery, not a participant, no favorite; paul: a
    # practitioner without bakery in his favorites.
    conversation_id, message_id = await conversation_with_reply(api)
    for mutation, variables in [
        (EDIT_MESSAGE, {"id": message_id, "body": "<p>x</p>"}),
        (DELETE_MESSAGE, {"id": message_id}),
    ]:
        assert code_of(await api.raw(mutation, variables, as_=who)) == "NOT_FOUND"
    await assert_unchanged(api, conversation_id, message_id, "<p>Tax return attached</p>")


@pytest.mark.parametrize("message_id", ["nope", "0" * 24, "65f000000000000000000000"])
async def test_a_malformed_or_unknown_message_id_answers_not_found(api: Api, message_id: str):
    body = await api.raw(EDIT_MESSAGE, {"id": message_id, "body": "<p>x</p>"}, as_="alice")
    assert code_of(body) == "NOT_FOUND"


@pytest.fixture
async def short_window_api(aiohttp_client: Any, settings: Settings, ids) -> Api:
    quick = settings.model_copy(update={"edit_window_seconds": 1.0})
    return Api(http=await aiohttp_client(init_app(quick)), tokens=TokenService(quick), ids=ids)


async def test_edits_and_deletions_by_the_author_end_with_the_window(short_window_api: Api):
    api = short_window_api
    conversation_id, message_id = await conversation_with_reply(api)
    bobs = await send(api, "bob", conversation_id, "<p>Wrong file</p>")
    await asyncio.sleep(1.2)  # past the 1-second window of this app
    body = await api.raw(EDIT_MESSAGE, {"id": message_id, "body": "<p>Late</p>"}, as_="alice")
    assert code_of(body) == "FORBIDDEN"
    assert code_of(await api.raw(DELETE_MESSAGE, {"id": bobs["id"]}, as_="bob")) == "FORBIDDEN"
    await assert_unchanged(api, conversation_id, message_id, "<p>Tax return attached</p>")
    # A practitioner who may read the conversation still withdraws it (a file sent wrongly).
    deleted = (await api.gql(DELETE_MESSAGE, {"id": bobs["id"]}, as_="alice"))["deleteMessage"]
    assert deleted["deletedBy"] == {"id": user_id(api, "alice")}


# -- deleting ------------------------------------------------------------------------------------


async def test_a_deleted_message_is_empty_on_every_surface(api: Api, db: Db):
    conversation = await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    attachment = await uploaded(api, "alice", b"secret payroll", filename="payroll.pdf")
    sent = await api.gql(
        """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
             id attachments { id url } } }""",
        {
            "i": {
                "conversationId": conversation["id"],
                "body": "<p>Payroll</p>",
                "attachmentIds": [attachment["id"]],
            }
        },
        as_="alice",
    )
    message = sent["sendMessage"]
    signed_url = (await message_in_history(api, "bob", conversation["id"], message["id"]))[
        "attachments"
    ][0]["url"]
    response, data = await fetch(api, signed_url)
    assert (response.status, data) == (200, b"secret payroll")

    deleted = (await api.gql(DELETE_MESSAGE, {"id": message["id"]}, as_="alice"))["deleteMessage"]
    assert deleted["body"] == deleted["bodyText"] == ""
    assert deleted["attachments"] == [] and deleted["deletedAt"] is not None
    assert deleted["deletedBy"] == {"id": user_id(api, "alice")}

    for viewer in ("alice", "bob"):
        shown = await message_in_history(api, viewer, conversation["id"], message["id"])
        assert (shown["body"], shown["bodyText"], shown["attachments"]) == ("", "", [])
        assert shown["deletedBy"] == {"id": user_id(api, "alice")}
        last = (await api.gql(HISTORY, {"id": conversation["id"]}, as_=viewer))["conversation"]
        assert last["lastMessage"]["id"] == message["id"]
        assert (last["lastMessage"]["body"], last["lastMessage"]["attachments"]) == ("", [])
        response, _ = await fetch(api, f"/attachments/{attachment['id']}", viewer)
        assert response.status == 404
    response, _ = await fetch(api, signed_url)
    assert response.status == 404
    previews = (await api.gql(NOTIFICATIONS, as_="bob"))["notifications"]["edges"]
    preview = next(
        e["node"]["message"] for e in previews if e["node"]["message"]["id"] == message["id"]
    )
    assert preview == {"id": message["id"], "body": "", "bodyText": "", "attachments": []}

    retained = await db.retained_messages.find_one({"_id": message["id"]})
    assert retained is not None
    assert (retained["body"], retained["attachment_ids"]) == ("<p>Payroll</p>", [attachment["id"]])
    assert retained["deleted_by"] == user_id(api, "alice")


async def test_deleting_keeps_the_edits_only_for_the_retained_record(api: Api, db: Db):
    _, message_id = await conversation_with_reply(api, "<p>v1</p>")
    await api.gql(EDIT_MESSAGE, {"id": message_id, "body": "<p>v2</p>"}, as_="alice")
    deleted = (await api.gql(DELETE_MESSAGE, {"id": message_id}, as_="alice"))["deleteMessage"]
    assert deleted["revisions"] == []
    body = await api.raw(EDIT_MESSAGE, {"id": message_id, "body": "<p>back</p>"}, as_="alice")
    assert code_of(body) == "BAD_USER_INPUT"
    retained = await db.retained_messages.find_one({"_id": message_id})
    assert retained["body"] == "<p>v2</p>"
    assert [r["body"] for r in retained["revisions"]] == ["<p>v1</p>"]


async def test_a_client_deletes_only_its_own_messages(api: Api):
    conversation_id, message_id = await conversation_with_reply(api)
    assert code_of(await api.raw(DELETE_MESSAGE, {"id": message_id}, as_="bob")) == "FORBIDDEN"
    await assert_unchanged(api, conversation_id, message_id, "<p>Tax return attached</p>")
    bobs = await send(api, "bob", conversation_id, "<p>Oops</p>")
    deleted = (await api.gql(DELETE_MESSAGE, {"id": bobs["id"]}, as_="bob"))["deleteMessage"]
    assert deleted["deletedBy"] == {"id": user_id(api, "bob")}


async def test_a_deleted_unread_message_stops_counting(api: Api):
    conversation_id, _ = await conversation_with_reply(api)
    second = await send(api, "alice", conversation_id, "<p>Wrong client!</p>")
    counted = (await api.gql(HISTORY, {"id": conversation_id}, as_="bob"))["conversation"]
    assert counted["unreadCount"] == 3
    assert (await api.gql(SUMMARY, as_="bob"))["unreadSummary"] == {
        "conversations": 1,
        "messages": 3,
        "notifications": 3,
    }
    await api.gql(DELETE_MESSAGE, {"id": second["id"]}, as_="alice")
    after = (await api.gql(HISTORY, {"id": conversation_id}, as_="bob"))["conversation"]
    assert after["unreadCount"] == 2
    # Its notification stops counting too: the badges agree with the list.
    assert (await api.gql(SUMMARY, as_="bob"))["unreadSummary"] == {
        "conversations": 1,
        "messages": 2,
        "notifications": 2,
    }
    await api.gql(MARK_READ, {"id": conversation_id}, as_="bob")
    assert (await api.gql(SUMMARY, as_="bob"))["unreadSummary"] == {
        "conversations": 0,
        "messages": 0,
        "notifications": 0,
    }
