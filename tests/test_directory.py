"""Companies and favorites (SPEC §2): who sees which companies, and who may favorite what.

The standard directory (`tests/factories.py`): firm acme has companies Martin Bakery (bakery),
Garage Dupont (garage) and Fleurs de Lys (florist); practitioners alice (favorite: bakery) and paul
(no favorites); clients bob (bakery; favorite bakery), carla (bakery; none) and dan (garage,
florist; favorite garage). Firm other has Rival Bakery (rival), olga and oscar.
"""

from __future__ import annotations

import pytest

COMPANIES = """
query($search: String, $fav: Boolean) { companies(search: $search, favoritesOnly: $fav) { name } }
"""
COMPANIES_WITH_FLAG = "{ companies { name isFavorite } }"
VIEWER_FAVORITES = "{ viewer { favoriteCompanies { name } } }"
ADD = "mutation($id: ID!) { addFavoriteCompany(companyId: $id) { id name isFavorite } }"
REMOVE = "mutation($id: ID!) { removeFavoriteCompany(companyId: $id) { id name isFavorite } }"

ACME_COMPANIES = ["Fleurs de Lys", "Garage Dupont", "Martin Bakery"]


async def company_names(api, user, search=None, favorites_only=None):
    data = await api.gql(COMPANIES, {"search": search, "fav": favorites_only}, as_=user)
    return [c["name"] for c in data["companies"]]


async def favorite_names(api, user):
    data = await api.gql(VIEWER_FAVORITES, as_=user)
    return [c["name"] for c in data["viewer"]["favoriteCompanies"]]


async def single_error(api, query, variables, user):
    body = await api.raw(query, variables, as_=user)
    assert body["data"] is None, body
    assert len(body["errors"]) == 1, body
    error = body["errors"][0]
    return error["extensions"]["code"], error["message"]


# -- Which companies a user sees ------------------------------------------------------------------


async def test_practitioner_sees_every_company_of_its_firm_sorted_by_name(api):
    assert await company_names(api, "paul") == ACME_COMPANIES


async def test_practitioner_never_sees_another_firms_companies(api):
    assert await company_names(api, "olga") == ["Rival Bakery"]
    assert "Rival Bakery" not in await company_names(api, "alice")


async def test_client_sees_only_its_own_companies(api):
    assert await company_names(api, "dan") == ["Fleurs de Lys", "Garage Dupont"]
    assert await company_names(api, "bob") == ["Martin Bakery"]


async def test_search_is_a_case_insensitive_substring_of_the_name(api):
    assert await company_names(api, "alice", search="GARAGE") == ["Garage Dupont"]
    assert await company_names(api, "alice", search="aR") == ["Garage Dupont", "Martin Bakery"]
    assert await company_names(api, "alice", search="akEr") == ["Martin Bakery"]


async def test_search_stays_within_what_the_viewer_may_see(api):
    assert await company_names(api, "alice", search="bakery") == ["Martin Bakery"]
    assert await company_names(api, "dan", search="bakery") == []


async def test_search_treats_regex_metacharacters_literally(api):
    assert await company_names(api, "alice", search=".*") == []
    assert await company_names(api, "alice", search="(") == []
    assert await company_names(api, "alice", search="[") == []
    assert await company_names(api, "alice", search="^Martin") == []


async def test_blank_search_lists_everything(api):
    assert await company_names(api, "alice", search="   ") == ACME_COMPANIES


async def test_search_longer_than_100_characters_is_bad_user_input(api):
    assert await single_error(api, COMPANIES, {"search": "a" * 101}, "alice") == (
        "BAD_USER_INPUT",
        "search must be at most 100 characters",
    )


async def test_search_of_exactly_100_characters_is_accepted(api):
    assert await company_names(api, "alice", search="a" * 100) == []


async def test_favorites_only_lists_the_viewers_favorites(api):
    assert await company_names(api, "alice", favorites_only=True) == ["Martin Bakery"]
    assert await company_names(api, "dan", favorites_only=True) == ["Garage Dupont"]
    assert await company_names(api, "paul", favorites_only=True) == []


async def test_favorites_only_combines_with_search(api):
    assert await company_names(api, "alice", search="garage", favorites_only=True) == []
    assert await company_names(api, "alice", search="martin", favorites_only=True) == [
        "Martin Bakery"
    ]


async def test_is_favorite_is_the_viewers_own_flag(api):
    alice = await api.gql(COMPANIES_WITH_FLAG, as_="alice")
    paul = await api.gql(COMPANIES_WITH_FLAG, as_="paul")
    assert alice["companies"] == [
        {"name": "Fleurs de Lys", "isFavorite": False},
        {"name": "Garage Dupont", "isFavorite": False},
        {"name": "Martin Bakery", "isFavorite": True},
    ]
    assert paul["companies"] == [
        {"name": "Fleurs de Lys", "isFavorite": False},
        {"name": "Garage Dupont", "isFavorite": False},
        {"name": "Martin Bakery", "isFavorite": False},
    ]


