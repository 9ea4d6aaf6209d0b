"""Figure builders, KPI tiles, the health summary and revenue by tier: plain functions, no I/O."""
from __future__ import annotations

from datetime import datetime, timezone

import plotly.io as pio
import pytest

from callbacks.executive import executive_tiles, health_items
from callbacks.operations import kpi_tiles
import plotly.graph_objects as go

from layouts import figures
from layouts.figures import STATUS_COLOURS, change, format_duration, template_for
from services.queries.dashboard import DURATION_BANDS, TIERS, revenue_by_tier



def _validated(builder):
    """The builders return plain dicts; go.Figure checks them against Plotly's schema and gives
    attribute access for the assertions."""
    return lambda *args, **kwargs: go.Figure(builder(*args, **kwargs))


build_rate_figure = _validated(figures.build_rate_figure)
build_time_gauge = _validated(figures.build_time_gauge)
duration_heatmap_figure = _validated(figures.duration_heatmap_figure)
monthly_trend_figure = _validated(figures.monthly_trend_figure)
revenue_figure = _validated(figures.revenue_figure)
stage_durations_figure = _validated(figures.stage_durations_figure)
success_rate_gauge = _validated(figures.success_rate_gauge)

RED, AMBER, GREEN = "#e03131", "#f08c00", "#2f9e44"
T0 = 1_795_824_000  # 2026-11-28 00:00:00 UTC


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


# --- component tree helpers -------------------------------------------------------------------

def _walk(component):
    """Every Dash component in a tree, depth first (strings and None skipped)."""
    if component is None or isinstance(component, (str, int, float)):
        return
    if isinstance(component, (list, tuple)):
        for child in component:
            yield from _walk(child)
        return
    yield component
    yield from _walk(getattr(component, "children", None))


def kpi_values(tree) -> dict[str, str]:
    """{data-kpi: rendered value} of every KPI value in the tree."""
    out = {}
    for component in _walk(tree):
        kpi = component.to_plotly_json()["props"].get("data-kpi")
        if kpi is not None:
            assert kpi not in out, f"duplicate KPI {kpi}"
            out[kpi] = component.children
    return out


def kpi_details(tree) -> dict[str, tuple[str, str]]:
    """{data-kpi: (detail text, detail className)} of every tile that has a detail line."""
    out = {}
    for component in _walk(tree):
        if (getattr(component, "className", None) or "") != "kpi-tile":
            continue
        label, value, detail = component.children
        if detail is not None:
            out[value.to_plotly_json()["props"]["data-kpi"]] = (detail.children, detail.className)
    return out


# --- template_for -----------------------------------------------------------------------------

def test_dark_theme_uses_plotly_dark():
    assert template_for("dark") == "plotly_dark"
    assert template_for("light") == "plotly_white"


def test_figure_carries_the_theme_template_cut_to_what_the_figures_use():
    for theme, name in (("dark", "plotly_dark"), ("light", "plotly_white")):
        full = pio.templates[name].to_plotly_json()
        template = success_rate_gauge(0.97, theme).layout.template.to_plotly_json()
        for key in ("paper_bgcolor", "plot_bgcolor", "font", "colorway", "xaxis", "yaxis", "hoverlabel"):
            assert template["layout"][key] == full["layout"][key], (theme, key)
        assert template["data"]["bar"] == full["data"]["bar"]
        assert "scene" not in template["layout"] and "surface" not in template["data"]


# --- success rate gauge -----------------------------------------------------------------------

@pytest.mark.parametrize("rate, colour", [
    (0.899, RED), (0.90, AMBER), (0.93, AMBER), (0.9499, AMBER), (0.95, GREEN), (0.96, GREEN), (1.0, GREEN),
])
def test_success_gauge_colour_by_threshold(rate, colour):
    fig = success_rate_gauge(rate, "light")
    assert fig.data[0].value == pytest.approx(rate * 100)
    assert fig.data[0].gauge.bar.color == colour


def test_success_gauge_none_has_no_value():
    fig = success_rate_gauge(None, "light")
    assert fig.data[0].value is None


def test_success_gauge_axis_is_percent():
    assert tuple(success_rate_gauge(0.5, "light").data[0].gauge.axis.range) == (0, 100)


# --- build time gauge -------------------------------------------------------------------------

def test_build_time_threshold_is_target_minutes():
    gauge = build_time_gauge(240, 300, "light").data[0].gauge
    assert gauge.threshold.value == pytest.approx(5.0)
    assert gauge.axis.range[0] == 0
    assert gauge.axis.range[1] >= 10.0


