"""The benchmark suite of issue 7: `python -m bench.suite [--workers 1,2] [--runs 3]
[--duration 10] [--quick] [--no-delivery] [--no-attachments] [--out bench/results]`.

For each `--workers` value: the real server (`bench.common.running_server(workers=N)`, a fresh
data directory, the embedded nx-27017, MESSAGER_RATE_LIMITS=false since the senders flood on
purpose), the dataset of `bench.dataset` loaded into it, then `--runs` runs of the HTTP scenarios
of `bench.http_load`, each phase a warm-up and `--duration` seconds of closed-loop load, after the
server has worked through the change-stream events of the earlier writes (`Sentinel`):

1. floor: authenticated `{ __typename }`, 32 in flight (every workers value: the reference
   for the others of the same run);
2. sendMessage into the 32-participant conversation at 1, 8 and 32 concurrent senders (every
   workers value);
3. the reader's inbox, `conversations(first: 50)`, 8 in flight (first workers value only, or
   every one with `--all-scenarios`);
4. history: the newest page of 50 of the 5,000-message conversation, then the walk back to its
   first message by cursor, 8 in flight each (as 3);
5. search: the reader's first page of 20 results for a rare, a common and an absent word
   (`bench.dataset.RARE_WORD`...), one request in flight: latency (as 3).

`--phases` runs only some of these (e.g. `--phases search`).

Then, unless turned off, the delivery benchmark (`bench.delivery.measure`: its own fresh server
per rate and run) and the attachment benchmark (`bench.attachments.one_run` on a fresh server).
`--quick` makes everything small (dataset `QUICK`, 2 s phases, 1 run, small delivery and
attachment runs) to smoke-test the suite in about two minutes.

Writes `results.json` (every figure of every phase and run, the dataset's timings, the machine:
CPUs, load average before and after, versions) and `results.md` (per scenario, median [min-max]
over the runs against the issue's targets).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import http_load
from bench.common import MIB, Server, raise_fd_limit, running_server
from bench.dataset import ABSENT_WORD, COMMON_WORD, FULL, QUICK, RARE_WORD, Dataset, Scale, load
from bench.delivery import median_range
from bench.plot import delivery_plot

SERVER_ENV = {"MESSAGER_RATE_LIMITS": "false"}
"""32 senders flood one conversation on purpose: the per-user write limit is off."""
FLOOR_CONCURRENCY = 32
SEND_CONCURRENCIES = (1, 8, 32)
INBOX_CONCURRENCY = 8
HISTORY_CONCURRENCY = 8
SEARCH_CONCURRENCY = 1
"""One search at a time: the figure is the latency a user waits for, not a throughput."""
SEARCH_WORDS = {
    "search_rare": RARE_WORD,
    "search_common": COMMON_WORD,
    "search_absent": ABSENT_WORD,
}
PHASE_GROUPS = ("floor", "send", "inbox", "history", "search")
PACKAGES = ("aiohttp", "strawberry-graphql", "graphql-core", "pymongo", "nx-27017", "neosqlite")

Figures = dict[str, Any]


# -- targets (issue 7) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    text: str
    check: Callable[[list[Figures]], bool]
    """Whether the medians over the runs meet it (phases of one scenario, workers, concurrency)."""


def _median(rows: list[Figures], key: str) -> float:
    return statistics.median(r[key] for r in rows) if rows else float("nan")


def _no_errors(rows: list[Figures]) -> bool:
    return all(r["errors"] == 0 for r in rows)


TARGETS: dict[tuple[str, int | None, int | None], Target] = {
    # (scenario, workers or None for any, concurrency or None for any)
    ("send", 2, 32): Target(
        "≥ 500 msgs/s and p99 ≤ 100 ms (2 workers)",
        lambda rows: (
            _median(rows, "rps") >= 500 and _median(rows, "p99_ms") <= 100 and _no_errors(rows)
        ),
    ),
    ("inbox", None, None): Target(
        "≥ 300 req/s", lambda rows: _median(rows, "rps") >= 300 and _no_errors(rows)
    ),
    ("history_newest", None, None): Target(
        "≥ 500 req/s", lambda rows: _median(rows, "rps") >= 500 and _no_errors(rows)
    ),
    ("history_walk", None, None): Target(
        "≥ 500 req/s", lambda rows: _median(rows, "rps") >= 500 and _no_errors(rows)
    ),
    ("search_rare", None, None): Target(
        "p95 ≤ 100 ms", lambda rows: _median(rows, "p95_ms") <= 100 and _no_errors(rows)
    ),
}


def target_for(scenario: str, workers: int, concurrency: int) -> Target | None:
    for (name, w, c), target in TARGETS.items():
        if name == scenario and w in (None, workers) and c in (None, concurrency):
            return target
    return None


# -- one server: load, then the runs ---------------------------------------------------------------


async def run_phases(
    server: Server, data: Dataset, args: argparse.Namespace, all_scenarios: bool
) -> list[http_load.LoadResult]:
    """One run: every phase after the server has gone quiet."""
    duration, warmup = args.duration, args.warmup
    phases: list[tuple[str, int, Callable[[], Any]]] = [
        (
            "floor",
            FLOOR_CONCURRENCY,
            lambda: http_load.closed_loop(
                server,
                "floor",
                http_load.floor_workers(data, FLOOR_CONCURRENCY),
                duration,
                warmup,
            ),
        )
    ]
    for senders in SEND_CONCURRENCIES:
        phases.append(
            (
                "send",
                senders,
                lambda senders=senders: http_load.closed_loop(
                    server, "send", http_load.send_workers(data, senders), duration, warmup
                ),
            )
        )
    if all_scenarios:
        phases += [
            (
                "inbox",
                INBOX_CONCURRENCY,
                lambda: http_load.closed_loop(
                    server,
                    "inbox",
                    http_load.inbox_workers(data, INBOX_CONCURRENCY),
                    duration,
                    warmup,
                ),
            ),
            (
                "history_newest",
                HISTORY_CONCURRENCY,
                lambda: http_load.closed_loop(
                    server,
                    "history_newest",
                    http_load.history_newest_workers(data, HISTORY_CONCURRENCY),
                    duration,
                    warmup,
                ),
            ),
            (
                "history_walk",
                HISTORY_CONCURRENCY,
                lambda: http_load.history_walk(server, data, HISTORY_CONCURRENCY, duration, warmup),
            ),
        ]
        phases += [
            (
                scenario,
                SEARCH_CONCURRENCY,
                lambda scenario=scenario, word=word: http_load.search(
                    server, data, scenario, word, SEARCH_CONCURRENCY, duration, warmup
                ),
            )
            for scenario, word in SEARCH_WORDS.items()
        ]
    phases = [p for p in phases if p[0].split("_")[0] in args.phases]
    results = []
    for _name, _concurrency, phase in phases:
        # Writes of the previous phase (31 notifications a message) are change-stream events
        # every process re-reads: a phase starts once they are worked through.
        assert data.sentinel is not None
        settled = await data.sentinel.wait()
        result = await phase()
        result.extra["settle_seconds"] = round(settled, 1)
        print(f"    {http_load.line(result)}", flush=True)
        results.append(result)
    return results


def measure_workers(
    workers: int, args: argparse.Namespace, all_scenarios: bool, out: dict[str, Any]
) -> None:
    """A fresh server with `workers` processes, the dataset, and `--runs` runs of the phases."""
    print(f"workers {workers}: starting the server", flush=True)
    with running_server(
        workers=workers, prefix="bench-suite-", keep_logs=args.keep_logs, extra_env=SERVER_ENV
    ) as server:
        print(
            f"  server pids {server.server_pids} (nx-27017 {server.embedded_pid}) on port "
            f"{server.port}; loading the dataset",
            flush=True,
        )
        asyncio.run(load_and_measure(server, workers, args, all_scenarios, out))


async def load_and_measure(
    server: Server,
    workers: int,
    args: argparse.Namespace,
    all_scenarios: bool,
    out: dict[str, Any],
) -> None:
    """One event loop for the load and the runs: the dataset's sentinel lives on it."""
    data = await load(server, args.scale)
    try:
        rate = data.counts["messages"] / max(data.timings["messages"], 1e-9)
        print(
            f"  dataset: {data.counts}; reader may read {data.reader_readable}; messages "
            f"inserted at {rate:.0f}/s",
            flush=True,
        )
        out["datasets"].append(
            {
                "workers": workers,
                "counts": data.counts,
                "timings": data.timings,
                "messages_per_second": rate,
                "reader_readable": data.reader_readable,
                "history_messages": data.history_messages,
                "fanout_participants": len(data.fanout_user_ids),
            }
        )
        for index in range(1, args.runs + 1):
            print(f"  run {index} (load average {os.getloadavg()[0]:.2f})", flush=True)
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for result in await run_phases(server, data, args, all_scenarios):
                out["phases"].append(
                    {"workers": workers, "run": index, "started": started, **asdict(result)}
                )
    finally:
        if data.sentinel is not None:
            await data.sentinel.close()


