"""The HTTP surface (SPEC §9, §10): health, readiness, request ids, GraphiQL, CORS, masking."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from graphql_api.app import init_app
from graphql_api.embedded import free_port

REQUEST_ID = re.compile(r"[0-9a-f]{32}")
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.fixture
async def app_without_database(aiohttp_client, settings):
    """The app pointed at a port where nothing listens (the database is down)."""
    # timeoutMS keeps the start-up's failed attempt short; /readyz sets its own timeout.
    uri = f"mongodb://127.0.0.1:{free_port()}/messager?timeoutMS=500"
    return await aiohttp_client(init_app(settings.model_copy(update={"mongodb_uri": uri})))


@pytest.fixture
async def cors_http(aiohttp_client, settings):
    app = init_app(settings.model_copy(update={"cors_origins": ["https://app.example"]}))
    return await aiohttp_client(app)


async def test_healthz_answers_ok(http):
    response = await http.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_answers_ready_when_the_database_answers(http):
    response = await http.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready"}


async def test_readyz_answers_503_when_the_database_is_down(app_without_database):
    response = await app_without_database.get("/readyz")
    assert response.status == 503
    assert await response.json() == {
        "status": "unavailable",
        "reason": "database does not answer",
    }


async def test_process_starts_and_is_healthy_while_the_database_is_down(app_without_database):
    response = await app_without_database.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_every_response_carries_its_own_request_id(http):
    responses = [
        await http.get("/healthz"),
        await http.get("/readyz"),
        await http.post("/graphql", json={"query": "{ __typename }"}),
        await http.get("/graphql", headers={"Accept": "text/html"}),
    ]
    request_ids = [r.headers.get("X-Request-Id", "") for r in responses]
    assert all(REQUEST_ID.fullmatch(rid) for rid in request_ids), request_ids
    assert len(set(request_ids)) == len(request_ids)


async def test_graphiql_is_served_to_a_browser(http):
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "GraphiQL" in await response.text()


# -- Security headers (issue 20) ---------------------------------------------------------------


async def test_graphiql_page_may_not_be_framed_and_runs_only_its_own_scripts(http):
    # Issue 20: GraphiQL had no CSP, frame-ancestors or Referrer-Policy: any site could frame it.
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self'"
    # Every script is a file of this server (graphql_api/graphiql): none inline, none elsewhere.
    assert re.findall(r"<script>(.*?)</script>", await response.text(), re.DOTALL) == []
    assert policy["script-src"].split() == ["'self'"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/graphql", 200), ("GET", "/healthz", 200), ("GET", "/nowhere", 404)],
)
async def test_api_answers_load_nothing_and_may_not_be_framed(http, method, path, status):
    response = await http.request(method, path, json={"query": "{ __typename }"})
    assert response.status == status
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_server_header_names_no_software_versions(http):
    # Issue 20: it said "Python/3.11 aiohttp/3.14.5".
    response = await http.get("/healthz")
    assert response.headers["Server"] == "messager"


async def test_answer_to_a_malformed_request_names_no_software_versions(http):
    # aiohttp writes this 400 itself, before the application sees the request.
    reader, writer = await asyncio.open_connection(http.host, http.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    await writer.drain()
    head = (await reader.read(4096)).split(b"\r\n\r\n")[0].decode()
    writer.close()
    assert head.startswith("HTTP/1.0 400 Bad Request")
    assert "\r\nServer: messager\r\n" in head + "\r\n"


async def test_cors_preflight_from_an_allowed_origin_is_allowed(cors_http):
    response = await cors_http.options(
        "/graphql", headers={"Origin": "https://app.example", **PREFLIGHT}
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower().split(",")
    assert sorted(allowed_headers) == ["authorization", "content-type"]  # those requested


async def test_cors_preflight_from_another_origin_is_refused(cors_http):
    response = await cors_http.options(
        "/graphql", headers={"Origin": "https://evil.example", **PREFLIGHT}
    )
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_response_to_another_origin_has_no_allow_origin(cors_http):
    response = await cors_http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_allowed_origin_may_read_the_request_id_and_the_headers_it_acts_on(cors_http):
    response = await cors_http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://app.example"}
    )
    assert await response.json() == {"data": {"__typename": "Query"}}
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    exposed = response.headers["Access-Control-Expose-Headers"].split(",")
    assert {"X-Request-Id", "Retry-After", "Content-Disposition"} <= set(exposed)


async def test_no_cross_origin_access_without_configured_origins(http):
    response = await http.options(
        "/graphql", headers={"Origin": "https://app.example", **PREFLIGHT}
    )
    assert "Access-Control-Allow-Origin" not in response.headers


async def break_alices_firm_reference(db, ids):
    """Store a firm reference that the database refuses in a query: every company query fails."""
    await db.users.update_one({"_id": ids["users"]["alice"]}, {"$set": {"firm_id": {"$foo": 1}}})


async def test_unexpected_error_is_masked_with_the_request_id(api, db):
    await break_alices_firm_reference(db, api.ids)
    response = await api.http.post(
        "/graphql", json={"query": "{ companies { name } }"}, headers=api.headers("alice")
    )
    assert response.status == 200
    request_id = response.headers["X-Request-Id"]
    assert await response.json() == {
        "data": None,
        "errors": [
            {
                "message": f"Internal server error (request id {request_id}).",
                "locations": [{"line": 1, "column": 3}],
                "path": ["companies"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
            }
        ],
    }


async def test_unexpected_error_is_logged_with_the_request_id_and_its_cause(api, db, caplog):
    await break_alices_firm_reference(db, api.ids)
    with caplog.at_level(logging.ERROR, logger="graphql_api.errors"):
        response = await api.http.post(
            "/graphql", json={"query": "{ companies { name } }"}, headers=api.headers("alice")
        )
    request_id = response.headers["X-Request-Id"]
    [record] = [r for r in caplog.records if r.name == "graphql_api.errors"]
    assert record.getMessage() == f"unexpected error (request {request_id}) at ['companies']"
    assert record.exc_info is not None
    assert "$foo" in str(record.exc_info[1])


async def test_expected_errors_are_not_masked(api):
    body = await api.raw('mutation { addFavoriteCompany(companyId: "nope") { name } }', as_="alice")
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        ("company not found", {"code": "NOT_FOUND"})
    ]


async def test_validation_errors_are_not_masked(api):
    body = await api.raw("{ viewer { qqq } }", as_="alice")
    assert [e["message"] for e in body["errors"]] == ["Cannot query field 'qqq' on type 'User'."]
