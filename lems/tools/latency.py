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