# -- delivery and attachments (their own benchmarks, their own servers) ----------------------------


def delivery_runs(args: argparse.Namespace, out: dict[str, Any]) -> None:
    """HOOK: `bench.delivery.measure` for each workers value, rate and run (a fresh server each);
    its `Run` records go to `results.json` as they are."""
    from bench import delivery

    options = argparse.Namespace(
        subscribers=args.delivery_subscribers,
        readers=args.delivery_subscribers,
        messages=args.delivery_messages,
        quiet=5.0 if args.quick else 15.0,
        drain_deadline=30.0 if args.quick else 180.0,
        profile=None,
        keep_logs=args.keep_logs,
    )
    raise_fd_limit(args.delivery_subscribers * 2 + 256)
    # A smoke test needs one server of each kind, not one per workers value.
    for workers in args.workers[:1] if args.quick else args.workers:
        options.workers = workers
        for rate in args.delivery_rates:
            for index in range(1, args.runs + 1):
                print(f"delivery: workers {workers}, {rate:g} msg/s, run {index}", flush=True)
                try:
                    run = delivery.measure(options, index, rate)
                except SystemExit as exc:  # the server did not start
                    print(f"  failed: {exc}", flush=True)
                    run = None
                if run is not None:
                    out["delivery"].append({"workers": workers, "rate": rate, **asdict(run)})


