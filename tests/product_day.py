"""A working day of product queries through the API: what the session checks look at.

Sends (with and without retry keys, and their replays), inbox pages with every filter,
notification pages, history and read marks. `tests/test_query_plans.py` and
`tests/test_sharding.py` run it so that their checks are meaningful when run alone; in a whole
suite run they also see every other test's queries.
"""

from __future__ import annotations

from tests.conftest import Api
from tests.conversation_helpers import CONVERSATIONS, create, send

NOTIFICATIONS = """query($after: String, $unread: Boolean) {
  notifications(first: 2, after: $after, unreadOnly: $unread) {
    edges { cursor node { id message { id } } } pageInfo { endCursor }
  }
}"""
HISTORY = """query($id: ID!, $before: String) { conversation(id: $id) {
  messages(last: 2, before: $before) { edges { cursor node { id } } }
  lastMessage { id }
} }"""
MARK_NOTIFICATIONS = "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) }"
MARK_CONVERSATION = "mutation($id: ID!) { markConversationRead(conversationId: $id) { id } }"


async def working_day(api: Api) -> None:
    company = await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="A")
    private = await create(api, "bob", "PRIVATE", ["alice"], client_message_id="new-1")
    assert await create(api, "bob", "PRIVATE", ["alice"], client_message_id="new-1") == private
    for n in range(3):
        await send(api, "bob", company["id"], f"<p>{n}</p>", key=f"reply-{n}")
    assert (await send(api, "bob", company["id"], key="reply-0"))["bodyText"] == "0"

    first = await api.gql(CONVERSATIONS, {"first": 1}, as_="alice")
    cursor = first["conversations"]["pageInfo"]["endCursor"]
    assert (await api.gql(CONVERSATIONS, {"first": 1, "after": cursor}, as_="alice"))[
        "conversations"
    ]["edges"]
    await api.gql(CONVERSATIONS, {"first": 5, "unread": True}, as_="alice")
    await api.gql(CONVERSATIONS, {"first": 5, "type": "PRIVATE"}, as_="bob")
    narrowed = {"first": 5, "companyId": api.ids["companies"]["bakery"]}
    assert (await api.gql(CONVERSATIONS, narrowed, as_="bob"))["conversations"]["edges"]

    page = (await api.gql(NOTIFICATIONS, {}, as_="alice"))["notifications"]
    after = page["pageInfo"]["endCursor"]
    assert (await api.gql(NOTIFICATIONS, {"after": after}, as_="alice"))["notifications"]["edges"]
    await api.gql(NOTIFICATIONS, {"unread": True}, as_="alice")
    ids = [edge["node"]["id"] for edge in page["edges"]]
    assert await api.gql(MARK_NOTIFICATIONS, {"ids": ids}, as_="alice") == {
        "markNotificationsRead": 2
    }
    await api.gql(MARK_NOTIFICATIONS, {}, as_="alice")

    history = await api.gql(HISTORY, {"id": company["id"]}, as_="alice")
    before = history["conversation"]["messages"]["edges"][0]["cursor"]
    await api.gql(HISTORY, {"id": company["id"], "before": before}, as_="alice")
    await api.gql(MARK_CONVERSATION, {"id": company["id"]}, as_="alice")
