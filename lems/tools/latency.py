"""Latency percentiles, the one way ``lems bench`` and ``lems replay`` compute them.

``statistics.quantiles(method="inclusive")``: the sample is taken as the whole
population, so the fastest and the slowest reply bound every percentile, and one
between two samples is interpolated linearly between them (numpy's default,
``linear``).  One sample is every percentile; no sample is none.
"""

from __future__ import annotations

import statistics
from typing import Iterable, Optional

PERCENTILES = (50, 95, 99)


def percentiles(values: Iterable[float], qs: Iterable[int] = PERCENTILES) -> dict[str, Optional[float]]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` of ``values`` (any order), for q in 1..99; None when empty."""
    data = list(values)
    qs = tuple(qs)
    if len(data) < 2:  # quantiles() wants two points (before Python 3.13)
        return {f"p{q}": (data[0] if data else None) for q in qs}
    cuts = statistics.quantiles(data, n=100, method="inclusive")  # cuts[i] is p(i + 1)
    return {f"p{q}": cuts[q - 1] for q in qs}


def latency_line(latency_ms: dict[str, Optional[float]], places: int) -> str:
    """``latency ms p50 1.23 p95 4.56 p99 7.89`` (``-`` for a percentile of no sample), as both reports print it."""
    return "latency ms " + " ".join(f"{p} {'-' if v is None else f'{v:.{places}f}'}" for p, v in latency_ms.items())
