"""The fast Dash JSON encoder writes Dash's own bytes, for the values our layouts and callback
answers hold and for the odd ones it hands to Dash's encoder (numpy scalars, float32 and datetime
arrays, pandas values). "Dash's own bytes" = `dash._utils.to_json`, what Dash writes layouts and
callback answers with (plotly's encoder, orjson engine): its bytes for a value can depend on the
tree around it (a float32 in a plain dict is written by orjson, next to a component by plotly's
cleaner), so every value is checked in each kind of tree a page sends."""
from __future__ import annotations

import datetime as dt
import decimal
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from dash import Dash, Input, Output, dcc, html
from dash._utils import to_json
from hypothesis import given, settings, strategies as st

from app.dash_json import dash_json, install_callback_encoder

ODD_VALUES = [
    np.float32(0.1), np.float16(1.5), np.float16(0.1), np.float64(0.1), np.longdouble(0.1), np.int64(7), np.int8(-3),
    np.uint16(9), np.uint64(2**64 - 1), np.bool_(True), np.bool_(False),
    np.datetime64("2026-12-01T10:00:00"), np.datetime64("2026-12-01T10:00:00.123456789"), np.datetime64("2026-12-01"),
    np.datetime64("NaT"), np.timedelta64(5, "s"), np.complex64(1 + 2j),
    pd.NaT, pd.NA, pd.Timestamp("2026-12-01T10:00:00Z"), pd.Timestamp("2026-12-01T10:00:00.5"),
    pd.Timestamp("2026-12-01T10:00:00", tz="Europe/Berlin"), pd.Timedelta("5s"),
    pd.Series([1.0, 2.0]), pd.Series(pd.to_datetime(["2026-12-01", "2026-12-02"])), pd.DatetimeIndex(["2026-12-01"]),
    np.array([0.1, 0.2], dtype=np.float32), np.array([0.1], dtype=np.float16), np.array([1.5, np.nan]),
    np.array([1, 2], dtype=np.int32), np.array([True, False]), np.array([[1.0, 2.0], [3.0, 4.0]]),
    np.arange(6.0)[::2], np.array([[1, 2], [3, 4]])[:, 0], np.array([], dtype=np.float64), np.zeros((0, 3)),
    np.array([2**64 - 1], dtype=np.uint64),
    np.array(1.5), np.array(7), np.array(True),  # 0-d arrays: Dash writes them as one-element lists
    np.array([1, 2], dtype=">i8"), np.array([1.5], dtype=">f8"),  # byte-swapped: Dash refuses them
    np.array(["2026-12-01", "2026-12-02"], dtype="datetime64[D]"), np.array(["2026-12-01T00:00", "NaT"], dtype="datetime64[m]"),
    np.array(["a", "b"]), np.array([1, "a"], dtype=object), np.ma.masked,
    dt.datetime(2026, 12, 1, 10, 0, 0, 123456), dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc), dt.date(2026, 12, 1),
    dt.time(10, 30), decimal.Decimal("1.5"), float("nan"), float("inf"), -0.0, 2**70, (1, 2),
    {np.int64(1): "numpy key"}, {dt.datetime(2026, 1, 1): "datetime key"}, {1: "int key"},
    go.Figure(go.Scatter(x=[1], y=[np.float32(0.5)])), go.Figure(go.Scatter(x=pd.to_datetime(["2026-12-01"]), y=[1])),
    "</script> \u2028 a/b > c",
]

# Every kind of tree a value reaches the encoder in: a layout (components, a figure in a Graph, a
# Store's data) and a callback answer (plain props, or components as children).
TREES = {
    "bare": lambda v: v,
    "list": lambda v: [v],
    "answer-props": lambda v: {"multi": True, "response": {"g": {"figure": {"data": [{"y": v}]}}, "s": {"data": {"k": v}}}},
    "answer-children": lambda v: {"multi": True, "response": {"p": {"children": html.Div([v, dcc.Store(id="t", data=v)])}}},
    "graph": lambda v: html.Div(dcc.Graph(figure={"data": [{"x": [1, 2], "y": v}], "layout": {"title": {"text": "t"}}})),
    "store": lambda v: dcc.Store(id="s", data={"k": [v, {"in": v}]}),
}


