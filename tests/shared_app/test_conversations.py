"""Creating conversations, replying, the inbox, history and read state (SPEC §4, §5, §9).

The standard directory (`tests/factories.py`): firm acme has companies bakery (Martin Bakery),
garage (Garage Dupont) and florist (Fleurs de Lys); practitioners alice (favorite bakery) and paul;
clients bob (bakery; favorite bakery), carla (bakery) and dan (garage, florist; favorite garage).
Firm other has olga (practitioner) and oscar (client of rival).
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from bson import ObjectId

from tests.conversation_helpers import (
    CONVERSATIONS,
    CREATE,
    ELIGIBLE,
    MARK_READ,
    SEND,
    company_id,
    conversation_doc,
    create,
    create_input,
    firm_filter,
    inbox_ids,
    inbox_subjects,
    insert_user,
    read_single,
    send,
    single_error,
    user_id,
)
from tests.user_writes import update_user

pytestmark = pytest.mark.asyncio(loop_scope="module")


DETAIL = """
query($id: ID!) {
  conversation(id: $id) {
    id type subject clientVisible createdAt lastMessageAt unreadCount
    company { id name }
    participants { id }
    createdBy { id }
    lastMessage { body bodyText author { id } conversation { id } }
    messages { edges { node { body author { id } } } }
  }
}
"""

HISTORY = """
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  conversation(id: $id) {
    messages(first: $first, after: $after, last: $last, before: $before) {
      edges { cursor node { bodyText } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""

UNREAD = "query($id: ID!) { conversation(id: $id) { unreadCount } }"

COMPANIES = "query { companies(favoritesOnly: true) { id name } }"


async def unread(api, user: str, conversation_id: str) -> int:
    return (await api.gql(UNREAD, {"id": conversation_id}, as_=user))["conversation"]["unreadCount"]


async def eligible_names(api, user: str, kind: str, company: str | None = None, search=None):
    variables = {"type": kind, "companyId": company_id(api, company) if company else None}
    if search is not None:
        variables["search"] = search
    data = await api.gql(ELIGIBLE, variables, as_=user)
    return [u["name"] for u in data["eligibleParticipants"]]


async def stored_counts(db, api) -> tuple[int, int]:
    """(conversations, messages) stored for this test's firm."""
    mine = firm_filter(api)
    return await db.conversations.count_documents(mine), await db.messages.count_documents(mine)


# -- The three creation flows of the help page ----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "company", "designated"),
    [
        pytest.param("COMPANY", "bakery", ["paul", "bob"], id="COMPANY"),
        pytest.param("CONFIDENTIAL", "bakery", ["carla"], id="CONFIDENTIAL"),
        pytest.param("PRIVATE", None, ["dan"], id="PRIVATE"),
    ],
)
async def test_creation_flow_of_the_help_page(api, kind, company, designated):
    # Select the company among the favorites (not for PRIVATE), then the participants.
    if company is not None:
        picked = (await api.gql(COMPANIES, as_="alice"))["companies"]
        assert picked == [{"id": company_id(api, company), "name": "Martin Bakery"}]
    offered = await api.gql(
        ELIGIBLE,
        {"type": kind, "companyId": company_id(api, company) if company else None},
        as_="alice",
    )
    offered_ids = {u["id"] for u in offered["eligibleParticipants"]}
    assert {user_id(api, u) for u in designated} <= offered_ids

    created = await create(
        api,
        "alice",
        kind,
        designated,
        company=company,
        subject="  Year-end   closing ",
        body="<p>Hello <strong>team</strong></p>",
    )
    detail = (await api.gql(DETAIL, {"id": created["id"]}, as_="alice"))["conversation"]
    alice = user_id(api, "alice")
    assert detail["type"] == kind
    assert detail["subject"] == "Year-end closing"
    assert detail["company"] == (
        {"id": company_id(api, company), "name": "Martin Bakery"} if company else None
    )
    assert [p["id"] for p in detail["participants"]] == [alice] + [
        user_id(api, u) for u in designated
    ]
    assert detail["createdBy"] == {"id": alice}
    assert detail["createdAt"] == detail["lastMessageAt"]
    assert detail["lastMessage"] == {
        "body": "<p>Hello <strong>team</strong></p>",
        "bodyText": "Hello team",
        "author": {"id": alice},
        "conversation": {"id": created["id"]},
    }
    assert detail["messages"]["edges"] == [
        {"node": {"body": "<p>Hello <strong>team</strong></p>", "author": {"id": alice}}}
    ]
    assert detail["unreadCount"] == 0

    # Every designated participant finds it in the inbox, unread, and can follow up.
    for participant in designated:
        assert await inbox_subjects(api, participant) == ["Year-end closing"]
        assert await unread(api, participant, created["id"]) == 1
    reply = await send(api, designated[0], created["id"], "<p>Thanks</p>")
    after = (await api.gql(DETAIL, {"id": created["id"]}, as_="alice"))["conversation"]
    assert after["lastMessage"]["bodyText"] == "Thanks"
    assert after["lastMessage"]["author"] == {"id": user_id(api, designated[0])}
    assert reply["author"] == {"id": user_id(api, designated[0])}
    assert after["unreadCount"] == 1


async def test_creator_is_added_to_the_participants(api):
    created = await create(api, "bob", "PRIVATE", ["alice"])
    assert [p["id"] for p in created["participants"]] == [
        user_id(api, "bob"),
        user_id(api, "alice"),
    ]
    assert created["createdBy"] == {"id": user_id(api, "bob")}


async def test_creator_listed_among_participants_is_kept_once(api):
    created = await create(api, "alice", "PRIVATE", ["alice", "paul"])
    assert [p["id"] for p in created["participants"]] == [
        user_id(api, "alice"),
        user_id(api, "paul"),
    ]


async def test_subject_is_trimmed(api):
    created = await create(api, "alice", "PRIVATE", ["paul"], subject="\t  Invoices 2025  \n")
    assert created["subject"] == "Invoices 2025"


async def test_subject_of_exactly_200_characters_is_accepted(api):
    subject = "x" * 200
    created = await create(api, "alice", "PRIVATE", ["paul"], subject=subject)
    assert created["subject"] == subject


async def test_subject_limit_counts_characters_after_trimming(api):
    created = await create(api, "alice", "PRIVATE", ["paul"], subject="  " + "é" * 200 + "  ")
    assert created["subject"] == "é" * 200


async def test_body_of_exactly_100_kb_is_accepted(api, db):
    body = "a" * (100 * 1024)
    created = await create(api, "alice", "PRIVATE", ["paul"], body=body)
    stored = await db.messages.find_one({"conversation_id": created["id"]})
    assert stored["body"] == body


async def test_body_limit_counts_utf8_bytes(api):
    accepted = await create(api, "alice", "PRIVATE", ["paul"], body="é" * (50 * 1024))
    assert accepted["type"] == "PRIVATE"
    assert await single_error(
        api,
        CREATE,
        {"input": create_input(api, "PRIVATE", ["paul"], body="é" * (50 * 1024 + 1))},
        as_="alice",
    ) == ("BAD_USER_INPUT", "body must be at most 100 KB of HTML")


async def test_a_conversation_of_100_participants_is_accepted(api, db):
    acme = api.ids["firms"]["acme"]
    others = [await insert_user(db, acme, f"staff{i:02d}") for i in range(99)]
    created = await create(api, "alice", "PRIVATE", [], participant_ids=others)
    assert len(created["participants"]) == 100


# -- Creation refused, and nothing stored ---------------------------------------------------------

SUBJECT_ERROR = ("BAD_USER_INPUT", "subject must be 1 to 200 characters")
BODY_TOO_LARGE = ("BAD_USER_INPUT", "body must be at most 100 KB of HTML")
BODY_EMPTY = ("BAD_USER_INPUT", "body must not be empty unless the message has attachments")
NOBODY = ("BAD_USER_INPUT", "designate at least one participant besides yourself")
REPEATED = ("BAD_USER_INPUT", "participantIds must not repeat a participant")
TOO_MANY = ("BAD_USER_INPUT", "a conversation has at most 100 participants, you included")
COMPANY_NOT_FOUND = ("NOT_FOUND", "company not found")


def _participant_not_found(participant_id: str) -> tuple[str, str]:
    return (
        "NOT_FOUND",
        f"participant '{participant_id}' not found among the users you may designate",
    )


REFUSED = [
    # (id, creator, input arguments, expected (code, message) or a function of the api)
    ("empty-subject", "alice", {"kind": "PRIVATE", "p": ["paul"], "subject": ""}, SUBJECT_ERROR),
    (
        "blank-subject",
        "alice",
        {"kind": "PRIVATE", "p": ["paul"], "subject": " \t "},
        SUBJECT_ERROR,
    ),
    (
        "subject-201",
        "alice",
        {"kind": "PRIVATE", "p": ["paul"], "subject": "x" * 201},
        SUBJECT_ERROR,
    ),
    (
        "body-over-100kb",
        "alice",
        {"kind": "PRIVATE", "p": ["paul"], "body": "<p>" + "a" * (100 * 1024) + "</p>"},
        BODY_TOO_LARGE,
    ),
    ("empty-body", "alice", {"kind": "PRIVATE", "p": ["paul"], "body": ""}, BODY_EMPTY),
    (
        "blank-html-body",
        "alice",
        {"kind": "PRIVATE", "p": ["paul"], "body": "<p> </p><br>"},
        BODY_EMPTY,
    ),
    (
        "body-only-removed-markup",
        "alice",
        {"kind": "PRIVATE", "p": ["paul"], "body": "<script>alert(1)</script><img src=x>"},
        BODY_EMPTY,
    ),
    ("duplicate-participants", "alice", {"kind": "PRIVATE", "p": ["paul", "paul"]}, REPEATED),
    ("no-participants", "alice", {"kind": "PRIVATE", "p": []}, NOBODY),
    ("only-the-creator", "alice", {"kind": "PRIVATE", "p": ["alice"]}, NOBODY),
    (
        "company-without-companyId",
        "alice",
        {"kind": "COMPANY", "p": ["paul"]},
        ("BAD_USER_INPUT", "companyId is required for a COMPANY conversation"),
    ),
    (
        "confidential-without-companyId",
        "alice",
        {"kind": "CONFIDENTIAL", "p": ["paul"]},
        ("BAD_USER_INPUT", "companyId is required for a CONFIDENTIAL conversation"),
    ),
    (
        "private-with-companyId",
        "alice",
        {"kind": "PRIVATE", "p": ["paul"], "company": "bakery"},
        ("BAD_USER_INPUT", "a PRIVATE conversation is not linked to a company: omit companyId"),
    ),
    (
        "client-on-a-company-it-is-not-a-client-of",
        "bob",
        {"kind": "COMPANY", "p": ["alice"], "company": "garage"},
        COMPANY_NOT_FOUND,
    ),
    (
        "client-confidential-on-another-company",
        "dan",
        {"kind": "CONFIDENTIAL", "p": ["alice"], "company": "bakery"},
        COMPANY_NOT_FOUND,
    ),
    (
        "another-firms-company",
        "alice",
        {"kind": "COMPANY", "p": ["paul"], "company": "rival"},
        COMPANY_NOT_FOUND,
    ),
    (
        "client-designates-client-of-another-company-private",
        "bob",
        {"kind": "PRIVATE", "p": ["alice", "dan"]},
        "dan",
    ),
    (
        "company-designates-client-of-another-company",
        "alice",
        {"kind": "COMPANY", "p": ["paul", "dan"], "company": "bakery"},
        "dan",
    ),
    (
        "confidential-designates-client-of-another-company",
        "alice",
        {"kind": "CONFIDENTIAL", "p": ["bob", "dan"], "company": "bakery"},
        "dan",
    ),
    ("designates-another-firms-practitioner", "alice", {"kind": "PRIVATE", "p": ["olga"]}, "olga"),
    ("designates-another-firms-client", "alice", {"kind": "PRIVATE", "p": ["oscar"]}, "oscar"),
]


@pytest.mark.parametrize(
    ("creator", "arguments", "expected"),
    [pytest.param(creator, args, expected, id=name) for name, creator, args, expected in REFUSED],
)
async def test_invalid_creation_is_refused_and_stores_nothing(
    api, db, creator, arguments, expected
):
    arguments = dict(arguments)
    kind, participants = arguments.pop("kind"), arguments.pop("p")
    variables = {"input": create_input(api, kind, participants, **arguments)}
    if isinstance(expected, str):  # the key of the participant refused
        expected = _participant_not_found(user_id(api, expected))
    assert await single_error(api, CREATE, variables, as_=creator) == expected
    assert await stored_counts(db, api) == (0, 0)


async def test_101_participants_is_too_many(api, db):
    others = [str(ObjectId()) for _ in range(100)]  # with the creator: 101
    variables = {"input": create_input(api, "PRIVATE", [], participant_ids=others)}
    assert await single_error(api, CREATE, variables, as_="alice") == TOO_MANY
    assert await stored_counts(db, api) == (0, 0)


@pytest.mark.parametrize(
    "participant",
    [
        pytest.param(str(ObjectId()), id="unknown"),
        pytest.param("not-an-id", id="malformed"),
        pytest.param("6B064C42DE90E265431F6C33", id="uppercase-hex"),
    ],
)
async def test_unknown_participant_answers_the_same_not_found(api, db, participant):
    variables = {
        "input": create_input(api, "PRIVATE", ["paul"], participant_ids=[participant]),
    }
    assert await single_error(api, CREATE, variables, as_="alice") == _participant_not_found(
        participant
    )
    assert await stored_counts(db, api) == (0, 0)


async def test_client_may_designate_clients_sharing_a_company_in_private(api):
    created = await create(api, "bob", "PRIVATE", ["carla", "paul"])
    assert [p["id"] for p in created["participants"]] == [
        user_id(api, u) for u in ["bob", "carla", "paul"]
    ]


async def test_client_may_create_a_confidential_conversation_of_its_company(api):
    created = await create(api, "dan", "CONFIDENTIAL", ["alice"], company="florist")
    assert (created["type"], created["company"]) == (
        "CONFIDENTIAL",
        {"id": company_id(api, "florist")},
    )


# -- eligibleParticipants -------------------------------------------------------------------------

ELIGIBLE_CASES = [
    ("alice", "COMPANY", "bakery", ["Bob Martin", "Carla Martin", "Paul Girard"]),
    ("alice", "CONFIDENTIAL", "bakery", ["Bob Martin", "Carla Martin", "Paul Girard"]),
    ("alice", "COMPANY", "garage", ["Dan Dupont", "Paul Girard"]),
    ("alice", "CONFIDENTIAL", "florist", ["Dan Dupont", "Paul Girard"]),
    ("alice", "PRIVATE", None, ["Bob Martin", "Carla Martin", "Dan Dupont", "Paul Girard"]),
    ("paul", "PRIVATE", None, ["Alice Roy", "Bob Martin", "Carla Martin", "Dan Dupont"]),
    ("bob", "COMPANY", "bakery", ["Alice Roy", "Carla Martin", "Paul Girard"]),
    ("bob", "CONFIDENTIAL", "bakery", ["Alice Roy", "Carla Martin", "Paul Girard"]),
    ("bob", "PRIVATE", None, ["Alice Roy", "Carla Martin", "Paul Girard"]),
    ("dan", "COMPANY", "garage", ["Alice Roy", "Paul Girard"]),
    ("dan", "PRIVATE", None, ["Alice Roy", "Paul Girard"]),
    ("olga", "PRIVATE", None, ["Oscar Rival"]),
    ("olga", "COMPANY", "rival", ["Oscar Rival"]),
    ("oscar", "PRIVATE", None, ["Olga Other"]),
]


@pytest.mark.parametrize(
    ("viewer", "kind", "company", "expected"),
    [pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[2] or 'none'}") for case in ELIGIBLE_CASES],
)
async def test_eligible_participants_are_exactly_the_designatable_users(
    api, viewer, kind, company, expected
):
    assert await eligible_names(api, viewer, kind, company) == expected


async def test_eligible_participants_reflect_company_membership_live(api, db):
    await db.users.update_one(
        {"_id": user_id(api, "dan")}, {"$addToSet": {"company_ids": company_id(api, "bakery")}}
    )
    assert await eligible_names(api, "alice", "COMPANY", "bakery") == [
        "Bob Martin",
        "Carla Martin",
        "Dan Dupont",
        "Paul Girard",
    ]
    assert await eligible_names(api, "bob", "PRIVATE") == [
        "Alice Roy",
        "Carla Martin",
        "Dan Dupont",
        "Paul Girard",
    ]


@pytest.mark.parametrize(
    ("viewer", "kind", "company", "expected"),
    [
        pytest.param("bob", "COMPANY", "garage", COMPANY_NOT_FOUND, id="client-other-company"),
        pytest.param("alice", "COMPANY", "rival", COMPANY_NOT_FOUND, id="other-firm-company"),
        pytest.param(
            "alice",
            "COMPANY",
            None,
            ("BAD_USER_INPUT", "companyId is required for a COMPANY conversation"),
            id="company-missing",
        ),
        pytest.param(
            "alice",
            "PRIVATE",
            "bakery",
            ("BAD_USER_INPUT", "a PRIVATE conversation is not linked to a company: omit companyId"),
            id="private-with-company",
        ),
    ],
)
async def test_eligible_participants_refuse_a_company_the_viewer_cannot_pick(
    api, viewer, kind, company, expected
):
    variables = {"type": kind, "companyId": company_id(api, company) if company else None}
    assert await single_error(api, ELIGIBLE, variables, as_=viewer) == expected


@pytest.mark.parametrize(
    ("viewer", "search", "expected"),
    [
        pytest.param("alice", "MARTIN", ["Bob Martin", "Carla Martin"], id="name-upper"),
        pytest.param("alice", "dUpOnT", ["Dan Dupont"], id="name-mixed-case"),
        pytest.param("alice", "BAKERY.TEST", ["Bob Martin", "Carla Martin"], id="email-upper"),
        pytest.param("bob", "acme.test", ["Alice Roy", "Paul Girard"], id="email-domain"),
        pytest.param("alice", "  paul  ", ["Paul Girard"], id="trimmed"),
        pytest.param("alice", "alice", [], id="never-the-viewer"),
        pytest.param("alice", "rival", [], id="never-another-firm"),
        pytest.param("bob", "dan", [], id="never-an-ineligible-client"),
    ],
)
async def test_eligible_participants_search_name_or_email_case_insensitively(
    api, viewer, search, expected
):
    assert await eligible_names(api, viewer, "PRIVATE", search=search) == expected


# -- The inbox ------------------------------------------------------------------------------------


async def test_inbox_is_ordered_by_last_activity_and_a_reply_moves_to_top(api):
    first = await create(api, "alice", "PRIVATE", ["paul"], subject="first")
    await create(api, "alice", "PRIVATE", ["paul"], subject="second")
    await create(api, "alice", "PRIVATE", ["paul"], subject="third")
    assert await inbox_subjects(api, "alice") == ["third", "second", "first"]

    await send(api, "paul", first["id"])
    assert await inbox_subjects(api, "alice") == ["first", "third", "second"]
    assert await inbox_subjects(api, "paul") == ["first", "third", "second"]


async def walk_inbox(api, user: str, size: int, **variables) -> tuple[list[str], list[tuple]]:
    """All ids walking the inbox `size` at a time, and each page's (count, next, previous)."""
    seen: list[str] = []
    pages: list[tuple] = []
    after = None
    while True:
        data = await api.gql(CONVERSATIONS, {"first": size, "after": after, **variables}, as_=user)
        connection = data["conversations"]
        edges, info = connection["edges"], connection["pageInfo"]
        seen += [e["node"]["id"] for e in edges]
        pages.append((len(edges), info["hasNextPage"], info["hasPreviousPage"]))
        if edges:
            assert info["startCursor"] == edges[0]["cursor"]
            assert info["endCursor"] == edges[-1]["cursor"]
        if not info["hasNextPage"]:
            return seen, pages
        after = info["endCursor"]


async def test_inbox_cursor_pagination_walks_all_without_duplicates_or_gaps(api):
    for i in range(7):
        await create(api, "alice", "PRIVATE", ["paul"], subject=f"c{i}")
    everything = await inbox_ids(api, "alice")
    assert len(everything) == 7
    seen, pages = await walk_inbox(api, "alice", 3)
    assert seen == everything
    assert pages == [(3, True, False), (3, True, True), (1, False, True)]


async def test_inbox_pagination_breaks_ties_of_equal_activity_by_id(api, db):
    acme, alice = api.ids["firms"]["acme"], user_id(api, "alice")
    docs = [
        conversation_doc(
            firm_id=acme, kind="PRIVATE", company_id=None, participant_ids=[alice], subject=f"t{i}"
        )
        for i in range(5)
    ]
    await db.conversations.insert_many(docs)
    seen, pages = await walk_inbox(api, "alice", 2)
    assert seen == sorted((d["_id"] for d in docs), reverse=True)
    assert pages == [(2, True, False), (2, True, True), (1, False, True)]


async def test_inbox_filters_by_type_and_company(api):
    await create(api, "alice", "COMPANY", ["paul"], company="bakery", subject="bakery shared")
    await create(api, "alice", "CONFIDENTIAL", ["paul"], company="bakery", subject="bakery secret")
    await create(api, "alice", "COMPANY", ["paul"], company="garage", subject="garage shared")
    await create(api, "alice", "PRIVATE", ["paul"], subject="private")
    bakery = company_id(api, "bakery")

    assert await inbox_subjects(api, "alice", type="COMPANY") == ["garage shared", "bakery shared"]
    assert await inbox_subjects(api, "alice", type="PRIVATE") == ["private"]
    assert await inbox_subjects(api, "alice", companyId=bakery) == [
        "bakery secret",
        "bakery shared",
    ]
    assert await inbox_subjects(api, "alice", type="CONFIDENTIAL", companyId=bakery) == [
        "bakery secret"
    ]
    assert await inbox_subjects(api, "alice", companyId=company_id(api, "florist")) == []


async def test_inbox_company_filter_of_another_firm_is_empty(api):
    await create(api, "alice", "COMPANY", ["paul"], company="bakery")
    assert await inbox_subjects(api, "alice", companyId=company_id(api, "rival")) == []


async def test_inbox_unread_only_lists_conversations_with_messages_of_others(api):
    one = await create(api, "alice", "PRIVATE", ["paul"], subject="one")
    await create(api, "alice", "PRIVATE", ["paul"], subject="two")
    await create(api, "alice", "PRIVATE", ["paul"], subject="three")
    assert await inbox_subjects(api, "paul", unread=True) == ["three", "two", "one"]
    assert await inbox_subjects(api, "alice", unread=True) == []

    await api.gql(MARK_READ, {"id": one["id"]}, as_="paul")
    assert await inbox_subjects(api, "paul", unread=True) == ["three", "two"]

    await send(api, "paul", one["id"])
    assert await inbox_subjects(api, "alice", unread=True) == ["one"]
    assert await inbox_subjects(api, "paul", unread=True) == ["three", "two"]


async def test_inbox_negative_page_size_is_bad_user_input(api):
    assert await single_error(api, CONVERSATIONS, {"first": -1}, as_="alice") == (
        "BAD_USER_INPUT",
        "first must not be negative",
    )


async def test_inbox_garbage_cursor_is_bad_user_input(api):
    assert await single_error(api, CONVERSATIONS, {"after": "garbage"}, as_="alice") == (
        "BAD_USER_INPUT",
        "after is not a valid cursor",
    )


# -- History --------------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def five_messages(api) -> str:
    """A conversation of alice and paul with messages m1..m5 (m1 the first)."""
    created = await create(api, "alice", "PRIVATE", ["paul"], body="<p>m1</p>")
    for i in range(2, 6):
        await send(api, "paul" if i % 2 else "alice", created["id"], f"<p>m{i}</p>")
    return created["id"]


async def history(api, conversation_id: str, **arguments):
    data = await api.gql(HISTORY, {"id": conversation_id, **arguments}, as_="alice")
    connection = data["conversation"]["messages"]
    edges, info = connection["edges"], connection["pageInfo"]
    if edges:
        assert (info["startCursor"], info["endCursor"]) == (edges[0]["cursor"], edges[-1]["cursor"])
    else:
        assert (info["startCursor"], info["endCursor"]) == (None, None)
    texts = [e["node"]["bodyText"] for e in edges]
    return texts, (info["hasNextPage"], info["hasPreviousPage"]), info


async def test_history_without_arguments_is_oldest_first_newest_last(api, five_messages):
    texts, flags, _ = await history(api, five_messages)
    assert (texts, flags) == (["m1", "m2", "m3", "m4", "m5"], (False, False))


async def test_history_first_after_walks_forward(api, five_messages):
    texts, flags, info = await history(api, five_messages, first=2)
    assert (texts, flags) == (["m1", "m2"], (True, False))
    texts, flags, info = await history(api, five_messages, first=2, after=info["endCursor"])
    assert (texts, flags) == (["m3", "m4"], (True, True))
    texts, flags, info = await history(api, five_messages, first=2, after=info["endCursor"])
    assert (texts, flags) == (["m5"], (False, True))


async def test_history_last_before_walks_backward(api, five_messages):
    texts, flags, info = await history(api, five_messages, last=2)
    assert (texts, flags) == (["m4", "m5"], (False, True))
    texts, flags, info = await history(api, five_messages, last=2, before=info["startCursor"])
    assert (texts, flags) == (["m2", "m3"], (True, True))
    texts, flags, info = await history(api, five_messages, last=2, before=info["startCursor"])
    assert (texts, flags) == (["m1"], (True, False))


async def test_history_refuses_first_and_last_together(api, five_messages):
    body = await api.raw(HISTORY, {"id": five_messages, "first": 1, "last": 1}, as_="alice")
    assert [(e["extensions"]["code"], e["message"]) for e in body["errors"]] == [
        ("BAD_USER_INPUT", "pass first or last, not both")
    ]


async def test_history_message_cursor_of_garbage_is_bad_user_input(api, five_messages):
    body = await api.raw(HISTORY, {"id": five_messages, "after": "%%%"}, as_="alice")
    assert [(e["extensions"]["code"], e["message"]) for e in body["errors"]] == [
        ("BAD_USER_INPUT", "after is not a valid cursor")
    ]


# -- Unread counts --------------------------------------------------------------------------------


async def test_unread_count_follows_messages_of_others_and_the_read_mark(api):
    created = await create(api, "alice", "PRIVATE", ["paul", "bob"])
    cid = created["id"]
    assert (await unread(api, "alice", cid), await unread(api, "paul", cid)) == (0, 1)

    marked = await api.gql(MARK_READ, {"id": cid}, as_="paul")
    assert marked["markConversationRead"] == {"id": cid, "unreadCount": 0}
    assert await unread(api, "paul", cid) == 0

    await send(api, "alice", cid)
    assert await unread(api, "paul", cid) == 1
    assert await unread(api, "bob", cid) == 2


async def test_own_messages_never_count_as_unread(api):
    created = await create(api, "alice", "PRIVATE", ["paul"])
    for _ in range(3):
        await send(api, "alice", created["id"])
    assert await unread(api, "alice", created["id"]) == 0
    assert await unread(api, "paul", created["id"]) == 4


async def test_replying_marks_the_conversation_read_for_the_author(api):
    created = await create(api, "alice", "PRIVATE", ["paul"])
    await send(api, "alice", created["id"])
    await send(api, "paul", created["id"])
    assert await unread(api, "paul", created["id"]) == 0
    assert await unread(api, "alice", created["id"]) == 1


async def test_non_participant_reader_has_its_own_unread_count(api):
    created = await create(api, "paul", "COMPANY", ["carla"], company="bakery")
    assert await unread(api, "alice", created["id"]) == 1  # alice reads through her favorite
    await api.gql(MARK_READ, {"id": created["id"]}, as_="alice")
    assert await unread(api, "alice", created["id"]) == 0
    assert await unread(api, "carla", created["id"]) == 1


# -- clientMessageId: safe retries ----------------------------------------------------------------


async def test_same_client_message_id_creates_the_conversation_once(api, db):
    first = await create(api, "alice", "PRIVATE", ["paul"], subject="A", client_message_id="k-1")
    again = await create(api, "alice", "PRIVATE", ["paul"], subject="B", client_message_id="k-1")
    assert again == first
    assert again["subject"] == "A"
    assert await stored_counts(db, api) == (1, 1)


async def test_client_message_ids_are_per_user(api, db):
    mine = await create(api, "alice", "PRIVATE", ["paul"], client_message_id="k-1")
    theirs = await create(api, "paul", "PRIVATE", ["alice"], client_message_id="k-1")
    assert mine["id"] != theirs["id"]
    assert await stored_counts(db, api) == (2, 2)


async def test_same_client_message_id_sends_the_message_once(api, db):
    created = await create(api, "alice", "PRIVATE", ["paul"])
    first = await send(api, "paul", created["id"], "<p>once</p>", key="r-1")
    again = await send(api, "paul", created["id"], "<p>twice?</p>", key="r-1")
    assert again == first
    assert again["bodyText"] == "once"
    assert await db.messages.count_documents({"conversation_id": created["id"]}) == 2
    stored = await db.conversations.find_one({"_id": created["id"]})
    assert (stored["message_count"], stored["last_message_id"]) == (2, first["id"])


async def test_client_message_id_reused_on_another_conversation_is_bad_user_input(api, db):
    one = await create(api, "alice", "PRIVATE", ["paul"])
    two = await create(api, "alice", "PRIVATE", ["bob"])
    await send(api, "alice", one["id"], key="r-1")
    variables = {
        "input": {"conversationId": two["id"], "body": "<p>x</p>", "clientMessageId": "r-1"}
    }
    assert await single_error(api, SEND, variables, as_="alice") == (
        "BAD_USER_INPUT",
        "clientMessageId was already used for a message of another conversation",
    )
    assert await db.messages.count_documents({"conversation_id": two["id"]}) == 1


async def test_client_message_id_of_a_reply_reused_for_a_new_conversation_is_bad_user_input(
    api, db
):
    one = await create(api, "alice", "PRIVATE", ["paul"])
    await send(api, "alice", one["id"], key="k-shared")
    variables = {"input": create_input(api, "PRIVATE", ["bob"], client_message_id="k-shared")}
    assert await single_error(api, CREATE, variables, as_="alice") == (
        "BAD_USER_INPUT",
        "clientMessageId was already used for a message of another conversation",
    )
    assert await stored_counts(db, api) == (1, 2)


async def test_client_message_id_of_a_new_conversation_reused_for_a_reply_is_bad_user_input(
    api, db
):
    created = await create(api, "alice", "PRIVATE", ["paul"], client_message_id="k-shared")
    variables = {
        "input": {
            "conversationId": created["id"],
            "body": "<p>x</p>",
            "clientMessageId": "k-shared",
        }
    }
    assert await single_error(api, SEND, variables, as_="alice") == (
        "BAD_USER_INPUT",
        "clientMessageId was already used for a new conversation",
    )
    assert await stored_counts(db, api) == (1, 1)


async def test_concurrent_retries_of_a_new_conversation_create_it_once(api, db):
    variables = {"input": create_input(api, "PRIVATE", ["paul"], client_message_id="k-race")}
    answers = await asyncio.gather(*[api.raw(CREATE, variables, as_="alice") for _ in range(3)])
    assert [a.get("errors") for a in answers] == [None, None, None]
    assert len({a["data"]["createConversation"]["id"] for a in answers}) == 1
    assert await stored_counts(db, api) == (1, 1)


async def test_concurrent_retries_of_a_reply_store_it_once_and_keep_the_last_message(api, db):
    created = await create(api, "alice", "PRIVATE", ["paul"])
    message = {"conversationId": created["id"], "body": "<p>once</p>", "clientMessageId": "r-race"}
    answers = await asyncio.gather(
        *[api.raw(SEND, {"input": message}, as_="alice") for _ in range(3)]
    )
    assert [a.get("errors") for a in answers] == [None, None, None]
    sent = {a["data"]["sendMessage"]["id"] for a in answers}
    assert len(sent) == 1
    assert await db.messages.count_documents({"conversation_id": created["id"]}) == 2
    query = "query($id: ID!) { conversation(id: $id) { lastMessage { id } } }"
    data = await api.gql(query, {"id": created["id"]}, as_="alice")
    assert data["conversation"]["lastMessage"] == {"id": sent.pop()}
    stored = await db.conversations.find_one({"_id": created["id"]})
    assert stored["message_count"] == 2


async def test_client_message_id_replay_never_answers_a_conversation_the_viewer_cannot_read(
    api, db
):
    created = await create(
        api,
        "bob",
        "CONFIDENTIAL",
        ["alice"],
        company="bakery",
        subject="Payroll secrets",
        client_message_id="k-1",
    )
    await update_user(db, api.http.app, user_id(api, "bob"), {"$set": {"company_ids": []}})
    assert await read_single(api, "bob", created["id"]) is None

    query = """mutation($input: CreateConversationInput!) {
      createConversation(input: $input) { id subject lastMessageAt participants { name } } }"""
    variables = {"input": create_input(api, "PRIVATE", ["alice"], client_message_id="k-1")}
    body = await api.raw(query, variables, as_="bob")
    answered = (body.get("data") or {}).get("createConversation") or {}
    assert answered.get("id") != created["id"]
    assert "Payroll secrets" not in str(body)


# -- Replies --------------------------------------------------------------------------------------


async def test_reply_validation_uses_the_body_rules(api, db):
    created = await create(api, "alice", "PRIVATE", ["paul"])
    for body, expected in [("", BODY_EMPTY), ("a" * (100 * 1024 + 1), BODY_TOO_LARGE)]:
        variables = {"input": {"conversationId": created["id"], "body": body}}
        assert await single_error(api, SEND, variables, as_="paul") == expected
    assert await db.messages.count_documents({"conversation_id": created["id"]}) == 1
