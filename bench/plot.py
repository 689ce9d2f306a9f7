"""The delivery latency-percentile plot of the suite (`delivery-latency.png`).

One curve per (workers, rate): the latency from `sendMessage`'s answer to receipt at each
subscriber, at each percentile of `bench.delivery.CURVE_PERCENTILES`, the median over the runs.
The x axis spreads the tail (log of 1 / (1 - p)), as latency plots usually do; the targets of
the issue are drawn as dotted lines. Needs matplotlib (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

TARGETS_MS = {25.0: 50.0, 100.0: 250.0}  # p99 targets by rate (msgs/s)


def delivery_plot(runs: list[dict[str, Any]], path: Path) -> bool:
    """Draw the curves of `runs` (the suite's `delivery` records) to `path`; False when there is
    nothing to draw or matplotlib is missing."""
    curves: dict[tuple[int, float], dict[float, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for run in runs:
        for phase in run.get("phases", []):
            for q, ms in (phase.get("percentiles_ms") or {}).items():
                if not math.isnan(ms):
                    curves[(run["workers"], run["rate"])][float(q)].append(ms)
    if not curves:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(8, 5))
    for (workers, rate), points in sorted(curves.items()):
        qs = sorted(q for q in points if q < 100)
        xs = [_spread(q) for q in qs]
        ys = [max(statistics.median(points[q]), 0.1) for q in qs]
        axes.plot(xs, ys, marker="o", label=f"{rate:g} msgs/s, --workers {workers}")
    for rate, target in TARGETS_MS.items():
        axes.axhline(target, linestyle=":", color="grey")
        axes.annotate(f"p99 target at {rate:g} msgs/s", (0, target), fontsize=8, color="grey")
    ticks = [0, 50, 90, 99, 99.9]
    axes.set_xticks([_spread(q) for q in ticks], [f"p{q:g}" for q in ticks])
    axes.set_yscale("log")
    axes.set_xlabel("percentile of deliveries")
    axes.set_ylabel("send answer to receipt (ms)")
    subscribers = max(run.get("subscribers", 0) for run in runs)
    axes.set_title(f"messageAdded delivery to {subscribers:,} subscribers (median of runs)")
    axes.legend()
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _spread(q: float) -> float:
    return math.log10(1 / (1 - min(q, 99.95) / 100))
