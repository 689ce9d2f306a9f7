"""An inbox page reads what it shows of its conversations in bulk (`schema.inbox_rows`); each
conversation must then show exactly what it shows when read alone (`conversation(id)`, field by
field through the loaders), whoever reads and however the query names the fields.

Standard directory (`tests/factories.py`): practitioners alice (favorite bakery) and paul;
clients bob (bakery, favorite bakery) and carla (bakery; given the bakery as favorite here).
Real app over HTTP.
"""

from __future__ import annotations

from typing import Any

from tests.conversation_helpers import create, send, set_favorites

SHOWN = """
  id subject lastMessageAt unreadCount
  company { id name }
  participants { id name kind }
  createdBy { id name }
  lastMessage { id bodyText kind author { id name } }
"""
PAGE = f"{{ conversations(first: 10) {{ edges {{ node {{ {SHOWN} }} }} }} }}"
ALONE = f"query($id: ID!) {{ conversation(id: $id) {{ {SHOWN} }} }}"
# The same fields through a named fragment, an inline fragment and aliases.
PAGE_WITH_FRAGMENTS = """
fragment Row on Conversation {
  id subject lastMessageAt
  n: unreadCount
  company { id name }
  ... on Conversation { people: participants { id name kind } createdBy { id name } }
}
{ conversations(first: 10) { edges { ... on ConversationEdge { node {
  ...Row
  last: lastMessage { id bodyText kind author { id name } }
} } } } }
"""
NOTE = """mutation($input: SendMessageInput!) { sendMessage(input: $input) { id kind } }"""


async def _conversations(api: Any, db: Any) -> list[str]:
    """A company conversation whose newest message is a note (clients see the message before
    it), a private one, and one of the bakery that carla reads through her favorite."""
    noted = (await create(api, "alice", "COMPANY", ["bob", "paul"], company="bakery"))["id"]
    await send(api, "bob", noted, "<p>from bob</p>")
    await send(api, "alice", noted, "<p>from alice</p>")
    note = {"conversationId": noted, "body": "<p>internal</p>", "internal": True}
    assert (await api.gql(NOTE, {"input": note}, as_="paul"))["sendMessage"]["kind"] == "NOTE"
    private = (await create(api, "bob", "PRIVATE", ["alice"], subject="Private"))["id"]
    await send(api, "alice", private, "<p>answer</p>")
    favorite = await create(api, "paul", "COMPANY", ["bob"], company="bakery", subject="Fav")
    await set_favorites(db, api, "carla", ["bakery"])
    return [noted, private, favorite["id"]]


async def test_each_row_of_an_inbox_page_is_what_the_conversation_shows_alone(api, db):
    await _conversations(api, db)
    for reader in ("alice", "paul", "bob", "carla"):
        page = await api.gql(PAGE, as_=reader)
        rows = [edge["node"] for edge in page["conversations"]["edges"]]
        assert rows, reader
        for row in rows:
            alone = await api.gql(ALONE, {"id": row["id"]}, as_=reader)
            assert row == alone["conversation"], reader


async def test_fragments_and_aliases_read_the_same_page(api, db):
    noted, *_ = await _conversations(api, db)
    for reader in ("alice", "bob", "carla"):
        plain = await api.gql(PAGE, as_=reader)
        fragments = await api.gql(PAGE_WITH_FRAGMENTS, as_=reader)
        renamed = [
            {
                **{k: v for k, v in edge["node"].items() if k not in ("n", "people", "last")},
                "unreadCount": edge["node"]["n"],
                "participants": edge["node"]["people"],
                "lastMessage": edge["node"]["last"],
            }
            for edge in fragments["conversations"]["edges"]
        ]
        assert renamed == [edge["node"] for edge in plain["conversations"]["edges"]], reader
    # What differs by reader: the note is the practitioners' last message, never a client's.
    shown = {
        reader: {
            edge["node"]["id"]: edge["node"]["lastMessage"]["bodyText"]
            for edge in (await api.gql(PAGE, as_=reader))["conversations"]["edges"]
        }
        for reader in ("alice", "bob")
    }
    assert shown["alice"][noted] == "internal"
    assert shown["bob"][noted] == "from alice"
