"""Attachment throughput and memory, end to end: `python -m bench.attachments [--size-mib 100]
[--runs 3]`.

Starts the real server (`python -m graphql_api serve`) on a free port with a fresh data directory
and no MONGODB_URI (so it runs the embedded nx-27017 server), imports a one-firm directory and
gets a token through the command line, then per run uploads a generated file through
`POST /attachments` and downloads it through `GET /attachments/{id}`, both streamed (the file is
never whole in this process), checking the sha256 of what comes back. A thread samples VmRSS of
the `serve` process and of the embedded server every 50 ms; growth is the peak during a run over
the idle baseline measured before the first run.

MB/s are decimal (10^6 bytes per second), timed from the request to the last byte (upload: to the
201 answer; download: to the last byte read and hashed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

MIB = 1 << 20
BLOCK = MIB
BOUNDARY = "bench-attachments-boundary-3c9e"
SAMPLE_SECONDS = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_SECONDS = 60.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent
BASE_BLOCK = hashlib.shake_256(b"bench-attachments").digest(BLOCK)  # incompressible, reproducible

DIRECTORY = {
    "firms": [{"key": "bench", "name": "Bench Accounting"}],
    "companies": [{"key": "acme", "firm": "bench", "name": "Acme Ltd"}],
    "users": [
        {
            "key": "ada",
            "firm": "bench",
            "kind": "PRACTITIONER",
            "name": "Ada Bench",
            "email": "ada@bench.test",
            "favorites": ["acme"],
        }
    ],
}


# -- generated data ------------------------------------------------------------------------------


def blocks(size: int) -> Iterator[bytes]:
    """`size` reproducible bytes, 1 MiB at a time, each block starting with its index."""
    base = BASE_BLOCK
    sent, index = 0, 0
    while sent < size:
        block = (index.to_bytes(8, "big") + base[8:])[: min(BLOCK, size - sent)]
        yield block
        sent += len(block)
        index += 1


def sha256_of(size: int) -> str:
    digest = hashlib.sha256()
    for block in blocks(size):
        digest.update(block)
    return digest.hexdigest()


def multipart_head(filename: str) -> bytes:
    return (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


MULTIPART_TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()


async def multipart_body(size: int, filename: str) -> AsyncIterator[bytes]:
    yield multipart_head(filename)
    for block in blocks(size):
        yield block
    yield MULTIPART_TAIL


# -- processes and memory ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()} | {"client": time.process_time()}


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


@dataclass
class RssSampler:
    """Samples the RSS of some processes every SAMPLE_SECONDS in a thread; `peaks()` answers
    the highest sample per process since the last `reset()`."""

    pids: dict[str, int]
    _peaks: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.reset()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(SAMPLE_SECONDS)

    def _sample(self) -> None:
        with self._lock:
            for name, pid in self.pids.items():
                rss = rss_bytes(pid)
                if rss is not None and rss > self._peaks.get(name, 0):
                    self._peaks[name] = rss

    def reset(self) -> None:
        with self._lock:
            self._peaks = {}
        self._sample()

    def peaks(self) -> dict[str, int]:
        self._sample()
        with self._lock:
            return dict(self._peaks)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def idle_baseline(pids: dict[str, int], seconds: float = 1.0) -> dict[str, int]:
    """The median RSS of each process over `seconds` of idleness."""
    samples: dict[str, list[int]] = {name: [] for name in pids}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            rss = rss_bytes(pid)
            if rss is not None:
                samples[name].append(rss)
        time.sleep(SAMPLE_SECONDS)
    return {name: int(statistics.median(values)) for name, values in samples.items()}


def cli(env: dict[str, str], *args: str) -> str:
    """Run a `python -m graphql_api` command; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "graphql_api", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"`graphql_api {' '.join(args)}` failed:\n{done.stderr}")
    return done.stdout


def wait_until_ready(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}); see {log}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.1)
    raise SystemExit(f"the server was not ready within {START_TIMEOUT_SECONDS:.0f} s; see {log}")


