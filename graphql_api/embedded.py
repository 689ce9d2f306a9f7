"""The embedded MongoDB-wire server (SPEC §10): nx-27017 on a free loopback port.

With no `MONGODB_URI`, `messager serve` starts one under the data directory and records its address
in `embedded.json` there; the other commands connect to that server while its owner runs, and
otherwise start their own for the length of the command. The child process is tied to its parent
(it receives SIGKILL when the parent dies), so a killed `serve` never leaves a server behind.
What such a death leaves is nx-27017's pid file, which would block the next start: see
`graphql_api/embedded_pidfile.py`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from graphql_api.embedded_pidfile import (
    PID_FILE,
    PREVIOUS_EXIT_TIMEOUT_SECONDS,
    PreviousServerRunning,
    clear_stale_pid_file,
    is_embedded_server_of,
)

log = logging.getLogger(__name__)

ADDRESS_FILE = "embedded.json"
_PR_SET_PDEATHSIG = 1


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ping(uri: str, timeout: float = 0.5) -> bool:
    """True when a MongoDB-wire server answers `ping` at `uri`."""
    client: MongoClient = MongoClient(
        uri, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send `signum` to this process when its parent dies (a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)


def _kill_with_parent() -> None:
    # SIGKILL: nx-27017 sometimes never finishes a SIGTERM shutdown, and SQLite's WAL makes an
    # abrupt stop safe; this only fires when `serve` itself died abruptly.
    die_with_parent(signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedServer:
    """One nx-27017 child process storing its databases under `data_dir/db`."""

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        previous_exit_timeout: float = PREVIOUS_EXIT_TIMEOUT_SECONDS,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.previous_exit_timeout = previous_exit_timeout
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}"

    @property
    def db_dir(self) -> Path:
        return (self.data_dir / "db").absolute()

    def start(self, timeout: float = 30.0, meanwhile: Callable[[], object] | None = None) -> str:
        """Start the server, wait until it answers a ping, and answer its URI; `meanwhile`
        runs while the server boots (the caller's own slow start-up work)."""
        db_dir = self.db_dir
        db_dir.mkdir(parents=True, exist_ok=True)
        try:
            clear_stale_pid_file(self.data_dir / PID_FILE, db_dir, self.previous_exit_timeout)
        except PreviousServerRunning as exc:
            raise EmbeddedServerError(str(exc)) from exc
        self.port = free_port(self.host)
        log_path = self.data_dir / "embedded.log"
        with log_path.open("ab") as log_file:
            log_start = log_file.tell()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "graphql_api.embedded_main",
                    "--data-dir",
                    str(db_dir),
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--log-file",
                    str(log_path),
                    "--pid-file",
                    str((self.data_dir / PID_FILE).absolute()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_kill_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + timeout
        if meanwhile is not None:
            meanwhile()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                reason = _last_error(log_path, log_start)
                raise EmbeddedServerError(
                    f"the embedded database exited with status {self.process.returncode}"
                    f"{f' ({reason})' if reason else ''}; see {log_path}"
                )
            if ping(self.uri, timeout=0.3):
                log.info("embedded database listening on %s", self.uri)
                return self.uri
            time.sleep(0.05)
        self.stop()
        raise EmbeddedServerError(
            f"the embedded database did not answer within {timeout:.0f} s; see {log_path}"
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def record(self) -> None:
        """Write this server's address for the other commands of the same data directory."""
        payload = {"uri": self.uri, "owner_pid": os.getpid(), "server_pid": self.process.pid}
        path = self.data_dir / ADDRESS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(path)

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / ADDRESS_FILE).unlink()


def _last_error(log_path: Path, since: int) -> str | None:
    """The last ERROR line the server wrote to its log after offset `since`, without its
    timestamp and logger name."""
    with contextlib.suppress(OSError):
        with log_path.open("rb") as log_file:
            log_file.seek(since)
            lines = log_file.read().decode(errors="replace").splitlines()
        errors = [line for line in lines if " ERROR " in line]
        if errors:
            return errors[-1].split(" ERROR ", 1)[1].strip()
    return None


def recorded_uri(data_dir: Path) -> str | None:
    """The URI of the embedded server that a running `messager serve` recorded, if it answers.

    A record left by a killed `serve` names pids that may belong to other programs by now, and
    a port another server may have taken: the server pid must still be an embedded server of
    this data directory."""
    try:
        payload = json.loads((data_dir / ADDRESS_FILE).read_text())
        uri, owner = str(payload["uri"]), int(payload["owner_pid"])
        server = int(payload["server_pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(owner) or is_embedded_server_of(server, (data_dir / "db")) is False:
        return None
    if not ping(uri):
        return None
    return uri
