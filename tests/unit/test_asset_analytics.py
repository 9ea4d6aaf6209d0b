"""The Assets page's pure parts: aggregation of the `a` / `ah` rollup fields (services/analytics/
assets.py), its summary sentence and its figures — checked against sums computed here by hand."""
from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import plotly.graph_objects as go
import pytest

from callbacks.assets import summary_parts
from layouts import asset_figures as figs
from layouts.figures import format_bytes
from services import sketch
from services.analytics import assets as aa
from services.store import fields as rf
from services.vocabulary import ASSET_FORMATS, ASSET_TYPES, DENSITIES


def _fields(events: list[dict]) -> tuple[dict, dict]:
    """The `a` and `ah` fields the ingest plan writes for these events (the same field builders)."""
    a: dict[str, float] = defaultdict(float)
    ah: dict[str, int] = defaultdict(int)
    for e in events:
        dims = rf.asset_dims(e["asset_type"], e["format"], e["density"])
        a[rf.asset("n", dims)] += 1
        a[rf.asset("ob", dims)] += e["original_bytes"]
        a[rf.asset("wb", dims)] += e["output_bytes"]
        a[rf.asset("q", dims)] += e["quality_score"]
        a[rf.asset("ds", dims)] += e["duration_s"]
        ah[rf.asset_bucket(e["asset_type"], sketch.bucket_of(e["duration_s"]))] += 1
    return dict(a), dict(ah)


def _events(n: int, seed: int = 7, types=ASSET_TYPES) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        original = rng.randint(0, 3_000_000)
        out.append({"asset_type": rng.choice(types), "format": rng.choice(ASSET_FORMATS),
                    "density": rng.choice(DENSITIES), "original_bytes": original,
                    "output_bytes": rng.randint(0, original), "quality_score": rng.uniform(50, 100),
                    "duration_s": rng.lognormvariate(-1, 0.8)})
    return out


def _expected(events: list[dict]) -> dict:
    original = sum(e["original_bytes"] for e in events)
    output = sum(e["output_bytes"] for e in events)
    return {"assets": len(events), "original_bytes": original, "output_bytes": output,
            "saved_bytes": original - output, "compression_ratio": 1 - output / original if original else None,
            "quality_avg": sum(e["quality_score"] for e in events) / len(events),
            "duration_avg_s": sum(e["duration_s"] for e in events) / len(events)}


def _assert_row(got: dict, want: dict) -> None:
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key


def test_breakdown_rows_are_the_sums_of_their_events():
    events = _events(600)
    data = aa.asset_breakdown(*_fields(events))
    _assert_row(data["total"], _expected(events))
    for name, _, order in aa.DIMENSIONS:
        rows = data[f"by_{name}"]
        assert [r["value"] for r in rows] == [v for v in order if any(e[name] == v for e in events)]
        saved = sum(e["original_bytes"] - e["output_bytes"] for e in events)
        for row in rows:
            mine = [e for e in events if e[name] == row["value"]]
            _assert_row(row, _expected(mine))
            assert row["asset_share"] == pytest.approx(len(mine) / len(events))
            assert row["saved_share"] == pytest.approx(sum(e["original_bytes"] - e["output_bytes"] for e in mine) / saved)
        assert sum(r["asset_share"] for r in rows) == pytest.approx(1.0)
    combos = {(e["asset_type"], e["format"], e["density"]) for e in events}
    assert len(data["combinations"]) == len(combos)
    for row in data["combinations"]:
        key = (row["asset_type"], row["format"], row["density"])
        _assert_row(row, _expected([e for e in events if (e["asset_type"], e["format"], e["density"]) == key]))
    assert data["format_mix"] == {r["value"]: r["asset_share"] for r in data["by_format"]}


def test_combinations_in_vocabulary_order_and_empty_groups_left_out():
    events = [{"asset_type": t, "format": f, "density": d, "original_bytes": 10, "output_bytes": 4,
               "quality_score": 90.0, "duration_s": 0.5}
              for t, f, d in (("logo", "svg", "any"), ("icon", "webp", "hdpi"), ("icon", "png", "xxxhdpi"),
                              ("icon", "png", "mdpi"))]
    a, ah = _fields(events)
    a[rf.asset("n", "banner:jpg:any")] = 0  # a group whose count is 0 (e.g. a compacted zero) shows nowhere
    data = aa.asset_breakdown(a, ah)
    assert [(r["asset_type"], r["format"], r["density"]) for r in data["combinations"]] == [
        ("icon", "png", "mdpi"), ("icon", "png", "xxxhdpi"), ("icon", "webp", "hdpi"), ("logo", "svg", "any")]
    assert [r["value"] for r in data["by_asset_type"]] == ["icon", "logo"]


def test_undefined_figures_are_none_not_zero():
    row = aa.measures_row({"n": 3, "ob": 0, "wb": 0, "q": 240.0, "ds": 1.5})
    assert row["compression_ratio"] is None and row["saved_bytes"] == 0 and row["quality_avg"] == 80.0
    empty = aa.measures_row({})
    assert empty["quality_avg"] is None and empty["duration_avg_s"] is None and empty["assets"] == 0
    assert aa.shares({"png": 0, "webp": 0}) == {"png": None, "webp": None}
    assert aa.asset_breakdown({}, {})["times"] == [] and aa.top_saver([]) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_processing_percentiles_within_two_percent_of_numpy(seed):
    events = _events(500, seed)
    data = aa.asset_breakdown(*_fields(events))
    rows = {r["asset_type"]: r for r in data["times"]}
    assert list(rows) == [t for t in ASSET_TYPES if any(e["asset_type"] == t for e in events)] + ["all"]
    for name, row in rows.items():
        durations = [e["duration_s"] for e in events if name == "all" or e["asset_type"] == name]
        assert row["assets"] == row["timed"] == len(durations)
        for label, q in aa.QUANTILES:
            exact = float(np.percentile(durations, q * 100))
            assert abs(row[f"{label}_s"] - exact) <= 0.02 * exact, (name, label)


