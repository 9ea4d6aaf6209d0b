"""Which rollup buckets exactly cover a time range, given what each resolution still keeps."""
from __future__ import annotations

from dataclasses import dataclass

from services.store.keys import RESOLUTIONS, Resolution

__all__ = ["Cover", "cover_range", "finest_available", "resolution_for_step", "RANGES"]

# The dashboards' range presets → seconds (None = custom dates).
RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400,
          "custom": None}


@dataclass(frozen=True)
class Cover:
    """Buckets (resolution name, bucket start) covering [start, end) exactly."""

    start: int
    end: int
    buckets: tuple[tuple[str, int], ...]


def _usable(res: Resolution, bucket: int, now: float) -> bool:
    return bucket + res.step_s + res.keep_s > now


def finest_available(ts: float, now: float) -> Resolution:
    """The finest resolution whose bucket holding `ts` is still kept."""
    for res in RESOLUTIONS:
        if _usable(res, res.bucket(ts), now):
            return res
    return RESOLUTIONS[-1]


def cover_range(start: float, end: float, now: float) -> Cover:
    """Cover [start, end): edges aligned (start down, end up) to the finest resolution still kept
    there, the inside filled with the coarsest buckets — so counts are exact for aligned ranges."""
    s_res = finest_available(start, now)
    e_res = _end_resolution(max(start, end - 1e-9), now)
    s = int(start // s_res.step_s) * s_res.step_s
    e = -(-int(end) // e_res.step_s) * e_res.step_s if end > start else s
    buckets: list[tuple[str, int]] = []

    def fill(lo: int, hi: int, level: int) -> None:
        if lo >= hi:
            return
        if level < 0:
            raise AssertionError("range edges not aligned to a kept resolution")
        res = RESOLUTIONS[level]
        first = -(-lo // res.step_s) * res.step_s
        last = hi // res.step_s * res.step_s
        if first < last and _usable(res, first, now):
            fill(lo, first, level - 1)
            buckets.extend((res.name, b) for b in range(first, last, res.step_s))
            fill(last, hi, level - 1)
        else:
            fill(lo, hi, level - 1)

    fill(s, e, len(RESOLUTIONS) - 1)
    return Cover(s, e, tuple(buckets))


def _end_resolution(last: float, now: float) -> Resolution:
    """Finest resolution kept for the whole coarser bucket holding `last`: the end edge is filled
    with its buckets back to that coarser boundary."""
    for i, res in enumerate(RESOLUTIONS[:-1]):
        coarser = RESOLUTIONS[i + 1]
        if _usable(res, coarser.bucket(last), now):
            return res
    return RESOLUTIONS[-1]


def resolution_for_step(step_s: int, start: float, now: float) -> Resolution:
    """Coarsest resolution that divides `step_s` and still keeps data from `start` on."""
    best = None
    for res in RESOLUTIONS:
        if step_s % res.step_s == 0 and _usable(res, res.bucket(start), now):
            best = res
    if best is None:
        raise ValueError("step")
    return best
