"""The embedded server's pid file: recognising what a previous instance left behind.

nx-27017 writes its pid to `embedded.pid` and refuses to start ("NX-27017 is already running")
while a process with that pid exists, and it only removes the file when it stops cleanly. After a
`kill -9` of `serve` the file stays, and the pid in it is either gone, still exiting (a SIGKILLed
process takes a moment to die and to be reaped: a zombie still answers `kill(pid, 0)`), or reused
by an unrelated process. Before starting a server, `clear_stale_pid_file` looks at the process in
the file through /proc (Linux): gone, a zombie, or not an embedded server of this data directory:
the file is removed; an embedded server of this data directory: it is waited for, within a bound,
since it is exiting (its `serve` died) or belongs to a command that finishes soon. Past the bound
the caller gets an error that says what to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

PID_FILE = "embedded.pid"
ENTRY_POINT = "graphql_api.embedded_main"
PREVIOUS_EXIT_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 0.05


class PreviousServerRunning(RuntimeError):
    """An embedded server of this data directory is running and did not exit in time."""


def read_pid(pid_file: Path) -> int | None:
    """The pid in the file; None when there is no file or it holds no pid."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def process_exists(pid: int) -> bool:
    """True while `pid` is a process that has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: fall back on the signal check
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def is_embedded_server_of(pid: int, db_dir: Path) -> bool | None:
    """Whether `pid` runs this package's embedded server on `db_dir`; None when /proc does not
    tell (no /proc, or not allowed to read it)."""
    try:
        args = [
            part.decode(errors="replace")
            for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        ]
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except FileNotFoundError:
        return False  # exited meanwhile
    except OSError:
        return None
    if ENTRY_POINT not in args or "--data-dir" not in args:
        return False
    position = args.index("--data-dir") + 1
    if position >= len(args):
        return False
    return _same_path(cwd / args[position], db_dir)


def _same_path(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return a.resolve() == b.resolve()
    return False


def clear_stale_pid_file(
    pid_file: Path, db_dir: Path, timeout: float = PREVIOUS_EXIT_TIMEOUT_SECONDS
) -> None:
    """Make way for a new embedded server on `db_dir`: remove a pid file that names no running
    embedded server of `db_dir`, and wait (up to `timeout`) for one that does to exit.

    Raises PreviousServerRunning when it is still running at the deadline."""
    deadline = time.monotonic() + timeout
    waiting_logged = False
    while True:
        pid = read_pid(pid_file)
        if pid is None:  # no file, or no pid in it: nx-27017 overwrites such a file
            return
        if not process_exists(pid):
            log.info("removing the pid file of embedded database %d, which has exited", pid)
            _remove_if_still(pid_file, pid)
            return
        ours = is_embedded_server_of(pid, db_dir)
        if ours is False:
            log.info("removing the pid file of embedded database %d: the pid is another's now", pid)
            _remove_if_still(pid_file, pid)
            return
        if time.monotonic() >= deadline:
            raise PreviousServerRunning(
                f"an embedded database (PID {pid}) is still running on {db_dir}: stop the "
                f"messager command that started it (or `kill {pid}`), then start again"
            )
        if not waiting_logged:
            log.info("waiting for the previous embedded database (PID %d) to exit", pid)
            waiting_logged = True
        time.sleep(POLL_SECONDS)


def _remove_if_still(pid_file: Path, pid: int) -> None:
    """Remove the file unless another instance has meanwhile written its own pid in it."""
    if read_pid(pid_file) == pid:
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
