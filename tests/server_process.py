"""Running `messager serve` as real subprocesses, and looking at them through /proc (Linux).

`serving(...)` starts one and always kills it, and every process below it, on exit: a worker of
`serve --workers N` is a grandchild the test cannot `wait()` for. The /proc helpers answer which
processes descend from a serve, which of them listen on a port, and which one accepted a given
client connection (to tell the workers of one port apart without any help from the API).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli_helpers import command, process_gone

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy

TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"


@dataclass
class Serve:
    """A running `messager serve` with its stdout and stderr in `<name>.out` / `<name>.err`."""

    process: subprocess.Popen[bytes]
    port: int
    name: str
    log_dir: Path
    env: dict[str, str]
    seen: dict[int, str] = field(default_factory=dict)  # pid -> start time, of every descendant

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        parts = []
        for suffix in ("out", "err"):
            with contextlib.suppress(FileNotFoundError):
                parts.append((self.log_dir / f"{self.name}.{suffix}").read_text(errors="replace"))
        return "".join(parts)

    def healthy(self) -> bool:
        try:
            with LOCAL.open(f"{self.url}/healthz", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    def wait_until_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"serve {self.name} exited with {self.process.returncode}:\n{self.output()}"
                )
            if self.healthy():
                return
            time.sleep(0.05)
        pytest.fail(
            f"serve {self.name} did not answer /healthz in {timeout:.0f} s:\n{self.output()}"
        )

    async def until_healthy(self, within: float = START_TIMEOUT) -> None:
        await asyncio.to_thread(self.wait_until_healthy, within)

    def descendants(self) -> list[int]:
        """The live processes below the serve; they are remembered for `kill_all`."""
        found = descendants(self.pid)
        for pid in found:
            started = start_time(pid)
            if started is not None:
                self.seen.setdefault(pid, started)
        return found

    def kill_all(self) -> None:
        """SIGKILL the serve and every process below it, also those seen below it earlier that
        outlived it (orphans are no longer below it), and reap the serve."""
        below = set(self.descendants())
        below |= {pid for pid, started in self.seen.items() if start_time(pid) == started}
        for pid in [self.pid, *below]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT)
        wait_until_gone(sorted(below), STOP_TIMEOUT)


def start_serve(
    *args: str, env: dict[str, str], log_dir: Path, name: str, port: int, own_group: bool = False
) -> Serve:
    """`messager serve --port PORT ARGS`; its output goes to files (never a pipe that fills).
    With `own_group` it leads a process group of its own (to be killed as a group, as
    `kill -9 -PGID` or a supervisor would, without hitting the test)."""
    with (log_dir / f"{name}.out").open("wb") as out, (log_dir / f"{name}.err").open("wb") as err:
        process = subprocess.Popen(
            command("serve", "--port", str(port), *args),
            env=env,
            cwd=log_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=own_group,
        )
    return Serve(process, port, name, log_dir, env)


@contextlib.contextmanager
def serving(
    *args: str, env: dict[str, str], log_dir: Path, name: str, port: int, own_group: bool = False
) -> Iterator[Serve]:
    """A started serve (not yet healthy: see `until_healthy`), killed with all its processes."""
    serve = start_serve(*args, env=env, log_dir=log_dir, name=name, port=port, own_group=own_group)
    try:
        yield serve
    finally:
        serve.kill_all()


# -- /proc ----------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name: state, ppid, ..."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()


def start_time(pid: int) -> str | None:
    """When `pid` started (in clock ticks since boot): tells a process from a later one that
    reuses its pid."""
    fields = _stat_fields(pid)
    return fields[19] if fields and fields[0] != "Z" else None


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children, grandchildren...), zombies left out."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_until_gone(pids: list[int], timeout: float = STOP_TIMEOUT) -> list[int]:
    """Wait until every pid has exited; answers those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if not process_gone(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _tcp_sockets() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every IPv4 and IPv6 TCP socket."""
    sockets = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
                sockets.append(
                    (
                        int(local.rsplit(":", 1)[1], 16),
                        int(remote.rsplit(":", 1)[1], 16),
                        state,
                        inode,
                    )
                )
    return sockets


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def listeners(port: int, candidates: list[int]) -> list[int]:
    """Those of `candidates` that hold a socket listening on `port`."""
    listening = {
        inode for lp, _, state, inode in _tcp_sockets() if lp == port and state == TCP_LISTEN
    }
    return [pid for pid in candidates if socket_inodes(pid) & listening]


def acceptor(port: int, client_port: int, candidates: list[int]) -> int | None:
    """Which of `candidates` holds the server side of the connection from `client_port` to
    `port` (None while no one has accepted it)."""
    inodes = {
        inode
        for lp, rp, state, inode in _tcp_sockets()
        if lp == port and rp == client_port and state == TCP_ESTABLISHED and inode
    }
    owners = [pid for pid in candidates if socket_inodes(pid) & inodes]
    return owners[0] if len(owners) == 1 else None