def attachment_runs(args: argparse.Namespace, out: dict[str, Any]) -> None:
    """HOOK: `bench.attachments.one_run` on a fresh one-process server, as its own `main` does."""
    from bench import attachments

    size = int(args.attachment_mib * MIB)
    with running_server(workers=1, prefix="bench-suite-attachments-") as server:
        server.import_directory(attachments.DIRECTORY)
        token = server.token("ada@bench.test")
        pids = {"serve": server.process.pid, "embedded": server.embedded_pid}
        expected = attachments.sha256_of(size)
        baseline = attachments.idle_baseline(pids, seconds=2.0)
        sampler = attachments.RssSampler(pids)
        sampler.start()
        try:
            for index in range(1, args.runs + 1):
                run = asyncio.run(
                    attachments.one_run(
                        server.base_url, token, size, expected, sampler, baseline, index
                    )
                )
                print(
                    f"attachments run {index}: upload {run.upload_mb_s:.1f} MB/s, download "
                    f"{run.download_mb_s:.1f} MB/s, serve RSS +{run.serve_growth / MIB:.1f} MiB",
                    flush=True,
                )
                out["attachments"].append({"size": size, "run": index, **asdict(run)})
        finally:
            sampler.stop()


# -- report ----------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    memory = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        memory = f.readline().split(":", 1)[1].strip()
    return {
        "cpus": os.cpu_count(),
        "memory": memory,
        "platform": platform.platform(),
        "versions": versions,
    }


def _range(rows: list[Figures], key: str, fmt: str = ".1f") -> str:
    return median_range([r[key] for r in rows], fmt)


