"""What operating the service costs on the suite's floor: `python -m bench.overhead [--runs 5]
[--duration 8] [--before DIR]`.

The floor of the suite (`bench.http_load.floor_workers`: authenticated `{ __typename }`, 32 in
flight, one server process) measured for each configuration, one fresh server per run, the
configurations interleaved run by run so that a drift of the shared machine hits them alike.
Two figures per run: requests per second, and the server's CPU time per request (its CPU seconds
over the measured window divided by the requests answered), which other load on a shared machine
disturbs much less than throughput. Configurations:
- `before`: the project as it was before metrics and structured logs (`--before DIR`: a checkout
  of that commit; its server runs from there), when given;
- `text logs`: this checkout, metrics collected, text logs (the default);
- `json logs`: this checkout, metrics collected, `MESSAGER_LOG_FORMAT=json`.
Prints each run and the medians with their change against the first configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

from bench import common, http_load
from bench.common import running_server

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


def floor_once(
    project: Path, env: dict[str, str], seconds: float, warmup: float
) -> tuple[float, float]:
    """(requests per second, server CPU milliseconds per request) of one floor run."""
    common.PROJECT_ROOT = project  # `running_server` starts `python -m graphql_api` from there
    with running_server(extra_env={"MESSAGER_RATE_LIMITS": "false", **env}) as server:
        ids = server.import_directory(DIRECTORY)
        (token,) = server.tokens([ids["users"]["reader"]])
        request = (token, http_load.FLOOR, {})
        workers = [lambda _previous: request for _ in range(FLOOR_CONCURRENCY)]
        result = asyncio.run(http_load.closed_loop(server, "floor", workers, seconds, warmup))
    if result.errors:
        raise SystemExit(f"floor run failed: {result.first_error}")
    cpu_ms = result.cpu_pct["server"] / 100 * result.seconds / result.requests * 1000
    return result.rps, cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--before", type=Path, help="a checkout of the commit to compare with")
    args = parser.parse_args()

    here = Path(__file__).resolve().parent.parent
    configurations: list[tuple[str, Path, dict[str, str]]] = []
    if args.before:
        configurations.append(("before", args.before.resolve(), {}))
    configurations += [
        ("text logs", here, {"MESSAGER_LOG_FORMAT": "text"}),
        ("json logs", here, {"MESSAGER_LOG_FORMAT": "json"}),
    ]
    throughput: dict[str, list[float]] = {name: [] for name, _, _ in configurations}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in configurations}
    for run in range(args.runs):
        order = configurations if run % 2 == 0 else configurations[::-1]
        for name, project, env in order:
            rps, cpu_ms = floor_once(project, env, args.duration, args.warmup)
            throughput[name].append(rps)
            cpu[name].append(cpu_ms)
            print(
                f"run {run + 1} {name:<10} {rps:8.1f} req/s {cpu_ms:7.3f} ms CPU/request",
                flush=True,
            )

    first = configurations[0][0]
    print(f"\nfloor, 32 in flight, 1 process, medians of {args.runs} runs of {args.duration:.0f} s")
    for label, figures, unit in (
        ("throughput", throughput, "req/s"),
        ("server CPU", cpu, "ms/req"),
    ):
        reference = statistics.median(figures[first])
        for name, values in figures.items():
            median = statistics.median(values)
            change = (median - reference) / reference * 100
            print(
                f"{label:<10} {name:<10} {median:8.3f} {unit:<6} "
                f"[{min(values):.3f}–{max(values):.3f}]  {change:+.1f} % vs {first}"  # noqa: RUF001
            )


if __name__ == "__main__":
    main()
