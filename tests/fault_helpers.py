"""A database that can be stopped and restarted under a running app, and waiting for the app to
notice."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from graphql_api.embedded import EmbeddedServer, die_with_parent, ping
from tests.conftest import Api

ANSWER_BOUND = 15.0  # seconds: well above the deadline, far below a hang


RECOVERY_BOUND = 20.0  # seconds for the app to notice the database is back


WATCHERS_SETTLE_SECONDS = 2.0


class RestartableServer(EmbeddedServer):
    """An embedded server that can come back on the port and files it had."""

    restarts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def restart(self, timeout: float = 30.0) -> None:
        self.restarts += 1
        assert self.port is not None and (self.process is None or self.process.poll() is not None)
        with (self.data_dir / "embedded.log").open("ab") as log_file:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "graphql_api.embedded_main",
                    "--data-dir",
                    str(self.data_dir / "db"),
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--log-file",
                    str(self.data_dir / "embedded.log"),
                    "--pid-file",
                    str(self.data_dir / "embedded.pid"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.data_dir / "embedded.log").read_text()
            if ping(self.uri, timeout=0.3):
                return
            time.sleep(0.05)
        pytest.fail(f"the embedded server did not come back on port {self.port}")


async def readyz(api: Api) -> int:
    response = await asyncio.wait_for(api.http.get("/readyz"), ANSWER_BOUND)
    return response.status


async def until_ready(api: Api) -> None:
    async with asyncio.timeout(RECOVERY_BOUND):
        while await readyz(api) != 200:  # noqa: ASYNC110 (readiness is only seen by asking)
            await asyncio.sleep(0.1)