def test_percentiles_say_how_many_assets_they_cover():
    events = _events(40)
    a, _ = _fields(events)
    _, ah = _fields(events[:10])  # only the later events carry a histogram
    rows = {r["asset_type"]: r for r in aa.asset_breakdown(a, ah)["times"]}
    assert rows["all"]["assets"] == 40 and rows["all"]["timed"] == 10
    assert sum(r["timed"] for name, r in rows.items() if name != "all") == 10


def test_trends_per_window_sums_shares_and_percentiles():
    first, second = _events(300, 11), _events(200, 12, types=("icon",))
    windows = [(0, *_fields(first)), (300, {}, {}), (600, *_fields(second))]
    t = aa.asset_trends(windows)
    assert t["ts"] == [0, 300, 600] and t["assets"] == [300, 0, 200]
    for i, events in ((0, first), (2, second)):
        want = _expected(events)
        assert t["saved_bytes"][i] == want["saved_bytes"]
        assert t["compression_ratio"][i] == pytest.approx(want["compression_ratio"])
        for fmt in ASSET_FORMATS:
            count = sum(1 for e in events if e["format"] == fmt)
            assert t["formats"][fmt][i] == count
            assert t["format_shares"][fmt][i] == pytest.approx(count / len(events))
        exact = float(np.percentile([e["duration_s"] for e in events if e["asset_type"] == "icon"], 95))
        assert abs(t["times"]["icon"]["p95"][i] - exact) <= 0.02 * exact
    assert t["saved_bytes"][1] == 0 and t["compression_ratio"][1] is None
    assert all(t["format_shares"][fmt][1] is None for fmt in ASSET_FORMATS)
    assert t["times"]["icon"]["p95"][1] is None and t["times"]["splash"]["p50"][2] is None


def test_top_saver_and_the_summary_sentence():
    events = [{"asset_type": "icon", "format": fmt, "density": "hdpi", "original_bytes": original,
               "output_bytes": output, "quality_score": 90.0, "duration_s": 0.25}
              for fmt, original, output in (("png", 3 * 2**20, 2 * 2**20), ("webp", 4 * 2**20, 1 * 2**20),
                                            ("svg", 2048, 2048))]
    data = aa.asset_breakdown(*_fields(events))
    assert aa.top_saver(data["by_format"])["value"] == "webp"
    parts = dict(summary_parts(data))
    assert parts["total"] == "3 assets: 4.0 of 7.0 MiB saved (57.1 %), mean quality 90.0."
    assert parts["format"] == "webp saves the most: 3.0 MiB (75.0 % of all saved)."
    assert parts["time"] == "Slowest: icon, p95 0.25 s."
    nothing = aa.asset_breakdown(*_fields([dict(events[2])]))
    assert dict(summary_parts(nothing))["format"] == "No format saved any bytes."
    assert dict(summary_parts(nothing))["total"].startswith("1 asset: 0 B of 2.0 KiB saved (0.0 %)")


def test_figures_are_valid_plotly_in_both_themes_and_sizes_in_binary_units():
    events = _events(400, 5)
    data = aa.asset_breakdown(*_fields(events))
    trends = {"step_s": 3600, **aa.asset_trends([(0, *_fields(events[:250])), (3600, *_fields(events[250:]))])}
    for theme in ("light", "dark"):
        for figure in (figs.breakdown_figure(data["by_format"], "format", theme), figs.saved_figure(trends, theme),
                       figs.format_trend_figure(trends, theme), figs.format_mix_figure(data["by_format"], theme),
                       figs.times_figure(data["times"], theme), figs.time_trend_figure(trends, theme)):
            go.Figure(figure)  # raises on anything outside Plotly's schema
            assert figure["layout"]["template"]["layout"]["font"]["color"] == ("#f2f5fa" if theme == "dark"
                                                                              else "#2a3f5f")
    saved = figs.saved_figure(trends, "light")
    unit, size = figs.byte_unit(max(trends["saved_bytes"]))
    assert unit == format_bytes(max(trends["saved_bytes"])).split()[1] and size == 1024 ** ["B", "KiB", "MiB",
                                                                                           "GiB"].index(unit)
    assert [y * size for y in saved["data"][0]["y"]] == pytest.approx(trends["saved_bytes"])
    assert unit in saved["layout"]["yaxis"]["title"]["text"]
    assert [c[0] for c in saved["data"][0]["customdata"]] == [format_bytes(s) for s in trends["saved_bytes"]]
    stacked = figs.format_trend_figure(trends, "light")
    for i in range(2):
        assert sum(trace["y"][i] for trace in stacked["data"]) == pytest.approx(100.0)
    ratio = figs.breakdown_figure(data["by_asset_type"], "asset type", "light")["data"][0]
    assert ratio["y"] == pytest.approx([r["compression_ratio"] * 100 for r in data["by_asset_type"]])
    assert figs.byte_unit(0) == ("B", 1) and figs.byte_unit(5 * 2**30) == ("GiB", 2**30)


def test_time_trend_shows_p95_and_its_buttons_switch_the_quantile():
    trends = aa.asset_trends([(0, *_fields(_events(100, 3)))])
    figure = figs.time_trend_figure({"step_s": 300, **trends}, "light")
    visible = [trace["name"] for trace in figure["data"] if trace["visible"]]
    assert visible == [t for t in ASSET_TYPES if t in trends["times"]]
    buttons = figure["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"] for b in buttons] == ["p50", "p95", "p99"]
    assert sum(buttons[0]["args"][0]["visible"]) == len(visible)