def encoded(encoder, tree) -> str:
    """The encoder's text, or the kind of error it raises (Dash turns a TypeError into its "invalid
    callback output" error: ours must raise where Dash's does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas: "Discarding nonzero nanoseconds" — same for both
        try:
            return encoder(tree)
        except Exception as exc:  # noqa: BLE001 — compared, not swallowed
            return f"raises {type(exc).__name__}"


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: f"{type(v).__name__}:{v!r}"[:60])
def test_every_value_is_written_as_dashs_encoder_writes_it(value, tree):
    whole = TREES[tree](value)
    assert encoded(dash_json, whole) == encoded(to_json, whole)


def test_zero_dimensional_and_byte_swapped_arrays_go_to_dashs_encoder():
    """The two array shapes `tolist()` writes differently from Dash: found by the test above."""
    assert dash_json({"y": np.array(1.5)}) == '{"y":[1.5]}' == to_json({"y": np.array(1.5)})
    with pytest.raises(TypeError):
        dash_json({"y": np.array([1, 2], dtype=">i8")})


_LEAVES = st.sampled_from(ODD_VALUES) | st.floats() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=5) | st.none()
_PLAIN = st.recursive(_LEAVES, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                      max_leaves=6)  # what a figure or a Store's data holds (no components)


def _trees(children):
    return (st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
            | st.builds(lambda c: html.Div(c), st.lists(children, max_size=3))
            | st.builds(lambda y: dcc.Graph(figure={"data": [{"y": y}]}), _PLAIN)
            | st.builds(lambda d: dcc.Store(id="t", data=d), _PLAIN))


@settings(max_examples=300, deadline=None)
@given(st.recursive(_PLAIN, _trees, max_leaves=8))
def test_any_nesting_of_them_is_written_as_dashs_encoder_writes_it(tree):
    assert encoded(dash_json, tree) == encoded(to_json, tree)


def test_callback_answers_go_through_the_fast_encoder():
    import dash._callback
    install_callback_encoder()
    install_callback_encoder()  # idempotent
    assert dash._callback.to_json is dash_json


ANSWER_VALUES = [np.float32(0.1), np.float16(1.5), np.datetime64("2026-12-01T10:00:00"), np.datetime64("NaT"),
                 pd.NaT, pd.Timestamp("2026-12-01T10:00:00Z"), np.bool_(True), np.array(2.5),
                 np.array([0.1, 0.2], dtype=np.float32), pd.Series(pd.to_datetime(["2026-12-01"]))]


@pytest.mark.parametrize("value", ANSWER_VALUES, ids=lambda v: f"{type(v).__name__}:{v!r}"[:40])
def test_a_callback_answer_on_the_wire_is_dashs_bytes(value):
    """Through Dash's own callback route: a figure, a Store's data and a component child holding the
    value come back as the bytes Dash's encoder writes for that answer."""
    install_callback_encoder()
    app = Dash(__name__)
    app.layout = html.Div([html.Button(id="b"), dcc.Graph(id="g"), dcc.Store(id="s"), html.Div(id="p")])

    @app.callback(Output("g", "figure"), Output("s", "data"), Output("p", "children"), Input("b", "n_clicks"))
    def answer(_n):
        return {"data": [{"y": [value]}]}, {"k": value}, html.Span(dcc.Store(id="t", data=[value]))

    client = app.server.test_client()
    response = client.post("/_dash-update-component", json={
        "output": "..g.figure...s.data...p.children..",
        "outputs": [{"id": "g", "property": "figure"}, {"id": "s", "property": "data"},
                    {"id": "p", "property": "children"}],
        "inputs": [{"id": "b", "property": "n_clicks", "value": 1}], "changedPropIds": ["b.n_clicks"], "state": []})
    assert response.status_code == 200
    expected = {"multi": True, "response": {"g": {"figure": {"data": [{"y": [value]}]}}, "s": {"data": {"k": value}},
                                            "p": {"children": html.Span(dcc.Store(id="t", data=[value]))}}}
    assert response.get_data(as_text=True) == encoded(to_json, expected)


def test_a_layout_on_the_wire_is_dashs_bytes():
    """The app's `/_dash-layout` (app.factory's Dash, written by dash_json) holding the odd values."""
    from app.factory import _Dash

    app = _Dash(__name__)
    app.layout = html.Div([dcc.Graph(figure={"data": [{"y": ANSWER_VALUES}]}), dcc.Store(id="t", data={"v": ANSWER_VALUES})])
    body = app.server.test_client().get("/_dash-layout").get_data(as_text=True)
    assert body == encoded(to_json, app.layout)