def test_build_time_value_in_minutes():
    assert build_time_gauge(450, 300, "light").data[0].value == pytest.approx(7.5)


def test_build_time_axis_fits_slow_builds():
    gauge = build_time_gauge(3000, 300, "light").data[0]
    assert gauge.gauge.axis.range[1] >= gauge.value
    assert gauge.gauge.axis.range[1] >= 2 * 5.0


@pytest.mark.parametrize("avg_s, colour", [(200, GREEN), (240, GREEN), (290, AMBER), (300, AMBER), (301, RED)])
def test_build_time_colour_against_target(avg_s, colour):
    assert build_time_gauge(avg_s, 300, "light").data[0].gauge.bar.color == colour


def test_build_time_none_has_no_value():
    fig = build_time_gauge(None, 300, "light")
    assert fig.data[0].value is None
    assert fig.data[0].gauge.threshold.value == pytest.approx(5.0)


# --- build rate -------------------------------------------------------------------------------

RATE = {"step_s": 3600, "rows": [
    {"ts": T0, "success": 10, "failed": 2, "cancelled": 1},
    {"ts": T0 + 3600, "success": 7, "failed": 0, "cancelled": 3},
    {"ts": T0 + 7200, "success": 0, "failed": 5, "cancelled": 0},
]}


def test_build_rate_three_stacked_status_bars():
    fig = build_rate_figure(RATE, "light")
    assert [t.type for t in fig.data] == ["bar"] * 3
    assert [t.name for t in fig.data] == ["success", "failed", "cancelled"]
    assert fig.layout.barmode == "stack"
    assert [t.marker.color for t in fig.data] == [STATUS_COLOURS[s] for s in ("success", "failed", "cancelled")]


def test_build_rate_y_matches_rows():
    fig = build_rate_figure(RATE, "light")
    for trace in fig.data:
        assert list(trace.y) == [r[trace.name] for r in RATE["rows"]]


def test_build_rate_x_is_utc_datetimes():
    fig = build_rate_figure(RATE, "light")
    expected = [utc(r["ts"]) for r in RATE["rows"]]
    for trace in fig.data:
        assert [datetime.fromisoformat(x) for x in trace.x] == expected
        assert all(x.endswith("+00:00") for x in trace.x)
    assert datetime.fromisoformat(fig.data[0].x[0]) == datetime(2026, 11, 28, tzinfo=timezone.utc)


@pytest.mark.parametrize("step_s, label", [(60, "min"), (300, "5 min"), (3600, "h"), (6 * 3600, "6 h"),
                                           (86400, "d"), (90, "90 s")])
def test_build_rate_axis_names_step(step_s, label):
    fig = build_rate_figure({"step_s": step_s, "rows": []}, "light")
    assert fig.layout.yaxis.title.text == f"builds / {label}"


# --- duration heatmap -------------------------------------------------------------------------

def test_heatmap_z_is_transposed_counts():
    bands = [label for _, label in DURATION_BANDS]
    counts = [[i * 10 + j for j in range(len(bands))] for i in range(3)]  # per time step, per band
    data = {"step_s": 3600, "ts": [T0, T0 + 3600, T0 + 7200], "bands": bands, "counts": counts}
    trace = duration_heatmap_figure(data, "light").data[0]
    assert trace.type == "heatmap"
    assert list(trace.y) == bands
    assert [list(row) for row in trace.z] == [[counts[t][b] for t in range(3)] for b in range(len(bands))]
    assert [datetime.fromisoformat(x) for x in trace.x] == [utc(T0), utc(T0 + 3600), utc(T0 + 7200)]


def test_heatmap_empty_counts():
    data = {"step_s": 3600, "ts": [], "bands": [label for _, label in DURATION_BANDS], "counts": []}
    trace = duration_heatmap_figure(data, "light").data[0]
    assert not trace.z


# --- stage durations --------------------------------------------------------------------------

def test_stage_durations_in_minutes_none_kept():
    rows = [{"stage": "asset_processing", "p50_s": 90.0, "p95_s": 300.0},
            {"stage": "signing", "p50_s": None, "p95_s": None},
            {"stage": "upload", "p50_s": 30.0, "p95_s": 120.0}]
    fig = stage_durations_figure(rows, "light")
    p50, p95 = fig.data
    assert (p50.name, p95.name) == ("p50", "p95")
    assert list(p50.x) == ["asset<br>processing", "signing", "upload"]
    assert list(p50.y) == [pytest.approx(1.5), None, pytest.approx(0.5)]
    assert list(p95.y) == [pytest.approx(5.0), None, pytest.approx(2.0)]
    assert fig.layout.barmode == "group"