async def test_client_user_companies_lists_its_companies_by_name(api):
    data = await api.gql("{ viewer { companies { id name } } }", as_="dan")
    assert data["viewer"]["companies"] == [
        {"id": api.ids["companies"]["florist"], "name": "Fleurs de Lys"},
        {"id": api.ids["companies"]["garage"], "name": "Garage Dupont"},
    ]


async def test_practitioner_user_companies_is_empty(api):
    data = await api.gql("{ viewer { kind companies { name } } }", as_="alice")
    assert data["viewer"] == {"kind": "PRACTITIONER", "companies": []}


# -- Changing favorites ---------------------------------------------------------------------------


async def test_practitioner_can_favorite_any_company_of_its_firm(api):
    florist = api.ids["companies"]["florist"]
    data = await api.gql(ADD, {"id": florist}, as_="alice")
    assert data["addFavoriteCompany"] == {
        "id": florist,
        "name": "Fleurs de Lys",
        "isFavorite": True,
    }
    assert await favorite_names(api, "alice") == ["Fleurs de Lys", "Martin Bakery"]
    assert await company_names(api, "alice", favorites_only=True) == [
        "Fleurs de Lys",
        "Martin Bakery",
    ]


async def test_practitioner_can_remove_a_favorite(api):
    bakery = api.ids["companies"]["bakery"]
    data = await api.gql(REMOVE, {"id": bakery}, as_="alice")
    assert data["removeFavoriteCompany"] == {
        "id": bakery,
        "name": "Martin Bakery",
        "isFavorite": False,
    }
    assert await favorite_names(api, "alice") == []
    assert await company_names(api, "alice", favorites_only=True) == []


async def test_adding_a_favorite_twice_keeps_it_once(api):
    bakery = api.ids["companies"]["bakery"]
    await api.gql(ADD, {"id": bakery}, as_="alice")
    data = await api.gql(ADD, {"id": bakery}, as_="alice")
    assert data["addFavoriteCompany"]["isFavorite"] is True
    assert await favorite_names(api, "alice") == ["Martin Bakery"]


async def test_removing_a_company_that_is_not_a_favorite_is_harmless(api):
    garage = api.ids["companies"]["garage"]
    data = await api.gql(REMOVE, {"id": garage}, as_="alice")
    assert data["removeFavoriteCompany"] == {
        "id": garage,
        "name": "Garage Dupont",
        "isFavorite": False,
    }
    assert await favorite_names(api, "alice") == ["Martin Bakery"]


async def test_favorites_are_per_user(api):
    await api.gql(ADD, {"id": api.ids["companies"]["garage"]}, as_="paul")
    assert await favorite_names(api, "paul") == ["Garage Dupont"]
    assert await favorite_names(api, "alice") == ["Martin Bakery"]


async def test_client_can_favorite_its_own_company(api):
    bakery = api.ids["companies"]["bakery"]
    data = await api.gql(ADD, {"id": bakery}, as_="carla")
    assert data["addFavoriteCompany"] == {"id": bakery, "name": "Martin Bakery", "isFavorite": True}
    assert await favorite_names(api, "carla") == ["Martin Bakery"]


async def test_client_can_remove_its_own_favorite(api):
    await api.gql(REMOVE, {"id": api.ids["companies"]["garage"]}, as_="dan")
    assert await favorite_names(api, "dan") == []


async def test_client_cannot_favorite_a_company_it_does_not_belong_to(api):
    garage = api.ids["companies"]["garage"]
    assert await single_error(api, ADD, {"id": garage}, "bob") == (
        "NOT_FOUND",
        "company not found",
    )
    assert await favorite_names(api, "bob") == ["Martin Bakery"]


@pytest.mark.parametrize("user", ["alice", "bob"])
async def test_another_firms_company_is_not_found(api, db, user):
    rival = api.ids["companies"]["rival"]
    assert await single_error(api, ADD, {"id": rival}, user) == ("NOT_FOUND", "company not found")
    assert await single_error(api, REMOVE, {"id": rival}, user) == (
        "NOT_FOUND",
        "company not found",
    )
    doc = await db.users.find_one({"_id": api.ids["users"][user]})
    assert rival not in doc["favorite_company_ids"]


async def test_another_firms_company_answers_like_an_unknown_id(api):
    unknown = "0123456789abcdef01234567"
    rival = api.ids["companies"]["rival"]
    assert await single_error(api, ADD, {"id": rival}, "alice") == await single_error(
        api, ADD, {"id": unknown}, "alice"
    )


@pytest.mark.parametrize(
    "bad_id",
    ['{"$ne": null}', "not-an-id", "", "0123456789ABCDEF01234567", "0123456789abcdef0123456"],
    ids=["operator", "text", "empty", "uppercase-hex", "23-hex"],
)
async def test_malformed_company_id_is_not_found(api, bad_id):
    assert await single_error(api, ADD, {"id": bad_id}, "alice") == (
        "NOT_FOUND",
        "company not found",
    )


async def test_uppercased_id_of_an_existing_company_is_not_found(api):
    bakery = api.ids["companies"]["bakery"].upper()
    assert await single_error(api, REMOVE, {"id": bakery}, "alice") == (
        "NOT_FOUND",
        "company not found",
    )
    assert await favorite_names(api, "alice") == ["Martin Bakery"]