def embedded_pid(data_dir: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return int(json.loads((data_dir / "embedded.json").read_text())["server_pid"])
        time.sleep(0.1)
    raise SystemExit("the embedded server's pid was never recorded in embedded.json")


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Run:
    upload_mb_s: float
    download_mb_s: float
    serve_growth: int
    embedded_growth: int
    upload_cpu: dict[str, float]
    """CPU seconds each process (serve, embedded, client) used during the upload."""
    download_cpu: dict[str, float]


async def one_run(
    base_url: str,
    token: str,
    size: int,
    expected_sha256: str,
    sampler: RssSampler,
    baseline: dict[str, int],
    index: int,
) -> Run:
    pids = sampler.pids
    headers = {"Authorization": f"Bearer {token}"}
    filename = f"bench-{index}.bin"
    length = len(multipart_head(filename)) + size + len(MULTIPART_TAIL)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    sampler.reset()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        cpu_before = cpu_snapshot(pids)
        started = time.perf_counter()
        async with session.post(
            f"{base_url}/attachments",
            data=multipart_body(size, filename),
            headers={
                **headers,
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Content-Length": str(length),
            },
        ) as response:
            answer = await response.json()
            if response.status != 201:
                raise SystemExit(f"upload answered {response.status}: {answer}")
        upload_seconds = time.perf_counter() - started
        upload_cpu = cpu_used(cpu_before, cpu_snapshot(pids))
        if answer["size"] != size:
            raise SystemExit(f"upload stored {answer['size']} bytes, not {size}")

        digest = hashlib.sha256()
        received = 0
        cpu_before = cpu_snapshot(pids)
        started = time.perf_counter()
        async with session.get(f"{base_url}/attachments/{answer['id']}", headers=headers) as got:
            if got.status != 200:
                raise SystemExit(f"download answered {got.status}: {await got.text()}")
            async for piece in got.content.iter_chunked(BLOCK):
                digest.update(piece)
                received += len(piece)
        download_seconds = time.perf_counter() - started
        download_cpu = cpu_used(cpu_before, cpu_snapshot(pids))
    if received != size or digest.hexdigest() != expected_sha256:
        raise SystemExit(f"download differs: {received} bytes, sha256 {digest.hexdigest()}")
    peaks = sampler.peaks()
    return Run(
        upload_mb_s=size / upload_seconds / 1e6,
        download_mb_s=size / download_seconds / 1e6,
        serve_growth=peaks["serve"] - baseline["serve"],
        embedded_growth=peaks["embedded"] - baseline["embedded"],
        upload_cpu=upload_cpu,
        download_cpu=download_cpu,
    )


def median_range(values: list[float], fmt: str) -> str:
    return (
        f"{format(statistics.median(values), fmt)} "
        f"[{format(min(values), fmt)}-{format(max(values), fmt)}]"
    )


def report(runs: list[Run], size: int) -> None:
    print()
    print(
        f"{'run':>3}  {'upload MB/s':>11}  {'download MB/s':>13}  {'serve RSS +MiB':>14}  "
        f"{'nx-27017 RSS +MiB':>17}"
    )
    for i, run in enumerate(runs, 1):
        print(
            f"{i:>3}  {run.upload_mb_s:>11.1f}  {run.download_mb_s:>13.1f}  "
            f"{run.serve_growth / MIB:>14.1f}  {run.embedded_growth / MIB:>17.1f}"
        )
    print()
    print(f"file: {size} bytes ({size / MIB:.0f} MiB), {len(runs)} runs; median [min-max]")
    print(f"  upload:   {median_range([r.upload_mb_s for r in runs], '.1f')} MB/s")
    print(f"  download: {median_range([r.download_mb_s for r in runs], '.1f')} MB/s")
    serve = [r.serve_growth / MIB for r in runs]
    embedded = [r.embedded_growth / MIB for r in runs]
    print(f"  serve process peak RSS growth over idle:    {median_range(serve, '.1f')} MiB")
    print(f"  nx-27017 process peak RSS growth over idle: {median_range(embedded, '.1f')} MiB")
    print("  CPU seconds used per file (independent of other load on the machine):")
    for direction in ("upload", "download"):
        used = [getattr(r, f"{direction}_cpu") for r in runs]
        parts = ", ".join(
            f"{name} {median_range([u[name] for u in used], '.2f')}"
            for name in ("serve", "embedded", "client")
        )
        print(f"    {direction + ':':<9} {parts}")


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.attachments", description=__doc__)
    parser.add_argument("--size-mib", type=float, default=100.0, help="file size in MiB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = int(args.size_mib * MIB)

    with tempfile.TemporaryDirectory(prefix="bench-attachments-") as tmp:
        data_dir = Path(tmp) / "data"
        env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
        env |= {
            "MESSAGER_DATA_DIR": str(data_dir),
            "MESSAGER_JWT_SECRET": secrets.token_hex(32),
            "PYTHONUNBUFFERED": "1",
        }
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "serve.log"
        with open(log, "wb") as log_file:
            server = subprocess.Popen(
                [sys.executable, "-m", "graphql_api", "serve", "--port", str(port)],
                env=env,
                cwd=PROJECT_ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_ready(base_url, server, log)
            pids = {"serve": server.pid, "embedded": embedded_pid(data_dir)}
            directory = Path(tmp) / "directory.json"
            directory.write_text(json.dumps(DIRECTORY))
            cli(env, "import", str(directory))
            token = cli(env, "token", "ada@bench.test").strip()

            expected = sha256_of(size)
            idle_started, idle_cpu_before = time.monotonic(), cpu_snapshot(pids)
            baseline = idle_baseline(pids, seconds=2.0)
            idle_cpu = cpu_used(idle_cpu_before, cpu_snapshot(pids))
            idle_seconds = time.monotonic() - idle_started
            print(
                f"serve pid {pids['serve']} idle RSS {baseline['serve'] / MIB:.1f} MiB, "
                f"idle CPU {idle_cpu['serve'] / idle_seconds:.0%} of a core; "
                f"nx-27017 pid {pids['embedded']} idle RSS {baseline['embedded'] / MIB:.1f} MiB, "
                f"idle CPU {idle_cpu['embedded'] / idle_seconds:.0%} of a core; "
                f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}"
            )
            sampler = RssSampler(pids)
            sampler.start()
            runs: list[Run] = []
            try:
                for index in range(1, args.runs + 1):
                    run = asyncio.run(
                        one_run(base_url, token, size, expected, sampler, baseline, index)
                    )
                    print(
                        f"run {index}: upload {run.upload_mb_s:.1f} MB/s, "
                        f"download {run.download_mb_s:.1f} MB/s, serve RSS "
                        f"+{run.serve_growth / MIB:.1f} MiB, nx-27017 RSS "
                        f"+{run.embedded_growth / MIB:.1f} MiB; load average "
                        f"{os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
                    runs.append(run)
            finally:
                sampler.stop()
            report(runs, size)
            print(f"  load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