# --- monthly trend ----------------------------------------------------------------------------

def test_monthly_trend_compares_builds_per_day_and_marks_partial_months():
    rows = [{"month": "2026-10", "builds": 120, "success_rate": 0.95, "duration_avg_s": 200.0, "days": 12.0,
             "month_days": 31, "builds_per_day": 10.0, "partial": True},
            {"month": "2026-11", "builds": 80, "success_rate": None, "duration_avg_s": None, "days": 30.0,
             "month_days": 30, "builds_per_day": 80 / 30, "partial": False}]
    fig = monthly_trend_figure(rows, "light")
    bars, line = fig.data
    assert list(bars.x) == ["2026-10 (partial)", "2026-11"]
    assert list(bars.y) == [10.0, pytest.approx(80 / 30)]
    assert list(bars.marker.pattern.shape) == ["/", ""]
    assert bars.customdata[0][1] == "12.0 of 31 days" and bars.customdata[1][1] == "whole month"
    assert list(line.y) == [pytest.approx(95.0), None]
    assert line.yaxis == "y2"
    assert fig.layout.xaxis.type == "category"
    assert tuple(fig.layout.yaxis2.range) == (0, 100)


# --- revenue ----------------------------------------------------------------------------------

def test_revenue_bars_ordered_by_tier():
    current = {"free": 0.0, "basic": 100.0, "pro": 500.0, "enterprise": 2000.0}
    previous = {"enterprise": 1000.0, "free": 0.0, "pro": 250.0}  # no basic, different order
    before, now = revenue_figure(current, previous, "EUR", "light").data
    assert (before.name, now.name) == ("previous period", "now")
    assert list(now.x) == list(before.x) == ["free", "basic", "pro", "enterprise"]
    assert list(now.y) == [0.0, 100.0, 500.0, 2000.0]
    assert list(before.y) == [0.0, 0, 250.0, 1000.0]


def test_revenue_axis_names_currency():
    fig = revenue_figure({"pro": 1.0}, {}, "CHF", "light")
    assert fig.layout.yaxis.title.text == "CHF / month"


# --- change -----------------------------------------------------------------------------------

def test_change_increase_good():
    assert change(110, 100) == ("▲ 10.0 % vs previous period", "success")


def test_change_decrease_bad():
    assert change(90, 100) == ("▼ 10.0 % vs previous period", "danger")


def test_change_lower_is_better():
    assert change(110, 100, higher_is_better=False) == ("▲ 10.0 % vs previous period", "danger")
    assert change(90, 100, higher_is_better=False) == ("▼ 10.0 % vs previous period", "success")


def test_change_rate_in_points():
    assert change(0.95, 0.93, as_points=True) == ("▲ 2.0 pts vs previous period", "success")
    assert change(0.93, 0.95, as_points=True) == ("▼ 2.0 pts vs previous period", "danger")


def test_change_no_previous():
    assert change(5, None) == ("no previous data", None)
    assert change(0.9, None, as_points=True) == ("no previous data", None)


def test_change_from_zero():
    assert change(7, 0) == ("new this period", None)
    assert change(0, 0) == ("no change", None)


def test_change_negligible_has_no_tone():
    text, tone = change(100.01, 100)
    assert text == "▲ 0.0 % vs previous period"
    assert tone is None


