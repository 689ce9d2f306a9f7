"""Bearer JWT authentication (SPEC §10): only a valid, unexpired token of an existing user works.

Every refusal is the GraphQL error `UNAUTHENTICATED` with a message the person can act on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.settings import Settings
from tests.conftest import JWT_SECRET

VIEWER = "{ viewer { name } }"
INVALID = "token is invalid"


async def refusal(api, headers: dict[str, str] | None = None, path: str = "/graphql"):
    """(code, message) of the single error a viewer query answers with these headers."""
    response = await api.http.post(path, json={"query": VIEWER}, headers=headers or {})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["data"] is None, body
    assert len(body["errors"]) == 1, body
    error = body["errors"][0]
    return error["extensions"]["code"], error["message"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_token(
    header: dict[str, Any], claims: dict[str, Any], key: bytes | None, digest: str = "sha256"
) -> str:
    """A JWT built by hand, signed with HMAC under `key` (unsigned when None)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), getattr(hashlib, digest)).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims_for(user_id: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user_id, "iat": now, "exp": now + 600, **extra}


async def test_valid_token_authenticates_as_its_user(api):
    data = await api.gql("{ viewer { id name email kind } }", as_="bob")
    assert data["viewer"] == {
        "id": api.ids["users"]["bob"],
        "name": "Bob Martin",
        "email": "bob@bakery.test",
        "kind": "CLIENT",
    }


async def test_request_without_authorization_header_is_unauthenticated(api):
    assert await refusal(api) == (
        "UNAUTHENTICATED",
        "missing Authorization header: send 'Bearer <token>'",
    )


async def test_garbage_token_is_unauthenticated(api):
    assert await refusal(api, bearer("not.a.jwt")) == ("UNAUTHENTICATED", INVALID)


@pytest.mark.parametrize("header", ["Basic YWxpY2U6c2VjcmV0", "Token abc", "Bearer", "Bearer   "])
async def test_authorization_header_other_than_bearer_token_is_unauthenticated(api, header):
    assert await refusal(api, {"Authorization": header}) == (
        "UNAUTHENTICATED",
        "Authorization header must be 'Bearer <token>'",
    )


async def test_bearer_scheme_is_case_insensitive(api):
    response = await api.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"bearer {api.token('bob')}"}
    )
    assert await response.json() == {"data": {"viewer": {"name": "Bob Martin"}}}


async def test_token_signed_with_another_secret_is_unauthenticated(api):
    token = jwt.encode(claims_for(api.ids["users"]["alice"]), "another-secret" * 4, "HS256")
    assert await refusal(api, bearer(token)) == ("UNAUTHENTICATED", INVALID)


async def test_token_with_tampered_subject_is_unauthenticated(api):
    header, _, signature = api.token("bob").split(".")
    forged_claims = b64url(json.dumps(claims_for(api.ids["users"]["alice"])).encode())
    assert await refusal(api, bearer(f"{header}.{forged_claims}.{signature}")) == (
        "UNAUTHENTICATED",
        INVALID,
    )


async def test_expired_token_is_unauthenticated(api, settings):
    token = TokenService(settings).issue(api.ids["users"]["alice"], ttl_seconds=-60)
    assert await refusal(api, bearer(token)) == (
        "UNAUTHENTICATED",
        "token has expired; sign in again",
    )


async def test_token_without_expiry_is_unauthenticated(api):
    token = jwt.encode({"sub": api.ids["users"]["alice"]}, JWT_SECRET, "HS256")
    assert await refusal(api, bearer(token)) == ("UNAUTHENTICATED", INVALID)


async def test_token_without_subject_is_unauthenticated(api):
    token = jwt.encode({"exp": int(time.time()) + 600}, JWT_SECRET, "HS256")
    assert await refusal(api, bearer(token)) == ("UNAUTHENTICATED", INVALID)


async def test_unsigned_alg_none_token_is_unauthenticated(api):
    token = hand_made_token(
        {"alg": "none", "typ": "JWT"}, claims_for(api.ids["users"]["alice"]), None
    )
    assert await refusal(api, bearer(token)) == ("UNAUTHENTICATED", INVALID)


async def test_token_signed_with_another_algorithm_is_unauthenticated(api):
    claims = claims_for(api.ids["users"]["alice"])
    token = hand_made_token({"alg": "HS512", "typ": "JWT"}, claims, JWT_SECRET.encode(), "sha512")
    assert await refusal(api, bearer(token)) == ("UNAUTHENTICATED", INVALID)


async def test_token_of_a_deleted_user_is_unauthenticated(api, db):
    token = api.token("carla")
    await db.users.delete_one({"_id": api.ids["users"]["carla"]})
    assert await refusal(api, bearer(token)) == (
        "UNAUTHENTICATED",
        "the token's user no longer exists",
    )


@pytest.mark.parametrize("subject", ['{"$ne": null}', "not-an-id", "0123456789abcdef01234567"])
async def test_token_whose_subject_names_no_user_is_unauthenticated(api, subject):
    token = jwt.encode(claims_for(subject), JWT_SECRET, "HS256")
    assert await refusal(api, bearer(token)) == (
        "UNAUTHENTICATED",
        "the token's user no longer exists",
    )


@pytest.mark.parametrize("parameter", ["token", "access_token", "authorization"])
async def test_token_in_the_query_string_is_ignored(api, parameter):
    path = f"/graphql?{parameter}={api.token('alice')}"
    assert await refusal(api, path=path) == (
        "UNAUTHENTICATED",
        "missing Authorization header: send 'Bearer <token>'",
    )


