"""Log-spaced duration histogram ("DDSketch"-style) whose quantiles are within 1 % relative error.

Bucket i holds values in (GAMMA**(i-1), GAMMA**i]; its representative value 2*GAMMA**i/(GAMMA+1)
is within ALPHA of every value in it. Histograms are plain {bucket: count} maps, so they merge by
addition across partners and periods (that is what the rollups store).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["ALPHA", "GAMMA", "ZERO_BUCKET", "bucket_of", "bucket_value", "bucket_upper", "quantile", "quantiles", "merge"]

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
LOG_GAMMA = math.log(GAMMA)
INV_LOG_GAMMA = 1 / LOG_GAMMA
MIN_VALUE = 1e-3  # durations below a millisecond are counted in the zero bucket
ZERO_BUCKET = -(10**6)


def bucket_of(value: float) -> int:
    """Index of the bucket that counts `value` (seconds, ≥ 0)."""
    if value < MIN_VALUE:
        return ZERO_BUCKET
    return math.ceil(math.log(value) * INV_LOG_GAMMA)


def bucket_value(index: int) -> float:
    """Representative value of a bucket (within ALPHA of every value it holds)."""
    if index == ZERO_BUCKET:
        return 0.0
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


def bucket_upper(index: int) -> float:
    """Upper bound of a bucket."""
    return 0.0 if index == ZERO_BUCKET else GAMMA**index


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """Sum several histograms."""
    out: dict[int, int] = {}
    for hist in histograms:
        for index, count in hist.items():
            out[index] = out.get(index, 0) + count
    return out


def _value_at_rank(items: list[tuple[int, int]], rank: int) -> float:
    """Representative value of the `rank`-th (0-based) smallest counted value."""
    seen = 0
    for index, count in items:
        seen += count
        if seen > rank:
            return bucket_value(index)
    return bucket_value(items[-1][0])


def quantiles(hist: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
    """Quantiles (0–1) with numpy's default linear interpolation between order statistics."""
    items = sorted((i, c) for i, c in hist.items() if c > 0)
    total = sum(c for _, c in items)
    out: list[float | None] = []
    for q in qs:
        if total == 0:
            out.append(None)
            continue
        pos = q * (total - 1)
        lo = math.floor(pos)
        frac = pos - lo
        low_value = _value_at_rank(items, lo)
        if frac == 0:
            out.append(low_value)
        else:
            high_value = _value_at_rank(items, min(lo + 1, total - 1))
            out.append(low_value + frac * (high_value - low_value))
    return out


def quantile(hist: Mapping[int, int], q: float) -> float | None:
    """One quantile; None for an empty histogram."""
    return quantiles(hist, [q])[0]