# --- format_duration --------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, text", [
    (None, "—"),
    (0, "0.0 s"),
    (42.25, "42.2 s"),  # one decimal (42.25 is an exact binary tie: rounds half to even)
    (59.4, "59.4 s"),
    (60, "1 min 0 s"),
    (301, "5 min 1 s"),
    (3600, "1 h 0 min"),
    (7300, "2 h 1 min"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds, text", [(119.6, "2 min 0 s"), (179.5, "3 min 0 s")])
def test_format_duration_seconds_carry_into_minutes(seconds, text):
    assert format_duration(seconds) == text


# --- KPI tiles (Operations) -------------------------------------------------------------------

SUMMARY = {"builds_total": 12345, "builds_failed": 1234, "builds_cancelled": 56, "success_rate": 0.9512,
           "duration_avg_s": 301.0, "duration_p95_s": 7300.0, "active_builds": 1500, "active_partners": 42,
           "builds_started": 13001}


PROBES = {"probes_up": 17262, "probes_down": 18, "availability": 17262 / 17280}


def test_kpi_tiles_render_summary():
    assert kpi_values(kpi_tiles(SUMMARY, PROBES)) == {
        "builds_total": "12,345", "success_rate": "95.1 %", "duration_avg_s": "5 min 1 s",
        "active_builds": "1,500", "active_partners": "42", "uptime": "99.895 %",
    }


def test_kpi_tiles_details():
    details = kpi_details(kpi_tiles(SUMMARY, PROBES))
    assert details["builds_total"][0] == "1,234 failed · 56 cancelled"
    assert details["duration_avg_s"][0] == "p95 2 h 1 min"
    assert details["uptime"][0] == "18 of 17,280 probes down"


@pytest.mark.parametrize("probes, value, detail", [
    (None, "—", "no probes in the period"),
    ({"probes_up": 0, "probes_down": 0, "availability": None}, "—", "no probes in the period"),
    ({"probes_up": 720, "probes_down": 0, "availability": 1.0}, "100 %", "0 of 720 probes down"),
    # one failed probe in 200,000 floors to 99.999 %, never "100 %"
    ({"probes_up": 199_999, "probes_down": 1, "availability": 199_999 / 200_000}, "99.999 %", "1 of 200,000 probes down"),
    ({"probes_up": 0, "probes_down": 12, "availability": 0.0}, "0.000 %", "12 of 12 probes down"),
])
def test_kpi_tiles_uptime(probes, value, detail):
    tiles = kpi_tiles(SUMMARY, probes)
    assert kpi_values(tiles)["uptime"] == value
    assert kpi_details(tiles)["uptime"][0] == detail
    assert "builds_started" not in kpi_values(tiles)


def test_kpi_tiles_no_completed_builds():
    empty = {**SUMMARY, "builds_total": 0, "builds_failed": 0, "builds_cancelled": 0, "success_rate": None,
             "duration_avg_s": None, "duration_p95_s": None, "active_builds": 0, "active_partners": 0}
    values = kpi_values(kpi_tiles(empty))
    assert values["builds_total"] == "0"
    assert values["success_rate"] == "—"
    assert values["duration_avg_s"] == "—"


# --- executive tiles --------------------------------------------------------------------------

def _executive(current: dict, previous: dict) -> dict:
    base = {"builds_per_day": 1000.0, "success_rate": 0.95, "duration_avg_s": 240.0, "active_partners": 10,
            "revenue": {t: 0.0 for t in TIERS}}
    return {"days": 7.0, "current": {**base, **current}, "previous": {**base, **previous}}


def test_executive_tiles_render_values():
    data = _executive({"builds_per_day": 1763.6, "success_rate": 0.9512, "duration_avg_s": 301.0,
                       "active_partners": 1234,
                       "revenue": {"free": 0.0, "basic": 490.0, "pro": 12000.0, "enterprise": 50000.0}}, {})
    assert kpi_values(executive_tiles(data, "EUR")) == {
        "builds_per_day": "1,764", "success_rate": "95.1 %", "duration_avg_s": "5 min 1 s",
        "active_partners": "1,234", "revenue": "62,490 EUR", "uptime": "—",
    }


def test_executive_uptime_against_the_previous_period():
    data = _executive({"availability": 0.99952}, {"availability": 0.99981})
    assert kpi_values(executive_tiles(data, "EUR"))["uptime"] == "99.952 %"
    # three decimals of a point: 0.029 pts lower is a real change, and worse
    assert kpi_details(executive_tiles(data, "EUR"))["uptime"] == (
        "▼ 0.029 pts vs previous period", "kpi-detail small text-danger-emphasis")
    unchanged = _executive({"availability": 1.0}, {"availability": 1.0})
    assert kpi_details(executive_tiles(unchanged, "EUR"))["uptime"] == (
        "▲ 0.000 pts vs previous period", "kpi-detail small text-body-secondary")
    no_probes_before = _executive({"availability": 0.999}, {"availability": None})
    assert kpi_details(executive_tiles(no_probes_before, "EUR"))["uptime"][0] == "no previous data"


def test_executive_tiles_do_not_compare_with_a_previous_period_that_was_barely_recorded():
    data = {**_executive({"builds_per_day": 5000.0}, {"builds_per_day": 45.0}), "previous_days": 90.0,
            "previous_covered_days": 0.4}
    details = kpi_details(executive_tiles(data, "EUR"))
    assert details["builds_per_day"][0] == "previous period recorded for 0.4 of 90 days: not compared"
    assert all(text == details["builds_per_day"][0] and "secondary" in css for text, css in details.values())
    recorded = {**data, "previous_covered_days": 30.0}
    assert kpi_details(executive_tiles(recorded, "EUR"))["builds_per_day"][0].endswith("% vs previous period")
    nothing = {**data, "previous_covered_days": 0.0}
    assert kpi_details(executive_tiles(nothing, "EUR"))["success_rate"][0] == "no previous data"


def test_executive_tiles_no_rate():
    data = _executive({"success_rate": None, "duration_avg_s": None}, {})
    values = kpi_values(executive_tiles(data, "EUR"))
    assert values["success_rate"] == "—"
    assert values["duration_avg_s"] == "—"
    assert kpi_details(executive_tiles(data, "EUR"))["success_rate"][0] == "no previous data"


def test_executive_tiles_change_tones():
    data = _executive({"builds_per_day": 1100.0, "success_rate": 0.97, "duration_avg_s": 300.0,
                       "revenue": {"pro": 200.0}},
                      {"builds_per_day": 1000.0, "success_rate": 0.95, "duration_avg_s": 240.0,
                       "revenue": {"pro": 100.0}})
    details = kpi_details(executive_tiles(data, "EUR"))
    assert details["builds_per_day"] == ("▲ 10.0 % vs previous period", "kpi-detail small text-success-emphasis")
    assert details["success_rate"][0] == "▲ 2.0 pts vs previous period"
    assert details["success_rate"][1].endswith("text-success-emphasis")
    # slower builds are worse
    assert details["duration_avg_s"] == ("▲ 25.0 % vs previous period", "kpi-detail small text-danger-emphasis")
    assert details["revenue"][0] == "▲ 100.0 % vs previous period"
    # unchanged: no tone
    assert details["active_partners"] == ("▲ 0.0 % vs previous period", "kpi-detail small text-body-secondary")


# --- health summary ---------------------------------------------------------------------------

HEALTHY = {"success_rate": 0.97, "duration_avg_s": 200.0, "active_builds": 1234}


def _health(summary=None, target_s=300, store_ok=True) -> dict[str, tuple[str, str]]:
    return {label: (text, colour) for label, text, colour in health_items(summary or HEALTHY, target_s, store_ok)}


def test_health_store_down():
    assert _health(store_ok=False)["Store"] == ("unreachable", "danger")
    assert _health(store_ok=True)["Store"] == ("reachable", "success")


@pytest.mark.parametrize("rate, colour", [(0.97, "success"), (0.95, "success"), (0.9499, "warning"),
                                          (0.90, "warning"), (0.899, "danger"), (0.5, "danger")])
def test_health_success_rate_thresholds(rate, colour):
    text, got = _health({**HEALTHY, "success_rate": rate})["Build success"]
    assert got == colour
    assert text == f"{rate * 100:.1f} %"


def test_health_no_completed_builds():
    health = _health({**HEALTHY, "success_rate": None, "duration_avg_s": None})
    assert health["Build success"] == ("no completed builds", "secondary")
    assert health["Build time"] == ("no completed builds", "secondary")


def test_health_build_time_against_target():
    assert _health({**HEALTHY, "duration_avg_s": 301.0})["Build time"] == ("5 min 1 s (target 5 min 0 s)", "danger")
    assert _health({**HEALTHY, "duration_avg_s": 300.0})["Build time"][1] == "success"


def test_health_items_order_and_active_builds():
    items = health_items(HEALTHY, 300, True)
    assert [label for label, _, _ in items] == ["Store", "Build success", "Build time", "Active builds"]
    assert items[-1] == ("Active builds", "1,234 running", "info")


# --- revenue by tier --------------------------------------------------------------------------

PRICES = {"free": 0.0, "basic": 49.0, "pro": 299.0, "enterprise": 1999.0}


def test_revenue_uses_last_record_before_at():
    history = {"p1": [{"ts": 100, "tier": "basic", "status": "active"},
                      {"ts": 200, "tier": "pro", "status": "active"},
                      {"ts": 300, "tier": "enterprise", "status": "active"}]}
    assert revenue_by_tier(history, 250, PRICES) == {"free": 0.0, "basic": 0.0, "pro": 299.0, "enterprise": 0.0}
    assert revenue_by_tier(history, 300, PRICES)["enterprise"] == 1999.0  # at `at` counts
    assert revenue_by_tier(history, 150, PRICES)["basic"] == 49.0


def test_revenue_counts_only_active():
    history = {"p1": [{"ts": 100, "tier": "pro", "status": "active"},
                      {"ts": 200, "tier": "pro", "status": "suspended"}],
               "p2": [{"ts": 100, "tier": "pro", "status": "churned"},
                      {"ts": 150, "tier": "pro", "status": "active"}]}
    assert revenue_by_tier(history, 250, PRICES)["pro"] == 299.0
    assert revenue_by_tier(history, 120, PRICES)["pro"] == 299.0  # p1 still active, p2 not yet


def test_revenue_ignores_partners_not_yet_signed():
    history = {"p1": [{"ts": 100, "tier": "basic", "status": "active"}],
               "p2": [{"ts": 500, "tier": "enterprise", "status": "active"}],
               "p3": []}
    assert revenue_by_tier(history, 400, PRICES) == {"free": 0.0, "basic": 49.0, "pro": 0.0, "enterprise": 0.0}


def test_revenue_sums_prices_per_tier():
    history = {f"p{i}": [{"ts": 0, "tier": tier, "status": "active"}]
               for i, tier in enumerate(["pro", "pro", "basic", "enterprise", "free"])}
    prices = {"free": 0.0, "basic": 10.0, "pro": 100.0, "enterprise": 1000.0}
    result = revenue_by_tier(history, 0, prices)
    assert result == {"free": 0.0, "basic": 10.0, "pro": 200.0, "enterprise": 1000.0}
    assert list(result) == list(TIERS)


def test_every_trace_type_the_pages_draw_is_in_the_plotly_bundle():
    """The pages load our partial plotly.js bundle (tools/plotly-bundle): a trace type it lacks
    would draw nothing. `scatter` is in plotly.js's core."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    entry = (root / "tools/plotly-bundle/entry.js").read_text()
    bundled = {"scatter", *re.findall(r"require\('plotly\.js/lib/(\w+)'\)", entry)}
    used = set()
    for source in [*root.glob("layouts/*.py"), *root.glob("callbacks/*.py"), *root.glob("assets/*.js")]:
        used |= set(re.findall(r"""["']type["']\s*:\s*["'](\w+)["']""", source.read_text()))
    # not traces: AG Grid column types and filter types, layout buttons, shapes and axis types
    used -= {"numericColumn", "equals", "buttons", "line", "category", "date"}
    assert used and used <= bundled, f"not in the bundle: {sorted(used - bundled)}"
    banner = (root / "assets/vendor/plotly/plotly-lulupay.min.js").read_text()[:200]
    assert all(name in banner for name in bundled - {"scatter", "core"})


