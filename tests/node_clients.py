"""Node.js clients driven by the tests: the `graphql-ws` reference client and a real browser.

The npm packages of `tests/js` (pinned in its package-lock.json) are installed with `npm ci` when
`tests/js/node_modules` lacks one, so a fresh machine needs only Node.js and npm (and, for the
browser test, Debian's `chromium`: `.ci/run` installs it). A script prints one JSON object per
line on stdout; `node_script` runs one and collects those lines as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).parent / "js"
PACKAGES = ("graphql", "graphql-ws", "ws", "playwright-core")
NPM_TIMEOUT = 300.0
CLIENT_TIMEOUT = 20.0  # the script's own bound on a run
WAIT = 15.0  # our bound on waiting for one line of it

# -- Installing the packages ---------------------------------------------------------------------


def _installed() -> bool:
    return all((JS_DIR / "node_modules" / name / "package.json").is_file() for name in PACKAGES)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH: these tests need Node.js 20+ and npm")
    return path


def installed_node() -> str:
    """The `node` executable, with tests/js's packages installed (`npm ci`) when missing."""
    node = _tool("node")
    if _installed():
        return node
    # Several pytest runs may share this checkout: install under a lock, then check again.
    key = hashlib.sha256(str(JS_DIR.resolve()).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"messager-tests-js-{key}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed():
            command = [_tool("npm"), "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund"]
            try:
                done = subprocess.run(
                    command,
                    cwd=JS_DIR,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=NPM_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                pytest.fail(f"`{' '.join(command)}` did not finish in {NPM_TIMEOUT:.0f} s: {exc}")
            if done.returncode != 0 or not _installed():
                pytest.fail(
                    f"`{' '.join(command)}` failed (exit {done.returncode}); the Node.js client "
                    f"tests need the npm registry once to install {', '.join(PACKAGES)}:\n"
                    f"{done.stdout}\n{done.stderr}"
                )
    return node


# -- Running a script ------------------------------------------------------------------------------


@dataclass
class NodeScript:
    """One run of a script of tests/js; `lines` collects its stdout, parsed, as they arrive."""

    process: asyncio.subprocess.Process
    lines: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)
    stderr: bytearray = field(default_factory=bytearray)

    async def pump(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            text = raw.decode().strip()
            if text:
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:
                    line = {"type": "unparsable", "text": text}
                self.seen.append(line)
                self.lines.put_nowait(line)

    async def drain_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(4096):
            self.stderr.extend(chunk)

    def report(self) -> str:
        return f"stdout lines: {self.seen}\nstderr: {self.stderr.decode(errors='replace')}"

    async def next_line(self, within: float = WAIT) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.lines.get(), within)
        except TimeoutError:
            pytest.fail(f"the Node.js client printed nothing for {within:.0f} s\n{self.report()}")

    async def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()

    async def expect(self, kind: str, within: float = WAIT) -> dict[str, Any]:
        line = await self.next_line(within)
        assert line["type"] == kind, f"expected a {kind!r} line\n{self.report()}"
        return line

    async def exit_code(self, within: float = WAIT) -> int:
        try:
            return await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            pytest.fail(f"the Node.js client did not exit in {within:.0f} s\n{self.report()}")


@contextlib.asynccontextmanager
async def node_script(node: str, script: str, *args: str, env: dict[str, str] | None = None):
    """Run `tests/js/<script> ARGS`, killed on exit if still running; `NodeScript.say` writes a
    line to its stdin."""
    env = {**os.environ, "MESSAGER_TIMEOUT_MS": str(int(CLIENT_TIMEOUT * 1000)), **(env or {})}
    process = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / script),
        *args,
        cwd=JS_DIR,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    client = NodeScript(process)
    readers = [asyncio.create_task(client.pump()), asyncio.create_task(client.drain_stderr())]
    try:
        yield client
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await asyncio.wait(readers, timeout=5)
        for reader in readers:
            reader.cancel()


def ws_url(api: Any) -> str:
    """The WebSocket address of the app an `Api` (tests/conftest.py) talks to."""
    return str(api.http.make_url("/graphql").with_scheme("ws"))