async def test_token_in_a_get_query_string_is_ignored(api):
    response = await api.http.get(
        "/graphql",
        params={"query": VIEWER, "access_token": api.token("alice")},
        headers={"Accept": "application/json"},
    )
    body = await response.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_token_in_a_cookie_is_ignored(api):
    assert await refusal(api, {"Cookie": f"token={api.token('alice')}"}) == (
        "UNAUTHENTICATED",
        "missing Authorization header: send 'Bearer <token>'",
    )


async def test_introspection_works_without_a_token(api):
    body = await api.raw("{ __schema { queryType { name } mutationType { name } } }")
    assert body == {
        "data": {"__schema": {"queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}}}
    }


async def test_generated_secret_is_kept_in_the_data_directory_for_the_owner_only(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", jwt_secret=None, jwt_public_key=None)
    issued_by_first_process = TokenService(settings).issue("0123456789abcdef01234567")
    secret_file = tmp_path / "data" / "jwt_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert TokenService(settings).verify(issued_by_first_process) == "0123456789abcdef01234567"


# -- RS256 tokens of an identity provider -------------------------------------------------------


@pytest.fixture(scope="module")
def identity_provider_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem_of(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
async def rs256_http(aiohttp_client, settings, identity_provider_key, ids):
    public_pem = public_pem_of(identity_provider_key)
    rs256 = settings.model_copy(update={"jwt_secret": None, "jwt_public_key": public_pem})
    return await aiohttp_client(init_app(rs256)), public_pem


ISSUER = "https://login.provider.test/acme"
AUDIENCE = "messager-api"


@pytest.fixture
async def bound_rs256_http(aiohttp_client, settings, identity_provider_key, ids):
    """RS256 mode bound to one issuer and audience (MESSAGER_JWT_ISSUER / _AUDIENCE)."""
    bound = Settings(
        mongodb_uri=settings.mongodb_uri,
        data_dir=settings.data_dir,
        jwt_public_key=public_pem_of(identity_provider_key),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    return await aiohttp_client(init_app(bound))


async def viewer_or_error(http, token: str) -> object:
    response = await http.post("/graphql", json={"query": VIEWER}, headers=bearer(token))
    body = await response.json()
    if body.get("errors"):
        return [(e["extensions"]["code"], e["message"]) for e in body["errors"]]
    return body["data"]["viewer"]["name"]


async def test_rs256_mode_accepts_a_token_naming_the_configured_issuer_and_audience(
    bound_rs256_http, identity_provider_key, ids
):
    # Issue 20: every token carrying `aud` (most providers' tokens) was refused.
    claims = claims_for(ids["users"]["dan"], iss=ISSUER, aud=["other-api", AUDIENCE])
    token = jwt.encode(claims, identity_provider_key, "RS256")
    assert await viewer_or_error(bound_rs256_http, token) == "Dan Dupont"


@pytest.mark.parametrize(
    "binding",
    [
        pytest.param({"iss": ISSUER, "aud": "another-api"}, id="another-audience"),
        pytest.param({"iss": "https://login.provider.test/other", "aud": AUDIENCE}, id="issuer"),
        pytest.param({"iss": ISSUER}, id="no-audience"),
        pytest.param({"aud": AUDIENCE}, id="no-issuer"),
    ],
)
async def test_rs256_mode_refuses_a_token_meant_for_another_application(
    bound_rs256_http, identity_provider_key, ids, binding
):
    # Issue 20: the provider's tokens for any of its applications were accepted.
    token = jwt.encode(claims_for(ids["users"]["dan"], **binding), identity_provider_key, "RS256")
    assert await viewer_or_error(bound_rs256_http, token) == [("UNAUTHENTICATED", INVALID)]


async def test_hs256_tokens_carry_and_need_the_configured_issuer_and_audience(
    aiohttp_client, settings, ids
):
    bound = settings.model_copy(update={"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE})
    http = await aiohttp_client(init_app(bound))
    issued = TokenService(bound).issue(ids["users"]["dan"])
    assert await viewer_or_error(http, issued) == "Dan Dupont"
    unbound = TokenService(settings).issue(ids["users"]["dan"])
    assert await viewer_or_error(http, unbound) == [("UNAUTHENTICATED", INVALID)]


async def test_rs256_mode_accepts_a_token_of_the_identity_provider(
    rs256_http, identity_provider_key, ids
):
    http, _ = rs256_http
    token = jwt.encode(claims_for(ids["users"]["dan"]), identity_provider_key, "RS256")
    response = await http.post("/graphql", json={"query": VIEWER}, headers=bearer(token))
    assert await response.json() == {"data": {"viewer": {"name": "Dan Dupont"}}}


async def test_rs256_mode_refuses_an_hs256_token_signed_with_the_public_key(rs256_http, ids):
    http, public_pem = rs256_http
    token = hand_made_token(
        {"alg": "HS256", "typ": "JWT"}, claims_for(ids["users"]["dan"]), public_pem.encode()
    )
    response = await http.post("/graphql", json={"query": VIEWER}, headers=bearer(token))
    body = await response.json()
    assert body["data"] is None
    assert [(e["extensions"]["code"], e["message"]) for e in body["errors"]] == [
        ("UNAUTHENTICATED", INVALID)
    ]
