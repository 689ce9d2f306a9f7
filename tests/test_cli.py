"""The `messager` command line (SPEC §10), run as a real subprocess.

Most commands get `MONGODB_URI` (the test's database on the session's embedded server), so they do
not start a server of their own; the tests of the embedded server itself leave it unset. Every
process is killed in a `finally`, and waits poll with a deadline instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from graphql_api.auth import TokenService
from graphql_api.embedded import free_port
from graphql_api.settings import Settings
from schema.schema import export_sdl
from tests.conftest import JWT_SECRET

COMMAND_TIMEOUT = 60.0
START_TIMEOUT = 60.0
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy

SPEC_DIRECTORY: dict[str, Any] = {
    "firms": [{"key": "acme", "name": "Acme Accounting"}],
    "companies": [{"key": "bakery", "firm": "acme", "name": "Martin Bakery"}],
    "users": [
        {
            "key": "alice",
            "firm": "acme",
            "kind": "PRACTITIONER",
            "name": "Alice Roy",
            "email": "alice@acme.test",
            "favorites": ["bakery"],
        },
        {
            "key": "bob",
            "firm": "acme",
            "kind": "CLIENT",
            "name": "Bob Martin",
            "email": "bob@bakery.test",
            "companies": ["bakery"],
            "favorites": ["bakery"],
        },
    ],
}


# -- Running the command line -----------------------------------------------------------------


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli_env(data_dir: Path, mongodb_uri: str | None, jwt_secret: str | None = JWT_SECRET):
    """The test process's environment without any Messager setting, plus these."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name != "MONGODB_URI" and not name.startswith("MESSAGER_")
    }
    env["MESSAGER_DATA_DIR"] = str(data_dir)
    if mongodb_uri:
        env["MONGODB_URI"] = mongodb_uri
    if jwt_secret:
        env["MESSAGER_JWT_SECRET"] = jwt_secret
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "graphql_api", *args]


async def messager(*args: str, env: dict[str, str], cwd: Path) -> Result:
    """Run one `messager` command to its end (from an async test)."""
    process = await asyncio.create_subprocess_exec(
        *command(*args),
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


def messager_sync(*args: str, env: dict[str, str], cwd: Path) -> Result:
    """Run one `messager` command to its end (from a sync test)."""
    done = subprocess.run(
        command(*args),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


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


def process_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_until_gone(pid: int) -> bool:
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return False


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


# -- export-schema ------------------------------------------------------------------------------


async def test_export_schema_writes_the_schema_sdl(tmp_path, mongo_uri):
    env = cli_env(tmp_path / "data", mongo_uri)
    result = await messager("export-schema", "--output", "exported.graphql", env=env, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "wrote exported.graphql\n")
    assert (tmp_path / "exported.graphql").read_text(encoding="utf-8") == export_sdl()


# -- the embedded server ------------------------------------------------------------------------


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
        assert lines[-1] == (
            f"GraphiQL: http://127.0.0.1:{port}/graphql  (set header Authorization: Bearer <token>)"
        )
        # The start-up banner says where emails go: without an SMTP server, a Maildir.
        mail = (tmp_path / "data" / "mail").resolve()
        assert lines[-2] == (
            f"Emails: written to the Maildir {mail} (set MESSAGER_SMTP_URL to send them)"
        )
        tokens = {}
        for line in lines[1:-2]:
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
