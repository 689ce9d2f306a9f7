"""An external fuzzer against the live server (issue 6): schemathesis generates GraphQL queries
and mutations from the schema the server introspects (valid ones, and invalid ones the server
must refuse), and sends them with a valid token.

`messager serve` runs as a real subprocess on the session's database server (a database of this
test), with the standard directory imported, so that the token names a real user. No answer may
be a 5xx or carry an unmasked failure (`INTERNAL_SERVER_ERROR`), and every error of a resolver
must be one of the product's expected failures (SPEC §9 codes). Schemathesis' own
`not_a_server_error` check is not used as is: it takes every resolver error whose code is not
`BAD_USER_INPUT` (`NOT_FOUND` of a made-up id, say) for a server error. The run is bounded twice:
a small number of examples, and a wall-clock budget after which the remaining examples are
skipped (they cost nothing).
"""

from __future__ import annotations

import asyncio
import json
import time

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from graphql_api.auth import TokenService
from graphql_api.embedded import free_port
from graphql_api.settings import Settings
from tests.cli_helpers import cli_env
from tests.server_process import serving

MAX_EXAMPLES = 300  # valid and invalid operations together
BUDGET_SECONDS = 20.0  # of sending generated operations; the whole test stays under ~30 s
REQUEST_TIMEOUT = 15.0
EXPECTED_CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "PAYLOAD_TOO_LARGE",
    "RATE_LIMITED",
}


def problem_of(status: int, text: str) -> str | None:
    """What is wrong with one answer, or None."""
    if status >= 500 or "INTERNAL_SERVER_ERROR" in text:
        return "a server error"
    if status != 200:
        return None  # refused before GraphQL (400 of a malformed request): the client's fault
    body = json.loads(text)
    if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
        return "not a GraphQL answer"
    for error in body.get("errors") or []:
        if "Cannot return null for non-nullable field" in error["message"]:
            return "an answer that breaks the schema"
        if "path" in error and (error.get("extensions") or {}).get("code") not in EXPECTED_CODES:
            return "a resolver error that is not an expected failure"
    return None


def fuzz(url: str, token: str) -> tuple[int, list[str]]:
    """Send generated operations; answers how many were sent and every problem seen."""
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.graphql.from_url(url, headers=headers, timeout=REQUEST_TIMEOUT)
    stop_at = time.monotonic() + BUDGET_SECONDS
    sent: list[str] = []
    problems: list[str] = []

    with requests.Session() as session:

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # no shrinking: a failure is reported as sent
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same operations on every run
        )
        @given(
            case=schema.as_strategy(GenerationMode.POSITIVE)
            | schema.as_strategy(GenerationMode.NEGATIVE)
        )
        def send(case) -> None:
            if time.monotonic() > stop_at:
                return
            response = case.call(session=session, headers=headers, timeout=REQUEST_TIMEOUT)
            sent.append(case.operation.label)
            problem = problem_of(response.status_code, response.text)
            if problem is not None:
                problems.append(
                    f"{problem}: {case.body!r} -> {response.status_code} {response.text[:500]}"
                )

        send()
    return len(sent), problems


async def test_generated_operations_never_answer_a_server_error(tmp_path, mongo_uri, ids):
    env = {**cli_env(tmp_path / "data", mongo_uri), "MESSAGER_RATE_LIMITS": "false"}
    token = TokenService(Settings(jwt_secret=env["MESSAGER_JWT_SECRET"])).issue(
        ids["users"]["alice"]
    )
    port = free_port()
    with serving(env=env, log_dir=tmp_path, name="serve", port=port) as serve:
        await serve.until_healthy()
        count, problems = await asyncio.to_thread(fuzz, f"{serve.url}/graphql", token)
        log = serve.output()
    assert problems == [], "\n".join(problems)
    assert count >= 100, f"only {count} operations were sent"
    assert "unexpected error" not in log, log
