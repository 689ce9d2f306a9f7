"""What authenticating a request costs: `python -m bench.viewer [--runs 3] [--duration 10]
[--warmup 2] [--concurrency 32]`.

One real server (`bench.common.running_server`: `serve`, a fresh data directory, the embedded
nx-27017) with a one-firm directory of 50 users. Each run measures, in closed loop with
`--concurrency` requests in flight (`bench.http_load.closed_loop`), one phase each of:

1. `unauthenticated`: `{ __typename }` without a token, the floor of a GraphQL request;
2. `authenticated`: `{ __typename }` with a token (the suite's floor): verifying it and loading
   its user;
3. `viewer`: `{ viewer { id name } }` with a token, the request issue 16 measures against the
   floor (its target: at least 60 % of `unauthenticated` in the same run).

The tokens are those of the 50 users in turn, so every request authenticates a user the process
has seen before (warm) once the warm-up has gone by. Prints each phase, then the medians and the
ratios to the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics

from bench.common import Server, running_server
from bench.http_load import LoadResult, Request, Worker, closed_loop, line

USERS = 50
FLOOR = "query Floor { __typename }"
VIEWER = "query Viewer { viewer { id name } }"
SCENARIOS = {
    "unauthenticated": (FLOOR, False),
    "authenticated": (FLOOR, True),
    "viewer": (VIEWER, True),
}


def directory() -> dict[str, list[dict[str, object]]]:
    return {
        "firms": [{"key": "bench", "name": "Bench Firm"}],
        "companies": [{"key": "co", "firm": "bench", "name": "Bench Company"}],
        "users": [
            {
                "key": f"u{index}",
                "firm": "bench",
                "kind": "PRACTITIONER",
                "name": f"User {index}",
                "email": f"u{index}@bench.test",
                "favorites": ["co"],
            }
            for index in range(USERS)
        ],
    }


def workers(tokens: list[str], query: str, concurrency: int) -> list[Worker]:
    """`concurrency` workers sending `query`, each cycling through `tokens` from its own start."""

    def worker(start: int) -> Worker:
        turns = itertools.cycle(tokens[start:] + tokens[:start])

        def next_request(_previous: object) -> Request:
            return (next(turns), query, {})

        return next_request

    return [worker(index % len(tokens)) for index in range(concurrency)]


async def measure(server: Server, args: argparse.Namespace) -> dict[str, list[LoadResult]]:
    ids = server.import_directory(directory())
    tokens = server.tokens(list(ids["users"].values()))
    results: dict[str, list[LoadResult]] = {name: [] for name in SCENARIOS}
    for run in range(args.runs):
        for name, (query, authenticated) in SCENARIOS.items():
            used = tokens if authenticated else [""]
            result = await closed_loop(
                server, name, workers(used, query, args.concurrency), args.duration, args.warmup
            )
            print(f"run {run + 1} {line(result)}", flush=True)
            results[name].append(result)
    return results


def report(results: dict[str, list[LoadResult]]) -> None:
    medians = {name: statistics.median(r.rps for r in runs) for name, runs in results.items()}
    floor = medians["unauthenticated"]
    print(f"\nmedians of {len(results['viewer'])} runs (req/s, and share of the floor):")
    for name, rps in medians.items():
        p99 = statistics.median(r.p99_ms for r in results[name])
        errors = sum(r.errors for r in results[name])
        print(
            f"  {name:<16} {rps:8.0f} req/s  {rps / floor:6.1%}  p99 {p99:6.1f} ms  errors {errors}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with running_server(prefix="bench-viewer-") as server:
        results = asyncio.run(measure(server, args))
    report(results)


if __name__ == "__main__":
    main()
