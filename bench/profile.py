"""Where one scenario's time goes: `python -m bench.profile [--phases history_newest,inbox,send]
[--seconds 10] [--top 25] [--out DIR]`.

A fresh server (`bench.common.running_server`, one process, the embedded nx-27017) with the
suite's small dataset (`bench.dataset.QUICK`: the same page sizes, the 32-participant
conversation, a reader of 200 conversations), then, per phase, the suite's closed-loop load
(`bench.http_load`; 8 in flight, 32 senders for `send`) while `py-spy record` samples the server
and nx-27017 (`--format raw`, 100 Hz, non-blocking, idle frames left out). Prints each phase's
throughput and, per process, the functions with the most samples (own time, and time including
callees); the raw stacks go to `--out` for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
from pathlib import Path

from bench import http_load
from bench.common import Server, running_server
from bench.dataset import QUICK, Dataset, load

SERVER_ENV = {"MESSAGER_RATE_LIMITS": "false"}
PHASES = {
    "floor": lambda data: http_load.floor_workers(data, 32),
    "history_newest": lambda data: http_load.history_newest_workers(data, 8),
    "inbox": lambda data: http_load.inbox_workers(data, 8),
    "send": lambda data: http_load.send_workers(data, 32),
}
PY_SPY = Path(sys.executable).with_name("py-spy")


def summary(raw: Path, top: int) -> str:
    """The `top` functions by own samples and by inclusive samples, from collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")[1:]  # the first is the thread
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return "    (no samples)"
    lines = [f"    {total} samples; own time:"]
    lines += [f"      {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines.append("    including callees:")
    lines += [f"      {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)


async def profile(server: Server, args: argparse.Namespace) -> None:
    data: Dataset = await load(server, QUICK, verbose=False)
    try:
        for phase in args.phases:
            assert data.sentinel is not None
            await data.sentinel.wait()
            recorders = {}
            for name, pid in (("serve", server.process.pid), ("nx-27017", server.embedded_pid)):
                out = args.out / f"{phase}-{name}.txt"
                recorders[name] = (
                    subprocess.Popen(  # noqa: ASYNC220 (starts at once, waited in a thread)
                        [
                            str(PY_SPY),
                            "record",
                            "--pid",
                            str(pid),
                            "--rate",
                            "100",
                            "--nonblocking",
                            "--format",
                            "raw",
                            "--duration",
                            str(int(args.seconds) + 1),
                            "--output",
                            str(out),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    ),
                    out,
                )
            result = await http_load.closed_loop(
                server, phase, PHASES[phase](data), args.seconds, 0.5
            )
            print(http_load.line(result), flush=True)
            for name, (recorder, out) in recorders.items():
                await asyncio.to_thread(recorder.wait)
                print(f"  {name}:", flush=True)
                print(summary(out, args.top) if out.exists() else "    (no profile)", flush=True)
    finally:
        if data.sentinel is not None:
            await data.sentinel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phases", default="history_newest,inbox,send")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path("bench/results/profiles"))
    args = parser.parse_args()
    args.phases = [p for p in args.phases.split(",") if p]
    if not set(args.phases) <= set(PHASES):
        parser.error(f"--phases takes names of {', '.join(PHASES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    with running_server(prefix="bench-profile-", extra_env=SERVER_ENV) as server:
        asyncio.run(profile(server, args))


if __name__ == "__main__":
    main()
