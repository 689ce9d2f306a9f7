"""Running the `messager` command as a user would, in a subprocess, and watching processes go."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import JWT_SECRET

COMMAND_TIMEOUT = 60.0


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
