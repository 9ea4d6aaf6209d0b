"""The duration histogram: quantiles within 2 % of numpy's exact percentile, merges by addition."""
from collections import Counter

import numpy as np
from hypothesis import given, settings, strategies as st

from services import sketch

durations = st.lists(st.floats(min_value=0.01, max_value=86400, allow_nan=False, allow_infinity=False),
                     min_size=1, max_size=400)


def hist_of(values):
    return Counter(sketch.bucket_of(v) for v in values)


@settings(max_examples=300, deadline=None)
@given(durations, st.sampled_from([0.5, 0.95, 0.99, 0.0, 1.0, 0.25]))
def test_quantile_within_two_percent_of_numpy(values, q):
    exact = float(np.percentile(values, q * 100))
    estimate = sketch.quantile(hist_of(values), q)
    assert abs(estimate - exact) <= 0.02 * exact


@settings(max_examples=100, deadline=None)
@given(st.lists(durations, min_size=1, max_size=6))
def test_merged_histograms_equal_histogram_of_union(parts):
    merged = sketch.merge(hist_of(p) for p in parts)
    union = [v for p in parts for v in p]
    assert merged == dict(hist_of(union))
    exact = float(np.percentile(union, 95))
    assert abs(sketch.quantile(merged, 0.95) - exact) <= 0.02 * exact


def test_bucket_value_is_within_alpha_of_its_members():
    for value in (0.001, 0.5, 1.0, 7.3, 599.99, 3600.0, 86400.0):
        representative = sketch.bucket_value(sketch.bucket_of(value))
        assert abs(representative - value) <= sketch.ALPHA * value * 1.0000001


def test_empty_histogram_has_no_quantile():
    assert sketch.quantile({}, 0.5) is None


def test_sub_millisecond_values_count_as_zero():
    assert sketch.quantile(hist_of([0.0, 0.0001]), 0.5) == 0.0
