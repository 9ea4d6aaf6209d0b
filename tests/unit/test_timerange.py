"""Covers of a time range: exact, non-overlapping, coarsest buckets inside."""
from hypothesis import given, strategies as st

from services.store.keys import RESOLUTIONS
from services.timerange import cover_range

STEP = {r.name: r.step_s for r in RESOLUTIONS}
NOW = 1_795_824_000 + 5 * 3600 + 1234  # 2026-11-28 05:20:34 UTC


def test_last_hour_is_sixty_minute_buckets():
    cover = cover_range(NOW - 3600, NOW, NOW)
    assert {res for res, _ in cover.buckets} == {"m"}
    assert cover.end - cover.start == 3660  # the current, partial minute is included


def test_ninety_days_uses_days_inside_and_finer_edges():
    cover = cover_range(NOW - 90 * 86400, NOW, NOW)
    kinds = [res for res, _ in cover.buckets]
    assert kinds.count("d") == 90  # day -90 (start aligned down) … yesterday; today in hours + minutes
    assert cover.start % 86400 == 0  # hours are gone 90 days back: aligned to the day


@given(st.integers(min_value=0, max_value=80 * 86400), st.integers(min_value=60, max_value=40 * 86400))
def test_cover_is_contiguous_and_exact(offset, length):
    start = NOW - offset - length
    end = NOW - offset
    cover = cover_range(start, end, NOW)
    assert cover.start <= start and cover.end >= end
    position = cover.start
    for res, bucket in sorted(cover.buckets, key=lambda b: b[1]):
        assert bucket == position, "gap or overlap"
        position += STEP[res]
    assert position == cover.end
    for res, bucket in cover.buckets:
        keep = next(r.keep_s for r in RESOLUTIONS if r.name == res)
        assert bucket + STEP[res] + keep > NOW, "bucket no longer kept"
