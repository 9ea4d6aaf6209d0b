"""The fast Dash JSON encoder writes Dash's own bytes, for the values our layouts and callback
answers hold and for the odd ones it hands to Dash's encoder (numpy scalars, float32 and datetime
arrays, pandas values)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from dash import dcc, html
from dash._utils import to_json

from app.dash_json import dash_json, install_callback_encoder

ODD_VALUES = [
    np.float32(0.1), np.float16(1.5), np.float64(0.1), np.int64(7), np.int8(-3), np.uint16(9), np.bool_(True),
    np.datetime64("2026-12-01T10:00:00"), np.datetime64("NaT"), pd.NaT, pd.Timestamp("2026-12-01T10:00:00Z"),
    np.array([0.1, 0.2], dtype=np.float32), np.array([1.5, np.nan]), np.array([1, 2], dtype=np.int32),
    np.array([True, False]), np.array(["2026-12-01", "2026-12-02"], dtype="datetime64[D]"), np.array(["a", "b"]),
    dt.datetime(2026, 12, 1, 10, 0, 0, 123456), dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc), dt.date(2026, 12, 1),
    float("nan"), float("inf"), "</script> \u2028 a/b > c",
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: f"{type(v).__name__}:{v!r}"[:60])
def test_every_value_is_written_as_dashs_encoder_writes_it(value):
    graph = dcc.Graph(figure={"data": [{"x": [1, 2], "y": value}], "layout": {"title": {"text": "t"}}})
    for tree in ({"multi": True, "response": {"g": {"children": graph}}}, html.Div([graph, value]), [value]):
        assert dash_json(tree) == to_json(tree)


def test_callback_answers_go_through_the_fast_encoder():
    import dash._callback
    install_callback_encoder()
    install_callback_encoder()  # idempotent
    assert dash._callback.to_json is dash_json
