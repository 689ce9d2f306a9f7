"""The `messager` command line (SPEC §10), run as a real subprocess.

Most commands get `MONGODB_URI` (the test's database on the session's embedded server), so they do
not start a server of their own; the tests of the embedded server itself leave it unset. Every
process is killed in a `finally`, and waits poll with a deadline instead of sleeping.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from graphql_api.auth import TokenService
from graphql_api.conversations.models import (
    ConversationType,
    new_conversation_doc,
    new_message_doc,
)
from graphql_api.directory.service import Directory
from graphql_api.embedded import free_port
from graphql_api.ids import new_id
from graphql_api.search.service import Search
from graphql_api.settings import Settings
from schema.schema import export_sdl
from tests.cli_helpers import (
    COMMAND_TIMEOUT,
    SPEC_DIRECTORY,
    cli_env,
    command,
    messager,
    messager_sync,
    process_gone,
    wait_until_gone,
    write_json,
)
from tests.conftest import JWT_SECRET

START_TIMEOUT = 60.0
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


# -- Running the command line -----------------------------------------------------------------


async def snapshot(db) -> dict[str, list[dict[str, Any]]]:
    """Every directory document, in a stable order."""
    return {
        name: await db[name].find().sort("_id", 1).to_list()
        for name in ("firms", "companies", "users")
    }


# -- A running `messager serve` -----------------------------------------------------------------


def start_serve(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """`messager serve ARGS` with stdout and stderr in files of `cwd` (never a full pipe)."""
    with (cwd / "serve.out").open("wb") as out, (cwd / "serve.err").open("wb") as err:
        return subprocess.Popen(
            command("serve", *args),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def serve_output(cwd: Path) -> str:
    return (cwd / "serve.out").read_text() + (cwd / "serve.err").read_text()


def wait_until_healthy(process: subprocess.Popen[bytes], port: int, cwd: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{serve_output(cwd)}")
        try:
            with LOCAL.open(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"serve did not answer /healthz in {START_TIMEOUT:.0f} s:\n{serve_output(cwd)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=COMMAND_TIMEOUT)


def graphql(port: int, token: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with LOCAL.open(request, timeout=COMMAND_TIMEOUT) as answer:
        return json.loads(answer.read())


# -- import -------------------------------------------------------------------------------------


async def test_import_prints_the_id_maps_of_the_imported_directory(tmp_path, mongo_uri, db):
    file = write_json(tmp_path / "directory.json", SPEC_DIRECTORY)
    result = await messager(
        "import", str(file), env=cli_env(tmp_path / "data", mongo_uri), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    alice = await db.users.find_one({"email": "alice@acme.test"})
    bob = await db.users.find_one({"email": "bob@bakery.test"})
    bakery = await db.companies.find_one({"key": "bakery"})
    acme = await db.firms.find_one({"key": "acme"})
    assert printed == {
        "users": {"alice": alice["_id"], "bob": bob["_id"]},
        "companies": {"bakery": bakery["_id"]},
        "firms": {"acme": acme["_id"]},
    }
    assert (bob["name"], bob["kind"], bob["company_ids"], bob["favorite_company_ids"]) == (
        "Bob Martin",
        "CLIENT",
        [bakery["_id"]],
        [bakery["_id"]],
    )


async def test_importing_the_same_file_twice_changes_nothing(tmp_path, mongo_uri, db):
    file = write_json(tmp_path / "directory.json", SPEC_DIRECTORY)
    env = cli_env(tmp_path / "data", mongo_uri)
    first = await messager("import", str(file), env=env, cwd=tmp_path)
    after_first = await snapshot(db)
    second = await messager("import", str(file), env=env, cwd=tmp_path)
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout)
    assert await snapshot(db) == after_first
    assert [len(docs) for docs in after_first.values()] == [1, 1, 2]


# A file that would rename acme and its bakery and add a firm with a company and a user, with one
# bad entry at users[1] (key 'bob'): nothing of it may be written.
def file_with_bad_user(bad_user: dict[str, Any]) -> dict[str, Any]:
    return {
        "firms": [{"key": "acme", "name": "Acme Renamed"}, {"key": "beta", "name": "Beta"}],
        "companies": [
            {"key": "bakery", "firm": "acme", "name": "Bakery Renamed"},
            {"key": "shop", "firm": "beta", "name": "Beta Shop"},
        ],
        "users": [
            {
                "key": "zoe",
                "firm": "beta",
                "kind": "PRACTITIONER",
                "name": "Zoe Beta",
                "email": "zoe@beta.test",
                "favorites": ["shop"],
            },
            bad_user,
        ],
    }


BOB = {
    "key": "bob",
    "firm": "acme",
    "kind": "CLIENT",
    "name": "Bob Martin",
    "email": "bob@bakery.test",
    "companies": ["bakery"],
    "favorites": ["bakery"],
}

BAD_USERS = {
    "unknown-firm": ({**BOB, "firm": "nowhere"}, "unknown firm 'nowhere'"),
    "client-favorite-not-its-company": (
        {**BOB, "favorites": ["bakery", "garage"]},
        "favorites: a client may only favorite its own companies ('garage' is not one)",
    ),
    "unknown-company": (
        {**BOB, "companies": ["bakery", "mill"], "favorites": []},
        "companies: unknown company 'mill' in its firm",
    ),
    "duplicate-email-in-file": (
        {**BOB, "email": "ZOE@beta.test"},
        "email 'zoe@beta.test' is also used by user 'zoe'",
    ),
    "email-of-another-user-in-database": (
        {**BOB, "key": "bobby", "email": "alice@acme.test"},
        "email 'alice@acme.test' belongs to another user",
    ),
    "practitioner-with-companies": (
        {**BOB, "kind": "PRACTITIONER", "favorites": []},
        "companies: only clients belong to companies",
    ),
    "missing-email": (
        {k: v for k, v in BOB.items() if k != "email"},
        "email: Field required",
    ),
}


@pytest.mark.parametrize(
    ("bad_user", "problem"), list(BAD_USERS.values()), ids=list(BAD_USERS.keys())
)
async def test_invalid_import_file_names_the_bad_entry_and_imports_nothing(
    tmp_path, mongo_uri, db, ids, bad_user, problem
):
    file = write_json(tmp_path / "directory.json", file_with_bad_user(bad_user))
    before = await snapshot(db)
    result = await messager(
        "import", str(file), env=cli_env(tmp_path / "data", mongo_uri), cwd=tmp_path
    )
    key = bad_user["key"]
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"messager: {file}: invalid directory file:\n"
        f"  users[1] (key {key!r}): {problem}\n"
        "nothing was imported\n"
    )
    assert await snapshot(db) == before


async def test_import_file_that_is_not_json_is_refused(tmp_path, mongo_uri, db):
    file = tmp_path / "directory.json"
    file.write_text('{"firms": [', encoding="utf-8")
    result = await messager(
        "import", str(file), env=cli_env(tmp_path / "data", mongo_uri), cwd=tmp_path
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"messager: {file}: not valid JSON (line 1, column 12: Expecting value)\n"
    )
    assert [len(docs) for docs in (await snapshot(db)).values()] == [0, 0, 0]


# -- token --------------------------------------------------------------------------------------


async def test_token_authenticates_as_the_user_with_that_email(tmp_path, mongo_uri, api, settings):
    env = cli_env(tmp_path / "data", mongo_uri)
    result = await messager("token", "bob@bakery.test", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert TokenService(settings).verify(token) == api.ids["users"]["bob"]
    response = await api.http.post(
        "/graphql",
        json={"query": "{ viewer { name email } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert await response.json() == {
        "data": {"viewer": {"name": "Bob Martin", "email": "bob@bakery.test"}}
    }


async def test_token_for_an_unknown_email_fails(tmp_path, mongo_uri, ids):
    env = cli_env(tmp_path / "data", mongo_uri)
    result = await messager("token", "nobody@acme.test", env=env, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "messager: no user with email 'nobody@acme.test'\n"


async def test_token_in_rs256_mode_explains_in_one_line_that_the_provider_issues_tokens(
    tmp_path, mongo_uri, ids
):
    # Issue 20: it printed a traceback. The provider alone holds the private key.
    env = cli_env(tmp_path / "data", mongo_uri, jwt_secret=None)
    env["MESSAGER_JWT_PUBLIC_KEY"] = "-----BEGIN PUBLIC KEY-----\n(the provider's)\n-----END"
    result = await messager("token", "bob@bakery.test", env=env, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "messager: tokens come from the identity provider in RS256 mode "
        "(MESSAGER_JWT_PUBLIC_KEY is set): messager cannot sign them without the provider's "
        "private key\n"
    )


# -- reindex-search -----------------------------------------------------------------------------


async def test_reindex_search_makes_messages_stored_before_search_findable(
    tmp_path, mongo_uri, db, ids
):
    alice, paul = ids["users"]["alice"], ids["users"]["paul"]
    conversation_id, message_id = new_id(), new_id()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    # A message as stored before search existed: no search fields.
    await db.messages.insert_one(
        new_message_doc(
            message_id=message_id,
            firm_id=ids["firms"]["acme"],
            conversation_id=conversation_id,
            seq=1,
            author_id=alice,
            html="<p>Old ledger</p>",
            text="Old ledger",
            attachment_ids=[],
            created_at=at,
            recipients=[paul],
            client_message_id=None,
        )
    )
    await db.conversations.insert_one(
        new_conversation_doc(
            conversation_id=conversation_id,
            firm_id=ids["firms"]["acme"],
            kind=ConversationType.PRIVATE,
            company_id=None,
            subject="Archives",
            participant_ids=[alice, paul],
            created_by=alice,
            created_at=at,
            first_message_id=message_id,
            client_visible_by=[],
            client_message_id=None,
        )
    )
    reader = await Directory(db).user_by_id(paul)
    assert (await Search(db).search(reader, "ledger archives")).items == []
    result = await messager(
        "reindex-search", env=cli_env(tmp_path / "data", mongo_uri), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "of 1 conversations" in result.stdout
    found = (await Search(db).search(reader, "ledger archives")).items
    assert [hit.message.id for hit in found] == [message_id]


# -- export-schema ------------------------------------------------------------------------------


async def test_export_schema_writes_the_schema_sdl(tmp_path, mongo_uri):
    env = cli_env(tmp_path / "data", mongo_uri)
    result = await messager("export-schema", "--output", "exported.graphql", env=env, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "wrote exported.graphql\n")
    assert (tmp_path / "exported.graphql").read_text(encoding="utf-8") == export_sdl()


# -- the embedded server ------------------------------------------------------------------------


@pytest.mark.embedded_only
def test_commands_without_mongodb_uri_share_the_data_directorys_database(tmp_path):
    data_dir = tmp_path / "data"
    env = cli_env(data_dir, mongodb_uri=None)
    file = write_json(tmp_path / "directory.json", SPEC_DIRECTORY)
    imported = messager_sync("import", str(file), env=env, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    token = messager_sync("token", "alice@acme.test", env=env, cwd=tmp_path)
    assert token.returncode == 0, token.stderr
    alice_id = json.loads(imported.stdout)["users"]["alice"]
    settings = Settings(data_dir=data_dir, jwt_secret=JWT_SECRET)
    assert TokenService(settings).verify(token.stdout.strip()) == alice_id
    assert not (data_dir / "embedded.json").exists()


@pytest.mark.embedded_only
def test_commands_use_the_embedded_server_of_a_running_serve(tmp_path):
    data_dir = tmp_path / "data"
    env = cli_env(data_dir, mongodb_uri=None, jwt_secret=None)  # secret kept in the data dir
    port = free_port()
    serve = start_serve("--port", str(port), env=env, cwd=tmp_path)
    try:
        wait_until_healthy(serve, port, tmp_path)
        recorded = json.loads((data_dir / "embedded.json").read_text())
        assert recorded["owner_pid"] == serve.pid

        file = write_json(tmp_path / "directory.json", SPEC_DIRECTORY)
        imported = messager_sync("import", str(file), env=env, cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
        assert "embedded database listening" not in imported.stderr  # started no server
        token = messager_sync("token", "bob@bakery.test", env=env, cwd=tmp_path)
        assert token.returncode == 0, token.stderr

        answer = graphql(port, token.stdout.strip(), "{ viewer { name } }")
        assert answer == {"data": {"viewer": {"name": "Bob Martin"}}}
    finally:
        stop(serve)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.embedded_only
def test_stopping_serve_stops_its_embedded_server_and_forgets_it(tmp_path, stop_signal):
    data_dir = tmp_path / "data"
    port = free_port()
    serve = start_serve("--port", str(port), env=cli_env(data_dir, None), cwd=tmp_path)
    try:
        wait_until_healthy(serve, port, tmp_path)
        server_pid = json.loads((data_dir / "embedded.json").read_text())["server_pid"]
        assert not process_gone(server_pid)
        serve.send_signal(stop_signal)
        assert serve.wait(timeout=COMMAND_TIMEOUT) == 0, serve_output(tmp_path)
    finally:
        stop(serve)
    assert process_gone(server_pid)
    assert not (data_dir / "embedded.json").exists()


@pytest.mark.embedded_only
def test_killed_serve_leaves_no_embedded_server_behind(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    serve = start_serve("--port", str(port), env=cli_env(data_dir, None), cwd=tmp_path)
    try:
        wait_until_healthy(serve, port, tmp_path)
        server_pid = json.loads((data_dir / "embedded.json").read_text())["server_pid"]
        serve.send_signal(signal.SIGKILL)
        serve.wait(timeout=COMMAND_TIMEOUT)
    finally:
        stop(serve)
    assert wait_until_gone(server_pid), f"embedded server {server_pid} outlived its serve"


# -- serve --demo -------------------------------------------------------------------------------


def test_serve_demo_prints_a_working_token_per_demo_user_and_the_graphiql_address(
    tmp_path, mongo_uri
):
    port = free_port()
    serve = start_serve(
        "--demo", "--port", str(port), env=cli_env(tmp_path / "data", mongo_uri), cwd=tmp_path
    )
    try:
        wait_until_healthy(serve, port, tmp_path)
        lines = (tmp_path / "serve.out").read_text().splitlines()
        assert lines[0] == "Demo firm loaded. Tokens (valid 12 hours), one per demo user:"
        graphiql_at = next(i for i, line in enumerate(lines) if line.startswith("GraphiQL: "))
        assert lines[graphiql_at] == (
            f"GraphiQL: http://127.0.0.1:{port}/graphql  (set header Authorization: Bearer <token>)"
        )
        banner = lines[graphiql_at + 1 :]
        assert any(
            line.startswith("CORS: no other origin may call the API from a browser")
            for line in banner
        )
        # The start-up banner says where emails go: without an SMTP server, a Maildir.
        mail = (tmp_path / "data" / "mail").resolve()
        emails_at = lines.index(
            f"Emails: written to the Maildir {mail} (set MESSAGER_SMTP_URL to send them)"
        )
        tokens = {}
        for line in lines[1:emails_at]:
            email, kind, token = line.split()
            tokens[email] = token
            answer = graphql(port, token, "{ viewer { email kind } }")
            assert answer == {"data": {"viewer": {"email": email, "kind": kind}}}
        assert sorted(tokens) == [
            "alice@demo.test",
            "bob@bakery.test",
            "carla@bakery.test",
            "dan@garage.test",
            "paul@demo.test",
        ]
        alice = graphql(
            port, tokens["alice@demo.test"], "{ viewer { name kind favoriteCompanies { name } } }"
        )
        assert alice == {
            "data": {
                "viewer": {
                    "name": "Alice Roy",
                    "kind": "PRACTITIONER",
                    "favoriteCompanies": [{"name": "Garage Dupont"}, {"name": "Martin Bakery"}],
                }
            }
        }
    finally:
        stop(serve)
