"""What operating the service costs on the suite's floor: `python -m bench.overhead [--rounds 12]
[--block 3] [--before DIR]`.

The floor of the suite (authenticated `query Floor { __typename }`, 32 in flight, as
`bench.http_load.floor_workers`) against one server per configuration, all started at once and
measured in short blocks taken in turn, round after round (the order rotating), so that the
load of a shared machine falls on every configuration alike. Per block: requests per second,
and the server's CPU time per request (its CPU seconds over the block, from /proc, divided by the
requests answered), which other load disturbs much less than throughput. Configurations:
- `before`: `--before DIR`, a checkout of the commit before metrics and structured logs (its
  server runs from there), when given;
- `no metrics`: this checkout with `MESSAGER_METRICS=false` (nothing measured), text logs;
- `metrics`: this checkout as it runs by default (metrics measured), text logs;
- `metrics+json`: metrics and `MESSAGER_LOG_FORMAT=json`.
Every server writes its access log (one line per request) as it does by default. Prints every
block, then the medians and their change against the first configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
from pathlib import Path

from bench import common, http_load
from bench.common import Server, running_server

FLOOR_CONCURRENCY = 32
DIRECTORY = {
    "firms": [{"key": "bench", "name": "Bench Firm"}],
    "companies": [{"key": "co", "firm": "bench", "name": "Bench Company"}],
    "users": [
        {
            "key": "reader",
            "firm": "bench",
            "kind": "PRACTITIONER",
            "name": "Reader",
            "email": "reader@bench.test",
        }
    ],
}


def floor_block(server: Server, token: str, seconds: float, warmup: float) -> tuple[float, float]:
    """(requests per second, server CPU milliseconds per request) of one block."""
    request = (token, http_load.FLOOR, {})
    workers = [lambda _previous: request for _ in range(FLOOR_CONCURRENCY)]
    result = asyncio.run(http_load.closed_loop(server, "floor", workers, seconds, warmup))
    if result.errors:
        raise SystemExit(f"floor block failed: {result.first_error}")
    cpu_ms = result.cpu_pct["server"] / 100 * result.seconds / result.requests * 1000
    return result.rps, cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--block", type=float, default=3.0, help="seconds measured per block")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--before", type=Path, help="a checkout of the commit to compare with")
    args = parser.parse_args()

    here = Path(__file__).resolve().parent.parent
    configurations: list[tuple[str, Path, dict[str, str]]] = []
    if args.before:
        configurations.append(("before", args.before.resolve(), {}))
    configurations += [
        ("no metrics", here, {"MESSAGER_METRICS": "false"}),
        ("metrics", here, {}),
        ("metrics+json", here, {"MESSAGER_LOG_FORMAT": "json"}),
    ]
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[Server, str]] = {}
        for name, project, env in configurations:
            common.PROJECT_ROOT = project  # `running_server` runs `python -m graphql_api` there
            server = stack.enter_context(
                running_server(extra_env={"MESSAGER_RATE_LIMITS": "false", **env})
            )
            ids = server.import_directory(DIRECTORY)
            (token,) = server.tokens([ids["users"]["reader"]])
            servers[name] = (server, token)
            floor_block(server, token, 2.0, 1.0)  # warm: imports, caches, connections

        throughput: dict[str, list[float]] = {name: [] for name in servers}
        cpu: dict[str, list[float]] = {name: [] for name in servers}
        names = list(servers)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                server, token = servers[name]
                rps, cpu_ms = floor_block(server, token, args.block, args.warmup)
                throughput[name].append(rps)
                cpu[name].append(cpu_ms)
                print(
                    f"round {round_number + 1:>2} {name:<12} {rps:8.1f} req/s "
                    f"{cpu_ms:7.3f} ms server CPU/request",
                    flush=True,
                )

    first = names[0]
    print(
        f"\nfloor, 32 in flight, 1 server process each; medians of {args.rounds} blocks of "
        f"{args.block:.0f} s per configuration"
    )
    for label, figures, unit in (
        ("throughput", throughput, "req/s"),
        ("server CPU", cpu, "ms/req"),
    ):
        reference = statistics.median(figures[first])
        for name, values in figures.items():
            median = statistics.median(values)
            change = (median - reference) / reference * 100
            print(
                f"{label:<10} {name:<12} {median:8.3f} {unit:<6} "
                f"[{min(values):.3f}–{max(values):.3f}]  {change:+.1f} % vs {first}"  # noqa: RUF001
            )


if __name__ == "__main__":
    main()