def markdown(out: dict[str, Any]) -> str:
    m = out["machine"]
    lines = [
        "# Benchmark suite results",
        "",
        f"`{out['command']}`, {out['started']} to {out['ended']} (UTC).",
        "",
        f"Machine: {m['cpus']} CPUs, {m['memory']} RAM, {m['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f". Load average (1, 5, 15 min) before: {out['load_before']}, after: "
        f"{out['load_after']}. Figures are median [min–max] over the runs.",  # noqa: RUF001
        "",
    ]
    if out["args"]["quick"]:
        lines += ["**`--quick`: a smoke test at a small scale; the targets do not apply.**", ""]
    for d in out["datasets"]:
        t = d["timings"]
        lines.append(
            f"Dataset (workers {d['workers']}): {d['counts']}; the reader may read "
            f"{d['reader_readable']}. Directory {t['directory']:.1f} s, messages "
            f"{t['messages']:.1f} s ({d['messages_per_second']:.0f}/s), conversations "
            f"{t['conversations']:.1f} s, read marks {t['read_marks']:.1f} s; the server then "
            f"worked through the change-stream events for {t['drain']:.1f} s; total "
            f"{t['total']:.1f} s."
        )
    lines.append("")
    titles = {
        "floor": ("Floor: authenticated `{ __typename }`", "req/s"),
        "send": ("sendMessage, 32-participant conversation (31 notifications each)", "msgs/s"),
        "inbox": ("Inbox: `conversations(first: 50)` of the reader", "req/s"),
        "history_newest": ("History: newest page of 50", "req/s"),
        "history_walk": ("History: walk back by cursor, pages of 50", "req/s"),
        "search_rare": (f"Search, rare word ({RARE_WORD!r}), first page of 20", "req/s"),
        "search_common": (f"Search, common word ({COMMON_WORD!r}), first page of 20", "req/s"),
        "search_absent": (f"Search, absent word ({ABSENT_WORD!r})", "req/s"),
    }
    phases = out["phases"]
    for scenario, (title, unit) in titles.items():
        rows = [p for p in phases if p["scenario"] == scenario]
        if not rows:
            continue
        lines += [
            f"## {title}",
            "",
            f"| workers | in flight | {unit} | p50 ms | p95 ms | p99 ms | errors | target | met? |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for workers, concurrency in sorted({(p["workers"], p["concurrency"]) for p in rows}):
            group = [p for p in rows if (p["workers"], p["concurrency"]) == (workers, concurrency)]
            target = target_for(scenario, workers, concurrency)
            met = ("yes" if target.check(group) else "**no**") if target else ""
            lines.append(
                f"| {workers} | {concurrency} | {_range(group, 'rps')} | "
                f"{_range(group, 'p50_ms')} | {_range(group, 'p95_ms')} | "
                f"{_range(group, 'p99_ms')} | {sum(p['errors'] for p in group)} | "
                f"{target.text if target else '—'} | {met} |"
            )
        errors = [p["first_error"] for p in rows if p["first_error"]]
        if errors:
            lines += ["", f"First error: `{errors[0][:300]}`"]
        if scenario == "send" and not any(p["workers"] == 2 for p in rows):
            lines += ["", "The target is for 2 workers, which did not run."]
        lines.append("")
    ratios = walk_ratios(phases)
    if ratios:
        ok = statistics.median(ratios) >= 0.9
        lines += [
            "## History: walk back against the newest page",
            "",
            "| walk / newest (req/s) | target | met? |",
            "|---|---|---|",
            f"| {median_range(ratios, '.2f')} | within 10 % (≥ 0.90) | "
            f"{'yes' if ok else '**no**'} |",
            "",
        ]
    lines += delivery_markdown(out["delivery"]) + attachments_markdown(out["attachments"])
    return "\n".join(lines) + "\n"


def walk_ratios(phases: list[Figures]) -> list[float]:
    """walk / newest requests per second, per (workers, run) that measured both."""
    by_run: dict[tuple[int, int], dict[str, float]] = {}
    for p in phases:
        if p["scenario"] in ("history_newest", "history_walk"):
            by_run.setdefault((p["workers"], p["run"]), {})[p["scenario"]] = p["rps"]
    return [
        r["history_walk"] / r["history_newest"]
        for r in by_run.values()
        if len(r) == 2 and r["history_newest"] > 0
    ]


def delivery_markdown(runs: list[Figures]) -> list[str]:
    if not runs:
        return []
    lines = [
        "## Delivery (bench.delivery)",
        "",
        "Latency percentiles: [delivery-latency.png](delivery-latency.png).",
        "",
        "| workers | msgs/s | subscribers | p99 ms | lost | RSS per idle subscriber KiB | target "
        "| met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workers, rate in sorted({(r["workers"], r["rate"]) for r in runs}):
        group = [r for r in runs if (r["workers"], r["rate"]) == (workers, rate)]
        phases = [p for r in group for p in r["phases"]]
        limit = 50.0 if rate <= 25 else 250.0
        ok = (
            statistics.median(p["p99_ms"] for p in phases) <= limit
            and all(p["lost"] == 0 for p in phases)
            and statistics.median(r["rss_per_subscriber_kib"] for r in group) <= 100
        )
        lines.append(
            f"| {workers} | {rate:g} | {median_range([r['subscribers'] for r in group], '.0f')} "
            f"| {median_range([p['p99_ms'] for p in phases])} | "
            f"{median_range([p['lost'] for p in phases], '.0f')} | "
            f"{median_range([r['rss_per_subscriber_kib'] for r in group])} | p99 ≤ {limit:g} ms, "
            f"nothing lost, ≤ 100 KiB | {'yes' if ok else '**no**'} |"
        )
    return [*lines, ""]


def attachments_markdown(runs: list[Figures]) -> list[str]:
    if not runs:
        return []
    size = runs[0]["size"]
    growth = [r["serve_growth"] / MIB for r in runs]
    upload = [r["upload_mb_s"] for r in runs]
    download = [r["download_mb_s"] for r in runs]
    return [
        f"## Attachments (bench.attachments, {size / MIB:g} MiB)",
        "",
        "| figure | result | target | met? |",
        "|---|---|---|---|",
        f"| upload MB/s | {median_range(upload)} | ≥ 50 | "
        f"{'yes' if statistics.median(upload) >= 50 else '**no**'} |",
        f"| download MB/s | {median_range(download)} | ≥ 50 | "
        f"{'yes' if statistics.median(download) >= 50 else '**no**'} |",
        f"| serve RSS growth MiB | {median_range(growth)} | ≤ 64 | "
        f"{'yes' if max(growth) <= 64 else '**no**'} |",
        "",
    ]


# -- main ------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", default="1,2", help="server processes, comma-separated")
    parser.add_argument("--runs", type=int, help="runs of every phase (default 3, quick 1)")
    parser.add_argument("--duration", type=float, help="measured seconds per phase (10; quick 2)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (2; quick 0.5)")
    parser.add_argument("--quick", action="store_true", help="small everything: a smoke test")
    parser.add_argument(
        "--all-scenarios",
        action="store_true",
        help="inbox and history for every workers value, not only the first",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASE_GROUPS),
        help=f"HTTP phases to run, comma-separated, of {', '.join(PHASE_GROUPS)} (default all)",
    )
    parser.add_argument("--delivery", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--attachments", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--delivery-subscribers", type=int, help="default 1000 (quick 20)")
    parser.add_argument("--delivery-rates", help="msgs/s, comma-separated (25,100; quick 5)")
    parser.add_argument("--delivery-messages", type=int, help="per rate (200; quick 10)")
    parser.add_argument("--attachment-mib", type=float, help="file size (100; quick 4)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--keep-logs", type=Path, help="copy the server logs here")
    args = parser.parse_args()
    quick = args.quick

    def pick(value: Any, full: Any, small: Any) -> Any:
        return value if value is not None else (small if quick else full)

    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not set(args.phases) <= set(PHASE_GROUPS):
        parser.error(f"--phases takes names of {', '.join(PHASE_GROUPS)}")
    args.runs = pick(args.runs, 3, 1)
    args.duration = pick(args.duration, 10.0, 2.0)
    args.warmup = pick(args.warmup, 2.0, 0.5)
    args.delivery_subscribers = pick(args.delivery_subscribers, 1000, 20)
    args.delivery_rates = [float(r) for r in pick(args.delivery_rates, "25,100", "5").split(",")]
    args.delivery_messages = pick(args.delivery_messages, 200, 10)
    args.attachment_mib = pick(args.attachment_mib, 100.0, 4.0)
    args.scale = QUICK if quick else FULL
    if not args.workers or min(args.workers) < 1 or args.runs < 1 or args.duration <= 0:
        parser.error("workers, runs and duration must be positive")
    return args


def main() -> None:
    args = parse_args()
    scale: Scale = args.scale
    out: dict[str, Any] = {
        "command": " ".join(["python -m bench.suite", *sys.argv[1:]]),
        "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "scale"
        },
        "scale": dataclasses.asdict(scale),
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "datasets": [],
        "phases": [],
        "delivery": [],
        "attachments": [],
    }
    print(
        f"{os.cpu_count()} CPUs, load average {out['load_before']}; workers {args.workers}, "
        f"{args.runs} runs, {args.duration:g} s phases; dataset {out['scale']}",
        flush=True,
    )
    started = time.monotonic()
    try:
        for position, workers in enumerate(args.workers):
            measure_workers(workers, args, args.all_scenarios or position == 0, out)
        if args.delivery:
            delivery_runs(args, out)
        if args.attachments:
            attachment_runs(args, out)
    finally:  # whatever ran is written, even after a failure or ^C
        out["ended"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        out["seconds"] = round(time.monotonic() - started, 1)
        out["load_after"] = [round(x, 2) for x in os.getloadavg()]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(out, indent=2, default=str))
        (args.out / "results.md").write_text(markdown(out))
        print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}", flush=True)
        if delivery_plot(out["delivery"], args.out / "delivery-latency.png"):
            print(f"drew {args.out / 'delivery-latency.png'}", flush=True)
    print(f"done in {out['seconds']:.0f} s; load average after {out['load_after']}")
    print()
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
