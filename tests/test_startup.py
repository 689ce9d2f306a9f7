"""Start-up failures (SPEC §19): `messager serve` says what to change in one line on stderr,
prints nothing before it (no demo token, no banner) and no stack trace, and exits 1."""

from __future__ import annotations

import socket

import pytest

from graphql_api.embedded import free_port
from tests.cli_helpers import cli_env, messager_sync


def assert_one_line_failure(result, *expected: str) -> None:
    assert result.returncode == 1, result
    assert result.stdout == "", result  # no demo tokens, no banner before the failure
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("messager: "), lines
    for text in expected:
        assert text in lines[0], lines
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_said_in_one_line_before_anything_else(tmp_path, mongo_uri):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = messager_sync(
            "serve",
            "--demo",
            "--port",
            str(port),
            env=cli_env(tmp_path / "data", mongo_uri),
            cwd=tmp_path,
        )
    assert_one_line_failure(result, f"port {port} on 127.0.0.1 is already in use", "--port")


def test_an_unreachable_database_is_said_in_one_line_without_its_password(tmp_path):
    uri = f"mongodb://messager:s3cret@127.0.0.1:{free_port()}/messager"
    result = messager_sync(
        "serve",
        "--demo",
        "--port",
        str(free_port()),
        env=cli_env(tmp_path / "data", uri),
        cwd=tmp_path,
    )
    assert_one_line_failure(
        result, "cannot reach the database at mongodb://127.0.0.1:", "MONGODB_URI"
    )
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MESSAGER_PORT", "eighty", "bad setting MESSAGER_PORT=eighty"),
        ("MESSAGER_PORT", "70000", "MESSAGER_PORT=70000: Input should be less than or equal to"),
        ("MESSAGER_CORS_ORIGINS", "*", "MESSAGER_CORS_ORIGINS=*: '*' is not an exact origin"),
        ("MESSAGER_LOG_FORMAT", "xml", "MESSAGER_LOG_FORMAT=xml: Input should be 'text' or 'json'"),
    ],
)
def test_a_bad_setting_is_named_in_one_line(tmp_path, mongo_uri, name, value, expected):
    env = {**cli_env(tmp_path / "data", mongo_uri), name: value}
    result = messager_sync("serve", "--demo", "--port", str(free_port()), env=env, cwd=tmp_path)
    assert_one_line_failure(result, expected)
