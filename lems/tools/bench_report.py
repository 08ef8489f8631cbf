"""``lems bench``, the report: one line per server, the ratio, the plot and the profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from lems.tools.latency import latency_line


def describe(result: dict[str, Any]) -> str:
    errors = sum(result["errors"].values())
    detail = f" ({', '.join(f'{c} x{n}' for c, n in sorted(result['errors'].items()))})" if errors else ""
    rss = result.get("rss_mb")
    memory = (f"\n          memory MB start {rss['start']:.1f} middle {rss['middle']:.1f} end {rss['end']:.1f} "
              f"peak {rss['peak']:.1f}") if rss else ""
    failures = result.get("connect_failures") or []
    if failures:
        memory += f"\n          {len(failures)} terminal(s) could not connect, e.g. {failures[0]}"
    if result.get("cpu_us_per_reply"):
        memory += (f"\n          CPU {result['cpu_us_per_reply']:.0f} us per reply "
                   f"({result['cpu_share'] * 100:.0f} % of a core)")
    if "ready_seconds" in result:
        memory += f"\n          started and listening in {result['ready_seconds']:.1f} s"
    return (f"  {result['server']:<7} {result['terminals']:>6} terminals {result['replies']:>8} replies {result['per_second']:>9.1f} msg/s  "
            f"{latency_line(result['latency_ms'], 2)}  "
            f"errors {errors}{detail}  unanswered {result['outstanding']}{memory}")


def ratio(runs: list[dict[str, Any]]) -> Optional[str]:
    """The switch against the echo server, when both ran."""
    if len(runs) != 2 or not runs[1]["per_second"]:
        return None
    switch, echo = runs
    p99 = (switch["latency_ms"]["p99"] or 0) / (echo["latency_ms"]["p99"] or 1)
    line = (f"  ratio switch/echo: throughput {switch['per_second'] / echo['per_second']:.2f}, "
            f"p99 latency {p99:.1f}x")
    if switch.get("cpu_us_per_reply") and echo.get("cpu_us_per_reply"):
        line += f", CPU per reply {echo['cpu_us_per_reply'] / switch['cpu_us_per_reply']:.2f} (echo/switch)"
    return line


def plot(path: Path, runs: list[dict[str, Any]], title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(10, 5))
    for run in runs:
        xs = [s[0] for s in run["samples"]]
        ys = [s[1] for s in run["samples"]]
        ax.plot(xs, ys, ".", markersize=2, alpha=0.5, label=f"{run['server']} ({run['per_second']:.0f} msg/s)")
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def print_profile(path: Path, limit: int = 25) -> None:
    import pstats

    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
