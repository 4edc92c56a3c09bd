"""Percentiles and a plain-text table, for every benchmark's report."""

import statistics


def percentile(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(samples: list[float]) -> str:
    """p50/p95/p99 (and the mean) of samples in seconds, shown in milliseconds."""
    parts = [f"p{p} {percentile(samples, p) * 1000:.0f} ms" for p in (50, 95, 99)]
    return ", ".join(parts) + f", mean {statistics.fmean(samples) * 1000:.0f} ms (n={len(samples)})"
