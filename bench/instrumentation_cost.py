"""The CPU cost of metrics and JSON logs per floor request, measured in one process:
`python -m bench.instrumentation_cost [--requests 3000]`.

`bench.overhead` compares whole servers; on a machine shared with other work its blocks vary by
a factor of two, far more than the few percent in question, and even CPU time per request moves
with the neighbours' load (shared cores, frequency). Here the three configurations run as three
apps in this process, on one embedded database, behind real HTTP on loopback (aiohttp's test
server with the production access logger; log lines formatted and written to /dev/null), and
the floor request (authenticated `query Floor { __typename }`) goes to each in turn, one request
at a time: A, B, C, B, C, A... Each request's CPU time is this process's from the send to the
parsed answer: client and server both (the database is another process), the client's share
the same for every configuration, so differences are the server's. Alternating request by
request puts every configuration under the same conditions; medians of thousands of requests.
- `no metrics`: `MESSAGER_METRICS=false`, text logs: the cost before both features;
- `metrics`: the default;
- `metrics+json`: and `MESSAGER_LOG_FORMAT=json`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.database import connect, database_of, ensure_schema
from graphql_api.directory.importer import import_directory
from graphql_api.embedded import EmbeddedServer
from graphql_api.logging_setup import (
    TEXT_FORMAT,
    AccessLogger,
    JsonFormatter,
    configure_logging,
)
from graphql_api.settings import Settings

FLOOR = {"query": "query Floor { __typename }"}
DIRECTORY = {
    "firms": [{"key": "bench", "name": "Bench Firm"}],
    "companies": [],
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
CONFIGURATIONS = {
    "no metrics": ({"metrics": False}, "text"),
    "metrics": ({}, "text"),
    "metrics+json": ({}, "json"),
}


async def measure(requests: int) -> dict[str, list[float]]:
    """CPU microseconds of each request, per configuration."""
    with tempfile.TemporaryDirectory(prefix="bench-instrumentation-") as tmp:
        embedded = EmbeddedServer(Path(tmp) / "nx")
        uri = embedded.start() + "/bench"
        try:
            client = connect(uri)
            db = database_of(client)
            await ensure_schema(db)
            ids = await import_directory(db, DIRECTORY)
            base = Settings(mongodb_uri=uri, data_dir=Path(tmp) / "data", jwt_secret="b" * 64)
            token = TokenService(base).issue(ids["users"]["reader"])
            headers = {"Authorization": f"Bearer {token}"}
            servers = {}
            for name, (overrides, _) in CONFIGURATIONS.items():
                server = TestServer(init_app(base.model_copy(update=overrides)))
                await server.start_server(access_log_class=AccessLogger)
                servers[name] = server
            urls = {name: str(server.make_url("/graphql")) for name, server in servers.items()}
            figures: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
            names = list(CONFIGURATIONS)
            with open(os.devnull, "w") as devnull:  # noqa: ASYNC230 (a sink for log lines)
                configure_logging("text", stream=devnull)
                handler = logging.getLogger().handlers[0]
                formatters = {
                    name: (JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
                    for name, (_, fmt) in CONFIGURATIONS.items()
                }
                async with ClientSession() as session:
                    for number in range(requests + 200):  # the first 200 warm up
                        shift = number % len(names)
                        for name in names[shift:] + names[:shift]:
                            handler.setFormatter(formatters[name])
                            started = time.process_time()
                            async with session.post(urls[name], json=FLOOR, headers=headers) as r:
                                body = await r.json()
                            used = time.process_time() - started
                            assert body == {"data": {"__typename": "Query"}}, body
                            if number >= 200:
                                figures[name].append(used * 1e6)
            for server in servers.values():
                await server.close()
            await client.close()
            return figures
        finally:
            embedded.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="per configuration")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.requests))
    reference = statistics.median(figures["no metrics"])
    print(
        f"floor request, one at a time, alternating; {args.requests} requests per configuration "
        "(CPU µs per request, client and server; median, and quartiles)"
    )
    for name, values in figures.items():
        median = statistics.median(values)
        low, _, high = statistics.quantiles(values, n=4)
        print(
            f"{name:<13} {median:8.1f} µs/req [{low:.1f}–{high:.1f}]"  # noqa: RUF001
            f"  {median - reference:+7.1f} µs ({(median - reference) / reference * 100:+.1f} %)"
        )


if __name__ == "__main__":
    main()
