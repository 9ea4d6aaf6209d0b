"""Log-spaced duration histogram ("DDSketch"-style) whose quantiles are within 1 % relative error.

Bucket i holds values in (GAMMA**(i-1), GAMMA**i]; its representative value 2*GAMMA**i/(GAMMA+1)
is within ALPHA of every value in it. Histograms are plain {bucket: count} maps, so they merge by
addition across partners and periods (that is what the rollups store).
"""
from __future__ import annotations

import math
from bisect import bisect_right
from itertools import accumulate
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["ALPHA", "GAMMA", "ZERO_BUCKET", "bucket_of", "bucket_value", "bucket_upper", "quantile", "quantiles", "quantiles_many", "merge"]

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


def quantiles(hist: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
    """Quantiles (0–1) with numpy's default linear interpolation between order statistics."""
    items = sorted(item for item in hist.items() if item[1] > 0)
    if not items:
        return [None for _ in qs]
    indexes = [i for i, _ in items]
    cumulative = list(accumulate(c for _, c in items))
    total, last = cumulative[-1], len(items) - 1

    def value_at(rank: int) -> float:  # the rank-th (0-based) smallest counted value
        return bucket_value(indexes[min(bisect_right(cumulative, rank), last)])

    out: list[float | None] = []
    for q in qs:
        pos = q * (total - 1)
        lo = math.floor(pos)
        frac = pos - lo
        low_value = value_at(lo)
        out.append(low_value if frac == 0 else low_value + frac * (value_at(min(lo + 1, total - 1)) - low_value))
    return out


def quantiles_many(hists: Sequence[Mapping[int, int]], qs: Sequence[float]) -> list[list[float | None]]:
    """`quantiles(hist, qs)` of every histogram (the same numbers), computed together with numpy:
    one matrix of counts (histograms × the buckets any of them uses) and its running sums, instead
    of a sort and a walk per histogram (a 30-day percentile chart asks for a thousand of them)."""
    if not hists:
        return []
    columns = sorted({i for hist in hists for i, c in hist.items() if c > 0})
    if not columns:
        return [[None] * len(qs) for _ in hists]
    position = {index: j for j, index in enumerate(columns)}
    counts = np.zeros((len(hists), len(columns)), dtype=np.int64)
    for row, hist in enumerate(hists):
        for index, count in hist.items():
            if count > 0:
                counts[row, position[index]] = count
    values = np.array([bucket_value(i) for i in columns])  # the same floats as bucket_value
    cumulative = np.cumsum(counts, axis=1)
    total = cumulative[:, -1]
    last = len(columns) - 1

    def value_at(rank: np.ndarray) -> np.ndarray:  # first bucket whose running count exceeds the rank
        return values[np.minimum((cumulative <= rank[:, None]).sum(axis=1), last)]

    out = np.empty((len(qs), len(hists)))
    for k, q in enumerate(qs):
        pos = q * (total - 1).astype(float)
        lo = np.floor(pos)
        frac = pos - lo
        low = value_at(lo.astype(np.int64))
        high = value_at(np.minimum(lo.astype(np.int64) + 1, total - 1))
        out[k] = np.where(frac == 0, low, low + frac * (high - low))
    empty = total == 0
    return [[None if empty[row] else float(out[k, row]) for k in range(len(qs))] for row in range(len(hists))]


def quantile(hist: Mapping[int, int], q: float) -> float | None:
    """One quantile; None for an empty histogram."""
    return quantiles(hist, [q])[0]
