"""The embedded server starts on a data directory whose previous server died (issue 18).

nx-27017 refuses to start while the pid in its pid file is a running process. These tests leave
the pid file a `kill -9` leaves: naming a process that has exited, one that reuses the pid for
something else, or an embedded server of the same data directory that is still exiting (a real
process whose command line is that of one); and one that does not exit, which must fail with an
error that says what to do.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphql_api.embedded import EmbeddedServer, EmbeddedServerError, ping
from graphql_api.embedded_pidfile import ENTRY_POINT, PID_FILE
from tests.cli_helpers import process_gone, wait_until_gone


@pytest.fixture
def started() -> Iterator[list[EmbeddedServer]]:
    """Servers a test starts, stopped at its end."""
    servers: list[EmbeddedServer] = []
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Stand-in processes a test starts, killed at its end."""
    running: list[subprocess.Popen[bytes]] = []
    yield running
    for process in running:
        process.kill()
        process.wait()


def sleeper(seconds: float, *args: str) -> list[str]:
    """A Python process that sleeps, with `args` on its command line."""
    return [sys.executable, "-c", f"import time; time.sleep({seconds})", *args]


def embedded_lookalike(seconds: float, data_dir: Path) -> list[str]:
    """A process whose command line is that of an embedded server of `data_dir`."""
    return sleeper(seconds, "-m", ENTRY_POINT, "--data-dir", str((data_dir / "db").absolute()))


def start(data_dir: Path, started: list[EmbeddedServer], **options: float) -> EmbeddedServer:
    server = EmbeddedServer(data_dir, **options)
    started.append(server)
    uri = server.start()
    assert ping(uri)
    return server


def test_a_pid_file_naming_an_exited_process_does_not_block_the_start(tmp_path, started, processes):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # Exited but not reaped yet (a zombie), as a killed server is until its reaper gets to it.
    exited = subprocess.Popen(sleeper(0))
    processes.append(exited)
    assert wait_until_gone(exited.pid)
    assert Path(f"/proc/{exited.pid}").exists()
    (data_dir / PID_FILE).write_text(str(exited.pid))
    server = start(data_dir, started)
    assert (data_dir / PID_FILE).read_text().strip() == str(server.process.pid)


def test_a_pid_file_naming_another_program_does_not_block_the_start(tmp_path, started, processes):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # Another program with the pid, and an embedded server of another data directory.
    for other in (sleeper(600), embedded_lookalike(600, tmp_path / "elsewhere")):
        processes.append(subprocess.Popen(other))
        (data_dir / PID_FILE).write_text(str(processes[-1].pid))
        start(data_dir, started).stop()
        assert processes[-1].poll() is None  # left alone


def test_an_exiting_server_of_the_same_data_directory_is_waited_for(tmp_path, started, processes):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    exiting = subprocess.Popen(embedded_lookalike(1.0, data_dir))
    processes.append(exiting)
    (data_dir / PID_FILE).write_text(str(exiting.pid))
    server = start(data_dir, started)
    assert process_gone(exiting.pid)
    assert (data_dir / PID_FILE).read_text().strip() == str(server.process.pid)


def test_a_running_server_of_the_same_data_directory_gives_an_error_saying_what_to_do(
    tmp_path, started, processes
):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    running = subprocess.Popen(embedded_lookalike(600, data_dir))
    processes.append(running)
    (data_dir / PID_FILE).write_text(str(running.pid))
    with pytest.raises(EmbeddedServerError) as raised:
        start(data_dir, started, previous_exit_timeout=0.5)
    message = str(raised.value)
    assert "\n" not in message
    assert message == (
        f"an embedded database (PID {running.pid}) is still running on "
        f"{(data_dir / 'db').absolute()}: stop the messager command that started it "
        f"(or `kill {running.pid}`), then start again"
    )
    assert running.poll() is None
