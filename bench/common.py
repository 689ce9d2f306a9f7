"""Helpers shared by the benchmarks: run the real server in a subprocess, import a directory,
issue tokens, find the server's processes and read their memory and CPU time.

The lowest-level helpers (`free_port`, `rss_bytes`, `cli`, `wait_until_ready`, `embedded_pid`,
`RssSampler`, `idle_baseline`) were written first in `bench/attachments.py` and are imported
from there, not copied. What is here adds `running_server(workers=N)`: one `python -m
graphql_api serve` with a fresh temporary data directory, no `MONGODB_URI` (so the embedded
nx-27017 server), a known `MESSAGER_JWT_SECRET`, and, with `--workers N`, the pids of the N
worker processes (the `serve` process is then only a supervisor).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.attachments import (  # noqa: F401 (re-exported for the other benchmarks)
    PROJECT_ROOT,
    RssSampler,
    cli,
    embedded_pid,
    free_port,
    idle_baseline,
    rss_bytes,
    wait_until_ready,
)

MIB = 1 << 20
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- /proc ---------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(p) for p in f.read().split())
    return found


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def rss_sum(pids: list[int]) -> int:
    return sum(rss_bytes(pid) or 0 for pid in pids)


def cpu_sum(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid in pids)


def median_rss(pids: list[int], seconds: float = 1.0, every: float = 0.05) -> int:
    """The median over `seconds` of the summed RSS of `pids`."""
    samples: list[int] = []
    deadline = time.monotonic() + seconds
    while True:
        samples.append(rss_sum(pids))
        if time.monotonic() >= deadline:
            break
        time.sleep(every)
    samples.sort()
    return samples[len(samples) // 2]


def tcp_sockets() -> Iterator[tuple[int, int, str, str]]:
    """(local port, remote port, state, inode) of every TCP socket (/proc/net/tcp and tcp6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)
            for line in f:
                parts = line.split()
                local, remote = parts[1].rpartition(":")[2], parts[2].rpartition(":")[2]
                yield int(local, 16), int(remote, 16), parts[3], parts[9]


def _listening_inodes(port: int) -> set[str]:
    return {inode for local, _, state, inode in tcp_sockets() if state == "0A" and local == port}


def listens_on(pid: int, port: int) -> bool:
    """Whether the process holds a listening socket on `port`."""
    inodes = _listening_inodes(port)
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return True
    return False


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit to at least `wanted` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# -- the server ----------------------------------------------------------------------------------


@dataclass
class Server:
    """A running `python -m graphql_api serve` and what a benchmark needs to know of it."""

    process: subprocess.Popen[bytes]
    port: int
    workers: int
    data_dir: Path
    env: dict[str, str]
    log: Path
    jwt_secret: str
    server_pids: list[int]
    """The processes that serve requests: `serve` itself, or its N workers."""
    embedded_pid: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def cli(self, *args: str) -> str:
        return cli(self.env, *args)

    def import_directory(self, directory: dict[str, object]) -> dict[str, dict[str, str]]:
        """`messager import` of a directory; the id maps it prints."""
        path = self.data_dir.parent / f"directory-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(directory))
        return json.loads(self.cli("import", str(path)))

    def token(self, email: str) -> str:
        """A token through `messager token` (one subprocess per call)."""
        return self.cli("token", email).strip()

    def tokens(self, user_ids: list[str]) -> list[str]:
        """Tokens for many users at once, issued in this process with the server's own
        `TokenService` and the secret the server was started with (same claims as the CLI)."""
        from graphql_api.auth import TokenService
        from graphql_api.settings import Settings

        service = TokenService(Settings(jwt_secret=self.jwt_secret, data_dir=self.data_dir))
        return [service.issue(user_id) for user_id in user_ids]


def _worker_pids(serve_pid: int) -> list[int]:
    # multiprocessing "spawn" workers run `python -c "from multiprocessing.spawn import ..."
    # --multiprocessing-fork`; the other children are nx-27017 and the resource tracker.
    return sorted(p for p in children(serve_pid) if "--multiprocessing-fork" in cmdline(p))


def _wait_for_workers(
    serve: subprocess.Popen[bytes], port: int, workers: int, log: Path
) -> list[int]:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise SystemExit(f"the server exited ({serve.returncode}); see {log}")
        pids = [serve.pid] if workers == 1 else _worker_pids(serve.pid)
        # Listening means start-up is over: aiohttp opens the socket after `cleanup_ctx` has run
        # (database ready, change streams open).
        if len(pids) == workers and all(listens_on(pid, port) for pid in pids):
            return pids
        time.sleep(0.1)
    raise SystemExit(f"not all {workers} server processes listened within the deadline; see {log}")


def stop_server(server: subprocess.Popen[bytes], extra_pids: list[int] = ()) -> None:  # type: ignore[assignment]
    """SIGTERM (graceful), then SIGKILL after STOP_TIMEOUT_SECONDS, workers included."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    for pid in extra_pids:  # workers left behind by a killed supervisor
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_server(
    workers: int = 1,
    prefix: str = "bench-",
    keep_logs: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start the server on a free loopback port with a fresh data directory; stop it after.
    `extra_env` adds settings (`MESSAGER_...`); with `keep_logs`, the server's and nx-27017's
    logs are copied there when it has stopped."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data_dir = Path(tmp) / "data"
        jwt_secret = secrets.token_hex(32)
        env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
        env |= {
            "MESSAGER_DATA_DIR": str(data_dir),
            "MESSAGER_JWT_SECRET": jwt_secret,
            "PYTHONUNBUFFERED": "1",
        }
        env |= extra_env or {}
        port = free_port()
        log = Path(tmp) / "serve.log"
        command = [sys.executable, "-m", "graphql_api", "serve", "--port", str(port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                command, env=env, cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT
            )
        server_pids: list[int] = []
        failed = True
        try:
            server_pids = _wait_for_workers(process, port, workers, log)
            wait_until_ready(f"http://127.0.0.1:{port}", process, log)
            yield Server(
                process=process,
                port=port,
                workers=workers,
                data_dir=data_dir,
                env=env,
                log=log,
                jwt_secret=jwt_secret,
                server_pids=server_pids,
                embedded_pid=embedded_pid(data_dir),
            )
            failed = False
        finally:
            stop_server(process, [p for p in server_pids if p != process.pid])
            if keep_logs is not None:
                keep_logs.mkdir(parents=True, exist_ok=True)
                stamp = time.strftime("%Y%m%d-%H%M%S")
                for source in (log, data_dir / "embedded.log"):
                    with contextlib.suppress(OSError):
                        shutil.copy(source, keep_logs / f"{stamp}-w{workers}-{source.name}")
            if failed:  # the temporary directory and its log are about to go
                with contextlib.suppress(OSError):
                    tail = log.read_text(errors="replace").splitlines()[-40:]
                    print("--- end of the server log ---", *tail, sep="\n", file=sys.stderr)
