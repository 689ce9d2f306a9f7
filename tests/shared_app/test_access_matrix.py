"""The access rule (SPEC §3) as a full matrix, on every path: `conversation(id)`, the inbox
(`conversations`) and replying (`sendMessage`).

Every case creates one conversation through `createConversation` (alice, practitioner, favorite
bakery, creates it; company bakery for COMPANY and CONFIDENTIAL), then sets the viewer's favorites
and asks, as the viewer, for the conversation by each path. Viewers: paul (practitioner) and carla
(client of bakery) of the same firm; olga (practitioner) and oscar (client) of the other firm, who
get, as the case says, the claims of corrupted data (listed as participant, bakery among their
favorites, bakery among oscar's companies) to show that the firm alone shuts them out. A client with
bakery among its favorites (bob) designated as participant is what makes a COMPANY conversation
client-visible; that dimension exists for COMPANY only.
"""

from __future__ import annotations

from itertools import product

import pytest
from bson import ObjectId

from tests.conversation_helpers import (
    ADD_FAVORITE,
    CONVERSATION,
    MARK_READ,
    NOT_FOUND_CONVERSATION,
    REMOVE_FAVORITE,
    SEND,
    access_paths,
    all_paths,
    company_id,
    create,
    inbox_ids,
    insert_user,
    read_single,
    reply_outcome,
    set_companies,
    set_favorites,
    single_error,
    user_id,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


TYPES = ("COMPANY", "CONFIDENTIAL", "PRIVATE")
VIEWERS = {
    ("practitioner", True): "paul",
    ("client", True): "carla",
    ("practitioner", False): "olga",
    ("client", False): "oscar",
}


def may_read(
    kind: str,
    viewer: str,
    participant: bool,
    favorite: bool,
    favorite_client_designated: bool,
    same_firm: bool,
) -> bool:
    """The SPEC §3 table, written out plainly (the client viewer here is a client of C)."""
    if not same_firm:
        return False
    if participant:
        return True
    if kind == "PRIVATE":
        return False
    if viewer == "practitioner":
        return favorite
    client_visible = kind == "COMPANY" and favorite_client_designated
    return favorite and client_visible


def _case_id(kind, viewer, participant, favorite, favorite_client, same_firm) -> str:
    parts = [
        kind,
        viewer,
        "participant" if participant else "outsider",
        "fav" if favorite else "nofav",
    ]
    if kind == "COMPANY":
        parts.append("clientvisible" if favorite_client else "notclientvisible")
    parts.append("samefirm" if same_firm else "otherfirm")
    return "-".join(parts)


# Client-visible is a dimension of COMPANY conversations only (CONFIDENTIAL and PRIVATE never are:
# see test_confidential_is_never_client_visible).
MATRIX = [
    pytest.param(*case, id=_case_id(*case))
    for case in product(
        TYPES,
        ("practitioner", "client"),
        (True, False),
        (True, False),
        (True, False),
        (True, False),
    )
    if case[0] == "COMPANY" or not case[4]
]


@pytest.mark.parametrize(
    ("kind", "viewer_kind", "participant", "favorite", "favorite_client", "same_firm"), MATRIX
)
async def test_access_rule_matrix(
    api, db, kind, viewer_kind, participant, favorite, favorite_client, same_firm
):
    viewer = VIEWERS[(viewer_kind, same_firm)]
    filler = await insert_user(db, api.ids["firms"]["acme"], "zed")
    participants = [filler]
    if participant and same_firm:
        participants.append(user_id(api, viewer))
    if favorite_client:
        participants.append(user_id(api, "bob"))
    company = None if kind == "PRIVATE" else "bakery"
    created = await create(api, "alice", kind, [], company=company, participant_ids=participants)
    conversation_id = created["id"]
    assert created["clientVisible"] is (kind == "COMPANY" and favorite_client)

    if not same_firm:
        # Corrupted data at its worst: the other firm's user listed, favoriting, belonging.
        if participant:
            await db.conversations.update_one(
                {"_id": conversation_id}, {"$push": {"participant_ids": user_id(api, viewer)}}
            )
        if viewer_kind == "client":
            await set_companies(db, api, viewer, ["rival", "bakery"])
    await set_favorites(db, api, viewer, ["bakery"] if favorite else [])

    readable = may_read(kind, viewer_kind, participant, favorite, favorite_client, same_firm)
    single = await read_single(api, viewer, conversation_id)
    assert (single["id"] if single else None) == (conversation_id if readable else None)
    assert await inbox_ids(api, viewer) == ([conversation_id] if readable else [])
    outcome = await reply_outcome(api, viewer, conversation_id)
    assert outcome == ("sent" if readable else NOT_FOUND_CONVERSATION)


# -- Favorites are read live ----------------------------------------------------------------------


async def test_practitioner_favorite_changes_take_effect_at_once_on_every_path(api):
    bakery = company_id(api, "bakery")
    company = await create(api, "paul", "COMPANY", ["carla"], company="bakery", subject="Shared")
    confidential = await create(
        api, "paul", "CONFIDENTIAL", ["carla"], company="bakery", subject="Confidential"
    )
    private = await create(api, "paul", "PRIVATE", ["carla"], subject="Private")
    ids = [company["id"], confidential["id"]]

    async def alice_paths():
        return [await access_paths(api, "alice", i) for i in [*ids, private["id"]]]

    assert await alice_paths() == [all_paths(i, True) for i in ids] + [
        all_paths(private["id"], False)
    ]

    await api.gql(REMOVE_FAVORITE, {"id": bakery}, as_="alice")
    assert await alice_paths() == [all_paths(i, False) for i in [*ids, private["id"]]]

    await api.gql(ADD_FAVORITE, {"id": bakery}, as_="alice")
    assert await alice_paths() == [all_paths(i, True) for i in ids] + [
        all_paths(private["id"], False)
    ]


async def test_participant_keeps_access_without_the_favorite(api):
    created = await create(api, "paul", "CONFIDENTIAL", ["alice"], company="bakery")
    await api.gql(REMOVE_FAVORITE, {"id": company_id(api, "bakery")}, as_="alice")
    assert await access_paths(api, "alice", created["id"]) == all_paths(created["id"], True)


# -- Client-visible is decided when participants are designated -----------------------------------


async def test_client_visible_is_fixed_when_the_favorite_client_is_designated(api):
    bakery = company_id(api, "bakery")
    created = await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    assert created["clientVisible"] is True

    await api.gql(REMOVE_FAVORITE, {"id": bakery}, as_="bob")
    assert (await read_single(api, "alice", created["id"]))["clientVisible"] is True

    # carla, a client of bakery but not a participant, reads it once she favorites bakery.
    assert await access_paths(api, "carla", created["id"]) == all_paths(created["id"], False)
    await api.gql(ADD_FAVORITE, {"id": bakery}, as_="carla")
    assert await access_paths(api, "carla", created["id"]) == all_paths(created["id"], True)


async def test_later_favorite_of_a_client_participant_does_not_make_it_client_visible(api):
    bakery = company_id(api, "bakery")
    created = await create(api, "alice", "COMPANY", ["carla"], company="bakery")
    assert created["clientVisible"] is False

    await api.gql(ADD_FAVORITE, {"id": bakery}, as_="carla")
    assert (await read_single(api, "carla", created["id"]))["clientVisible"] is False
    # bob favorites bakery but is no participant: not client-visible, so not readable.
    assert await access_paths(api, "bob", created["id"]) == all_paths(created["id"], False)


async def test_client_creator_with_the_favorite_makes_it_client_visible(api, db):
    created = await create(api, "bob", "COMPANY", ["alice"], company="bakery")
    assert created["clientVisible"] is True
    await set_favorites(db, api, "carla", ["bakery"])
    assert await access_paths(api, "carla", created["id"]) == all_paths(created["id"], True)


async def test_client_creator_without_the_favorite_does_not_make_it_client_visible(api):
    # dan's favorite is garage, not florist.
    created = await create(api, "dan", "COMPANY", ["alice"], company="florist")
    assert created["clientVisible"] is False


async def test_practitioner_participant_with_the_favorite_does_not_make_it_client_visible(api):
    created = await create(api, "paul", "COMPANY", ["alice", "carla"], company="bakery")
    assert created["clientVisible"] is False


async def test_confidential_is_never_client_visible(api, db):
    created = await create(api, "alice", "CONFIDENTIAL", ["bob"], company="bakery")
    assert created["clientVisible"] is False
    await set_favorites(db, api, "carla", ["bakery"])
    assert await access_paths(api, "carla", created["id"]) == all_paths(created["id"], False)


# -- Leaving a client file ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["COMPANY", "CONFIDENTIAL"])
async def test_client_removed_from_the_company_loses_it_even_as_participant(api, db, kind):
    created = await create(api, "alice", kind, ["bob"], company="bakery")
    assert await access_paths(api, "bob", created["id"]) == all_paths(created["id"], True)

    await set_companies(db, api, "bob", [])  # bob keeps bakery among his favorites
    assert await access_paths(api, "bob", created["id"]) == all_paths(created["id"], False)

    await set_companies(db, api, "bob", ["bakery"])
    assert await access_paths(api, "bob", created["id"]) == all_paths(created["id"], True)


async def test_client_removed_from_the_company_loses_client_visible_conversations(api, db):
    created = await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    await set_favorites(db, api, "carla", ["bakery"])
    assert await access_paths(api, "carla", created["id"]) == all_paths(created["id"], True)
    await set_companies(db, api, "carla", [])
    assert await access_paths(api, "carla", created["id"]) == all_paths(created["id"], False)


async def test_client_removed_from_every_company_keeps_private_conversations(api, db):
    created = await create(api, "alice", "PRIVATE", ["bob"])
    await set_companies(db, api, "bob", [])
    assert await access_paths(api, "bob", created["id"]) == all_paths(created["id"], True)


# -- No existence leak ----------------------------------------------------------------------------


async def test_unreadable_ids_answer_exactly_like_absent_ones(api):
    unreadable = (await create(api, "alice", "PRIVATE", ["paul"]))["id"]
    other_firm = (await create(api, "olga", "PRIVATE", ["oscar"]))["id"]
    absent = str(ObjectId())
    malformed = "not-an-id"
    for conversation_id in [unreadable, other_firm, absent, malformed]:
        assert await read_single(api, "bob", conversation_id) is None
        assert await reply_outcome(api, "bob", conversation_id) == NOT_FOUND_CONVERSATION
        assert (
            await single_error(api, MARK_READ, {"id": conversation_id}, as_="bob")
            == NOT_FOUND_CONVERSATION
        )
    assert await inbox_ids(api, "bob") == []


async def test_refused_reply_stores_nothing(api, db):
    created = await create(api, "alice", "PRIVATE", ["paul"])
    assert await reply_outcome(api, "bob", created["id"]) == NOT_FOUND_CONVERSATION
    assert await db.messages.count_documents({"conversation_id": created["id"]}) == 1
    stored = await db.conversations.find_one({"_id": created["id"]})
    assert stored["message_count"] == 1


async def test_conversation_query_of_an_unreadable_id_has_no_error(api):
    created = await create(api, "alice", "CONFIDENTIAL", ["paul"], company="bakery")
    body = await api.raw(CONVERSATION, {"id": created["id"]}, as_="bob")
    assert body == {"data": {"conversation": None}}


async def test_other_firm_user_cannot_reply_even_with_a_valid_looking_body(api):
    created = await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    body = await api.raw(
        SEND, {"input": {"conversationId": created["id"], "body": "<p>hi</p>"}}, as_="olga"
    )
    assert body["data"] is None
    assert [(e["extensions"]["code"], e["message"]) for e in body["errors"]] == [
        NOT_FOUND_CONVERSATION
    ]