def test_a_right_rate_axis_has_round_ticks_and_no_zero_label():
    from layouts.figures import nice_axis

    axis = nice_axis(0.1329)
    assert axis["tickvals"] == [0.05, 0.1, 0.15] and axis["ticktext"] == ["0.05", "0.10", "0.15"]
    assert axis["range"][0] == 0 and axis["range"][1] >= 0.15
    assert nice_axis(250)["ticktext"] == ["100", "200", "300"]
    assert 0 not in nice_axis(3.7)["tickvals"] and nice_axis(0)["range"] == [0, 1]


def test_http_figures_say_where_the_records_start_when_they_start_late():
    from layouts.figures import http_errors_figure, http_latency_figure

    def row(ts, requests):
        return {"ts": ts, "requests": requests, "requests_per_s": requests / 60, "errors_4xx_per_s": 0,
                "errors_5xx_per_s": 0, "p50_s": 0.01 if requests else None, "p95_s": 0.02 if requests else None,
                "p99_s": 0.03 if requests else None}

    fresh = {"step_s": 60, "rows": [row(1_796_000_000 + 60 * i, 30 if i >= 1430 else 0) for i in range(1440)]}
    for figure in (http_latency_figure(fresh, "light"), http_errors_figure(fresh, "light")):
        (note,) = figure["layout"]["annotations"]
        assert note["text"].startswith("recorded since ") and figure["layout"]["shapes"][0]["x0"] == note["x"]
    steady = {"step_s": 60, "rows": [row(1_796_000_000 + 60 * i, 30) for i in range(1440)]}
    assert "annotations" not in http_latency_figure(steady, "light")["layout"]
