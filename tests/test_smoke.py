"""The viewer query answers for a token of the standard directory."""


async def test_viewer_answers_name_kind_and_favorites(api):
    data = await api.gql("{ viewer { name kind favoriteCompanies { name } } }", as_="alice")
    assert data["viewer"] == {
        "name": "Alice Roy",
        "kind": "PRACTITIONER",
        "favoriteCompanies": [{"name": "Martin Bakery"}],
    }
