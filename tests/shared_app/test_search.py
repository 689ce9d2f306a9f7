"""Search (SPEC §16) over real HTTP: what is found, for whom, in which order, how it is shown,
and what hostile queries get.

The standard directory (`tests/factories.py`): firm acme has companies bakery, garage and
florist; practitioners alice (favorite bakery) and paul; clients bob (bakery; favorite bakery),
carla (bakery) and dan (garage, florist; favorite garage). Firm other has olga and oscar.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from graphql_api.conversations.models import Conversation
from graphql_api.search.index import refresh_read_grants, refresh_search_text
from graphql_api.search.terms import MAX_QUERY_LENGTH
from tests.conversation_helpers import (
    ADD_FAVORITE,
    REMOVE_FAVORITE,
    company_id,
    create,
    inbox_ids,
    send,
    single_error,
    user_id,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEARCH = """
query($query: String!, $first: Int, $after: String, $companyId: ID, $type: ConversationType,
      $authorId: ID, $since: DateTime, $until: DateTime, $hasAttachments: Boolean) {
  search(query: $query, first: $first, after: $after, companyId: $companyId, type: $type,
         authorId: $authorId, since: $since, until: $until, hasAttachments: $hasAttachments) {
    edges { cursor node {
      snippet
      message { id bodyText author { id } conversation { id } }
      conversation { id subject }
    } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def search(api: Any, as_: str, query: str, **variables: Any) -> dict[str, Any]:
    data = await api.gql(SEARCH, {"query": query, "first": 50, **variables}, as_=as_)
    return data["search"]


async def found_texts(api: Any, as_: str, query: str, **variables: Any) -> list[str]:
    """The plain text of every result, in order."""
    result = await search(api, as_, query, **variables)
    return [edge["node"]["message"]["bodyText"] for edge in result["edges"]]


async def found_conversations(api: Any, as_: str, query: str) -> set[str]:
    result = await search(api, as_, query)
    return {edge["node"]["conversation"]["id"] for edge in result["edges"]}


async def search_error(api: Any, as_: str, query: str, **variables: Any) -> tuple[str, str]:
    return await single_error(api, SEARCH, {"query": query, **variables}, as_=as_)


async def upload(api: Any, user: str, filename: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", b"%PDF-1.4 figures", filename=filename, content_type="application/pdf")
    response = await api.http.post("/attachments", data=form, headers=api.headers(user))
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def stored_conversation(db: Any, conversation_id: str) -> Conversation:
    return Conversation.from_doc(await db.conversations.find_one({"_id": conversation_id}))


# -- what is searched -----------------------------------------------------------------------------


async def test_words_of_the_text_are_found_whatever_their_case_and_accents(api):
    await create(api, "alice", "PRIVATE", ["paul"], body="<p>La Déclaration de TVA est prête</p>")
    await create(api, "alice", "PRIVATE", ["paul"], body="<p>Nothing to declare</p>")
    for query in ("declaration", "DÉCLARATION", "Déclaration", "déclaràtion"):
        assert await found_texts(api, "paul", query) == ["La Déclaration de TVA est prête"]
    assert await found_texts(api, "paul", "prete tva") == ["La Déclaration de TVA est prête"]


async def test_words_of_the_subject_find_every_message_of_the_conversation(api):
    created = await create(
        api, "alice", "PRIVATE", ["paul"], subject="Balance sheet 2024", body="<p>first</p>"
    )
    await send(api, "paul", created["id"], "<p>second</p>")
    assert sorted(await found_texts(api, "alice", "balance sheet")) == ["first", "second"]
    result = await search(api, "alice", "balance")
    assert {e["node"]["conversation"]["subject"] for e in result["edges"]} == {"Balance sheet 2024"}


async def test_words_of_attachment_filenames_are_found_and_marked(api):
    attachment = await upload(api, "alice", "bilan_annuel_2024.pdf")
    created = await create(api, "alice", "PRIVATE", ["paul"], body="<p>See attached</p>")
    await api.gql(
        """mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }""",
        {
            "input": {
                "conversationId": created["id"],
                "body": "<p>Here it is</p>",
                "attachmentIds": [attachment],
            }
        },
        as_="alice",
    )
    result = await search(api, "paul", "annuel")
    assert [e["node"]["snippet"] for e in result["edges"]] == ["bilan_<mark>annuel</mark>_2024.pdf"]
    assert [e["node"]["message"]["bodyText"] for e in result["edges"]] == ["Here it is"]


async def test_every_word_of_the_query_must_be_in_the_message(api):
    await create(api, "alice", "PRIVATE", ["paul"], body="<p>The tax return is filed</p>")
    await create(api, "alice", "PRIVATE", ["paul"], body="<p>The tax office called</p>")
    assert await found_texts(api, "paul", "tax return") == ["The tax return is filed"]
    assert sorted(await found_texts(api, "paul", "tax")) == [
        "The tax office called",
        "The tax return is filed",
    ]


async def test_whole_words_match_not_parts_of_words(api):
    await create(api, "alice", "PRIVATE", ["paul"], body="<p>Invoices attached</p>")
    assert await found_texts(api, "paul", "invoice") == []
    assert await found_texts(api, "paul", "invoices") == ["Invoices attached"]


# -- who finds what ---------------------------------------------------------------------------


async def test_each_user_finds_exactly_the_messages_of_the_conversations_it_may_read(api):
    """Every shape of SPEC §3 holds the word; each user finds exactly its inbox's ones."""
    shapes = [
        ("alice", "COMPANY", ["bob"], "bakery"),  # client-visible: bob favors bakery
        ("alice", "COMPANY", ["paul"], "bakery"),  # not client-visible
        ("alice", "CONFIDENTIAL", ["carla"], "bakery"),
        ("paul", "COMPANY", ["dan"], "garage"),
        ("paul", "CONFIDENTIAL", ["paul"][:0] or ["alice"], "florist"),
        ("paul", "PRIVATE", ["carla"], None),
        ("dan", "PRIVATE", ["paul"], None),
    ]
    for creator, kind, participants, company in shapes:
        await create(
            api, creator, kind, participants, company=company, body="<p>zebra crossing</p>"
        )
    await create(api, "olga", "COMPANY", ["oscar"], company="rival", body="<p>zebra</p>")
    for user in ("alice", "paul", "bob", "carla", "dan", "olga", "oscar"):
        assert await found_conversations(api, user, "zebra") == set(await inbox_ids(api, user)), (
            user
        )


async def test_favorites_changes_apply_to_search_at_once(api):
    await create(api, "paul", "COMPANY", ["carla"], company="bakery", body="<p>walrus</p>")
    assert len(await found_texts(api, "alice", "walrus")) == 1  # bakery is alice's favorite
    bakery = company_id(api, "bakery")
    await api.gql(REMOVE_FAVORITE, {"id": bakery}, as_="alice")
    assert await found_texts(api, "alice", "walrus") == []
    await api.gql(ADD_FAVORITE, {"id": bakery}, as_="alice")
    assert await found_texts(api, "alice", "walrus") == ["walrus"]


async def test_a_participant_removed_without_a_refresh_still_finds_nothing(api, db):
    """Read grants copied on the messages are stale until the writer refreshes them; the
    check of each result against its conversation as stored hides the message anyway."""
    created = await create(api, "alice", "PRIVATE", ["paul"], body="<p>platypus</p>")
    assert await found_texts(api, "paul", "platypus") == ["platypus"]
    await db.conversations.update_one(
        {"_id": created["id"]}, {"$set": {"participant_ids": [user_id(api, "alice")]}}
    )
    assert await found_texts(api, "paul", "platypus") == []
    await refresh_read_grants(db, await stored_conversation(db, created["id"]))
    assert await found_texts(api, "paul", "platypus") == []
    assert await found_texts(api, "alice", "platypus") == ["platypus"]


async def test_added_participants_find_the_history_once_read_grants_are_refreshed(api, db):
    created = await create(api, "alice", "PRIVATE", ["carla"], body="<p>pelican</p>")
    assert await found_texts(api, "paul", "pelican") == []
    ids = [user_id(api, u) for u in ("alice", "carla", "paul")]
    await db.conversations.update_one({"_id": created["id"]}, {"$set": {"participant_ids": ids}})
    await refresh_read_grants(db, await stored_conversation(db, created["id"]))
    assert await found_texts(api, "paul", "pelican") == ["pelican"]


ADD_PARTICIPANTS = """mutation($c: ID!, $u: [ID!]!) {
  addParticipants(conversationId: $c, userIds: $u) { id } }"""
RENAME = """mutation($c: ID!, $s: String!) { renameConversation(conversationId: $c, subject: $s) {
  id } }"""


async def test_participants_added_and_subjects_renamed_through_the_api_are_searched_at_once(api):
    created = await create(
        api, "alice", "PRIVATE", ["carla"], subject="Old heading", body="<p>walrus</p>"
    )
    assert await found_texts(api, "paul", "walrus") == []
    await api.gql(ADD_PARTICIPANTS, {"c": created["id"], "u": [user_id(api, "paul")]}, as_="alice")
    assert await found_texts(api, "paul", "walrus") == ["walrus"]
    await api.gql(RENAME, {"c": created["id"], "s": "Payroll"}, as_="carla")
    assert await found_texts(api, "paul", "heading") == []
    assert await found_texts(api, "paul", "payroll") == ["walrus"]


async def test_clients_never_find_internal_notes_practitioners_do(api):
    created = await create(
        api, "alice", "COMPANY", ["bob"], company="bakery", body="<p>quokka shared</p>"
    )
    note = {"conversationId": created["id"], "body": "<p>quokka internal</p>", "internal": True}
    await api.gql(
        "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
        {"i": note},
        as_="alice",
    )
    assert await found_texts(api, "bob", "quokka") == ["quokka shared"]
    assert sorted(await found_texts(api, "alice", "quokka")) == [
        "quokka internal",
        "quokka shared",
    ]


async def test_another_firms_messages_and_ids_find_nothing(api):
    await create(api, "olga", "COMPANY", ["oscar"], company="rival", body="<p>narwhal</p>")
    assert await found_texts(api, "alice", "narwhal") == []
    rival = company_id(api, "rival")
    assert await found_texts(api, "alice", "narwhal", companyId=rival) == []
    assert await found_texts(api, "alice", "narwhal", authorId=user_id(api, "olga")) == []
    assert await search_error(api, "alice", "narwhal", companyId="nope") == (
        "NOT_FOUND",
        "company not found",
    )


async def test_deleted_messages_are_never_found(api, db):
    created = await create(api, "alice", "PRIVATE", ["paul"], body="<p>okapi one</p>")
    second = await send(api, "alice", created["id"], "<p>okapi two</p>")
    delete = "mutation($m: ID!) { deleteMessage(messageId: $m) { deletedAt } }"
    await api.gql(delete, {"m": second["id"]}, as_="alice")
    assert await found_texts(api, "paul", "okapi") == ["okapi one"]


async def test_an_edit_is_found_by_its_new_words_once_the_search_text_is_refreshed(api, db):
    created = await create(api, "alice", "PRIVATE", ["paul"], body="<p>draft wording</p>")
    message = await db.messages.find_one({"conversation_id": created["id"]})
    await db.messages.update_one(
        {"_id": message["_id"]}, {"$set": {"body": "<p>final text</p>", "body_text": "final text"}}
    )
    conversation = await stored_conversation(db, created["id"])
    await refresh_search_text(db, conversation, [message["_id"]])
    assert await found_texts(api, "paul", "draft") == []
    assert await found_texts(api, "paul", "final") == ["final text"]


async def test_a_renamed_subject_is_searched_once_the_search_text_is_refreshed(api, db):
    created = await create(
        api, "alice", "PRIVATE", ["paul"], subject="Old heading", body="<p>one</p>"
    )
    await send(api, "paul", created["id"], "<p>two</p>")
    await db.conversations.update_one({"_id": created["id"]}, {"$set": {"subject": "Payslips"}})
    await refresh_search_text(db, await stored_conversation(db, created["id"]))
    assert await found_texts(api, "alice", "heading") == []
    assert sorted(await found_texts(api, "alice", "payslips")) == ["one", "two"]


# -- filters ----------------------------------------------------------------------------------


async def test_filters_narrow_by_company_type_author_and_attachments(api):
    await create(api, "alice", "COMPANY", ["bob"], company="bakery", body="<p>lynx bakery</p>")
    await create(api, "alice", "CONFIDENTIAL", ["paul"], company="bakery", body="<p>lynx conf</p>")
    private = await create(api, "alice", "PRIVATE", ["paul"], body="<p>lynx private</p>")
    await send(api, "paul", private["id"], "<p>lynx by paul</p>")
    attachment = await upload(api, "alice", "scan.pdf")
    await api.gql(
        """mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }""",
        {
            "input": {
                "conversationId": private["id"],
                "body": "<p>lynx with file</p>",
                "attachmentIds": [attachment],
            }
        },
        as_="alice",
    )
    texts = lambda **v: found_texts(api, "alice", "lynx", **v)  # noqa: E731
    assert sorted(await texts(companyId=company_id(api, "bakery"))) == [
        "lynx bakery",
        "lynx conf",
    ]
    assert await texts(companyId=company_id(api, "garage")) == []
    assert await texts(type="CONFIDENTIAL") == ["lynx conf"]
    assert await texts(authorId=user_id(api, "paul")) == ["lynx by paul"]
    assert await texts(hasAttachments=True) == ["lynx with file"]
    assert len(await texts(hasAttachments=False)) == 4


async def test_date_filters_take_since_inclusive_and_until_exclusive(api, db):
    created = await create(api, "alice", "PRIVATE", ["paul"], body="<p>heron early</p>")
    late = await send(api, "alice", created["id"], "<p>heron late</p>")
    stored = await db.messages.find_one({"_id": late["id"]})
    at = datetime.fromtimestamp(stored["created_ms"] / 1000, tz=UTC)
    iso = lambda t: t.isoformat()  # noqa: E731
    assert await found_texts(api, "paul", "heron", since=iso(at)) == ["heron late"]
    assert await found_texts(api, "paul", "heron", until=iso(at)) == ["heron early"]
    assert await found_texts(api, "paul", "heron", since=iso(at), until=iso(at)) == []
    hour = timedelta(hours=1)
    assert len(await found_texts(api, "paul", "heron", since=iso(at - hour))) == 2
    assert await found_texts(api, "paul", "heron", since=iso(at + hour)) == []


# -- order and pages --------------------------------------------------------------------------


async def test_more_relevant_messages_come_first(api):
    created = await create(
        api, "alice", "PRIVATE", ["paul"], body="<p>A note about a receipt and other things</p>"
    )
    await send(api, "alice", created["id"], "<p>Receipt, receipt, receipt</p>")
    assert await found_texts(api, "paul", "receipt") == [
        "Receipt, receipt, receipt",
        "A note about a receipt and other things",
    ]


async def test_pages_walk_every_result_once_in_order(api):
    created = await create(api, "alice", "PRIVATE", ["paul"], body="<p>gecko 0</p>")
    for i in range(1, 7):
        await send(api, "alice", created["id"], f"<p>gecko {i}" + " gecko" * (i % 3) + "</p>")
    whole = await found_texts(api, "paul", "gecko")
    assert len(whole) == 7
    walked, after, flags = [], None, []
    while True:
        page = await search(api, "paul", "gecko", first=3, after=after)
        walked += [e["node"]["message"]["bodyText"] for e in page["edges"]]
        info = page["pageInfo"]
        flags.append((info["hasNextPage"], info["hasPreviousPage"]))
        assert info["endCursor"] == page["edges"][-1]["cursor"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert walked == whole
    assert flags == [(True, False), (True, True), (False, True)]


async def test_a_new_match_between_two_pages_neither_repeats_nor_skips_a_result(api):
    created = await create(api, "alice", "PRIVATE", ["paul"], body="<p>ibis 0</p>")
    for i in range(1, 6):
        await send(api, "alice", created["id"], f"<p>ibis {i}</p>")
    before = set(await found_texts(api, "paul", "ibis"))
    first = await search(api, "paul", "ibis", first=3)
    await send(api, "alice", created["id"], "<p>ibis ibis ibis new</p>")  # ranks first now
    rest = await search(api, "paul", "ibis", first=10, after=first["pageInfo"]["endCursor"])
    seen = [e["node"]["message"]["bodyText"] for e in first["edges"] + rest["edges"]]
    assert len(seen) == len(set(seen))
    assert set(seen) == before


# -- snippets ---------------------------------------------------------------------------------


async def test_snippets_escape_the_text_and_mark_the_words_in_their_original_spelling(api):
    body = (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt; &lt;mark&gt;fake&lt;/mark&gt; "
        "Déclaration &amp; TVA</p>"
    )
    await create(api, "alice", "PRIVATE", ["paul"], body=body)
    result = await search(api, "paul", "declaration")
    assert [e["node"]["snippet"] for e in result["edges"]] == [
        "&lt;script&gt;alert(1)&lt;/script&gt; &lt;mark&gt;fake&lt;/mark&gt; "
        "<mark>Déclaration</mark> &amp; TVA"
    ]


async def test_long_messages_are_cut_around_the_first_match(api):
    words = " ".join(f"filler{i}" for i in range(80))
    await create(api, "alice", "PRIVATE", ["paul"], body=f"<p>{words} quokka {words}</p>")
    (snippet,) = [e["node"]["snippet"] for e in (await search(api, "paul", "quokka"))["edges"]]
    assert snippet.startswith("…") and snippet.endswith("…")
    assert "<mark>quokka</mark>" in snippet
    assert len(snippet) < 220


# -- hostile queries ----------------------------------------------------------------------------


async def test_hostile_queries_get_a_coded_error(api):
    too_long = "a" * (MAX_QUERY_LENGTH + 1)
    assert await search_error(api, "alice", too_long) == (
        "BAD_USER_INPUT",
        f"query must be at most {MAX_QUERY_LENGTH} characters",
    )
    assert (await search_error(api, "alice", " ".join(["w"] * 10_000)))[0] == "BAD_USER_INPUT"
    assert await search_error(api, "alice", "tax\x00return") == (
        "BAD_USER_INPUT",
        "query must not contain control characters",
    )
    assert await search_error(api, "alice", " ".join(f"w{i}" for i in range(13))) == (
        "BAD_USER_INPUT",
        "query may have at most 12 words",
    )
    assert (await search_error(api, "alice", "   "))[0] == "BAD_USER_INPUT"
    assert (await search_error(api, "alice", "tax", after="bm90IGEgY3Vyc29y"))[0] == (
        "BAD_USER_INPUT"
    )
    assert (await search_error(api, "alice", "tax", first=-1))[0] == "BAD_USER_INPUT"


async def test_stop_words_only_and_punctuation_only_answer_an_empty_page(api):
    await create(api, "alice", "PRIVATE", ["paul"], body="<p>the and of it is</p>")
    for query in ("the and of", "it is", ".*", '"" - OR ()'):
        result = await search(api, "paul", query)
        assert result["edges"] == [], query
        assert result["pageInfo"]["hasNextPage"] is False


async def test_the_engines_query_syntax_is_taken_as_plain_words(api):
    await create(api, "alice", "PRIVATE", ["paul"], body="<p>Mongoose report</p>")
    await create(api, "alice", "PRIVATE", ["paul"], body="<p>Mongoose only</p>")
    # A minus sign or quotes would negate or quote in MongoDB's syntax; here they are words.
    assert await found_texts(api, "paul", "mongoose -report") == ["Mongoose report"]
    assert await found_texts(api, "paul", '"mongoose report"') == ["Mongoose report"]
    assert await found_texts(api, "paul", "mongoose AND (report)") == ["Mongoose report"]
    assert await found_texts(api, "paul", "NEAR(mongoose report)") == []  # "near" is a word
    assert sorted(await found_texts(api, "paul", "mongoose.*")) == [
        "Mongoose only",
        "Mongoose report",
    ]
    assert await found_texts(api, "paul", "mongoose*") != []
    assert await found_texts(api, "paul", "^(mongoose|the)+$ report") == ["Mongoose report"]


async def test_search_needs_a_signed_in_viewer(api):
    body = await api.raw(SEARCH, {"query": "anything"})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_concurrent_searches_answer_each_its_own_results(api):
    await create(api, "alice", "PRIVATE", ["paul"], body="<p>alpaca</p>")
    await create(api, "alice", "PRIVATE", ["carla"], body="<p>alpaca</p>")
    answers = await asyncio.gather(
        *(found_conversations(api, u, "alpaca") for u in ("paul", "carla", "bob") * 3)
    )
    assert [len(a) for a in answers] == [1, 1, 0] * 3
