"""Figures and words of the Capacity page (plain Plotly dicts, see layouts/figures.py), and the
availability formatting the Operations and Executive uptime KPIs share."""
from __future__ import annotations

import math
from datetime import datetime, timezone

from layouts.figures import _figure, _times

__all__ = ["format_availability", "format_rate", "format_objective", "projection_text", "resource_figure",
           "ingest_figure", "builds_figure", "availability_figure", "latency_figure", "budget_text", "when_text"]

_BLUE, _GREY, _RED, _GREEN, _AMBER = "#1c7ed6", "#868e96", "#e03131", "#2f9e44", "#f08c00"
EVENT_COLOURS = {"build.started": "#74c0fc", "build.finished": "#1c7ed6", "build.stage": "#91a7ff",
                 "asset.processed": "#63e6be"}


def format_availability(value: float | None) -> str:
    """'99.952 %' (floored, so anything short of every probe up never reads 100 %), '100 %', '—'."""
    if value is None:
        return "—"
    if value >= 1:
        return "100 %"
    return f"{math.floor(value * 100_000) / 1000:.3f} %"


def format_rate(bytes_per_s: float | None) -> str:
    """'12.3 MiB/s' (binary units, as every size in the app) / '—'."""
    if bytes_per_s is None:
        return "—"
    for unit, size in (("GiB/s", 2**30), ("MiB/s", 2**20), ("KiB/s", 2**10)):
        if abs(bytes_per_s) >= size:
            return f"{bytes_per_s / size:.1f} {unit}"
    return f"{bytes_per_s:.0f} B/s"


def format_objective(ratio: float) -> str:
    """An availability objective as set: '99.9 %', '99.95 %'."""
    return f"{ratio * 100:.6g} %"


def when_text(ts: float) -> str:
    """A UTC date, e.g. '2026-12-19'."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


def _value_text(value: float, unit: str) -> str:
    return f"{value:.0f} %" if unit == "%" else format_rate(value)


def projection_text(projection: dict, unit: str) -> str:
    """The projection in words: 'crosses 85 % around 2026-12-19', 'not within 30 days', …"""
    threshold = _value_text(projection["threshold"], unit)
    status = projection["status"]
    if status == "above":
        return f"at or above {threshold} now"
    if status == "crossing":
        return f"crosses {threshold} around {when_text(projection['at'])}"
    if status == "too_short":
        return f"not enough history for a trend ({projection['points']} hourly means; 6 needed)"
    return f"not within 30 days (threshold {threshold})"


def resource_figure(data: dict, unit: str, theme: str) -> dict:
    """The period's values, the trend continued forward (dashed) and the threshold (red)."""
    points = data["points"]
    scale = 1.0 if unit == "%" else 2**-20  # network in MiB/s
    traces = [{"type": "scatter", "mode": "lines", "name": "measured", "x": _times([p[0] for p in points]),
               "y": [None if p[1] is None else p[1] * scale for p in points], "line": {"color": _BLUE, "width": 2},
               "connectgaps": False,
               "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y:,.1f}" + (" %" if unit == "%" else " MiB/s")
                                + "<extra></extra>"}]
    forecast = data["forecast"]
    if forecast:
        traces.append({"type": "scatter", "mode": "lines", "name": "trend", "x": _times([p[0] for p in forecast]),
                       "y": [p[1] * scale for p in forecast], "line": {"color": _AMBER, "width": 2, "dash": "dash"},
                       "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>trend %{y:,.1f}<extra></extra>"})
    projection = data["projection"]
    if projection["status"] == "crossing" and forecast and forecast[-1][0] == projection["at"]:
        traces.append({"type": "scatter", "mode": "markers", "name": "crossing", "x": _times([projection["at"]]),
                       "y": [data["threshold"] * scale], "marker": {"color": _RED, "size": 9, "symbol": "x"},
                       "hovertemplate": "%{x|%Y-%m-%d} UTC: crosses<extra></extra>"})
    threshold = data["threshold"] * scale
    values = [p[1] * scale for p in points if p[1] is not None] + [p[1] * scale for p in forecast]
    top = max([threshold * 1.08, *(v * 1.05 for v in values)]) if unit != "%" else 100
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": threshold, "y1": threshold,
               "line": {"color": _RED, "dash": "dot", "width": 1.5}}]
    return _figure(traces, theme, height=230, showlegend=False, shapes=shapes,
                   yaxis={"range": [0, top], "ticksuffix": " %" if unit == "%" else "",
                          "title": {"text": "" if unit == "%" else "MiB/s"}},
                   margin=dict(l=56, r=16, t=12, b=36))


def ingest_figure(data: dict, theme: str) -> dict:
    """Events accepted per window, stacked by event type."""
    rows = data["rows"]
    x = _times([r["ts"] for r in rows])
    traces = [{"type": "bar", "name": kind, "x": x, "y": [r[kind] for r in rows],
               "marker": {"color": colour},
               "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y:,} " + kind + "<extra></extra>"}
              for kind, colour in EVENT_COLOURS.items()]
    return _figure(traces, theme, height=240, barmode="stack", bargap=0.1,
                   yaxis={"title": {"text": "events per interval"}, "rangemode": "tozero"})


def builds_figure(data: dict, theme: str) -> dict:
    """Finished builds per hour, per window of at least an hour."""
    rows = data["rows"]
    trace = {"type": "bar", "name": "builds/h", "x": _times([r["ts"] for r in rows]),
             "y": [r["per_hour"] for r in rows], "marker": {"color": _BLUE},
             "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y:,.1f} builds/h<extra></extra>"}
    return _figure([trace], theme, height=240, bargap=0.1, showlegend=False,
                   yaxis={"title": {"text": "finished builds per hour"}, "rangemode": "tozero"})


def availability_figure(data: dict, theme: str) -> dict:
    """Availability per window (a line; red marks where it misses the objective), objective line.
    Windows without a probe are gaps."""
    buckets = data["buckets"]
    objective = data["objective_availability"] * 100
    measured = [b for b in buckets if b["availability"] is not None]
    low = min([objective - (100 - objective), *(b["availability"] * 100 for b in measured)])
    hover = "%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.3f} % (%{customdata[0]} up, %{customdata[1]} down)<extra></extra>"
    traces = [{"type": "scatter", "mode": "lines", "name": "availability", "x": _times([b["ts"] for b in buckets]),
               "y": [None if b["availability"] is None else b["availability"] * 100 for b in buckets],
               "connectgaps": False, "line": {"color": _GREEN, "width": 2},
               "customdata": [[b["probes_up"], b["probes_down"]] for b in buckets], "hovertemplate": hover}]
    missed = [b for b in measured if not b["availability_met"]]
    if missed:
        traces.append({"type": "scatter", "mode": "markers", "name": "below the objective",
                       "x": _times([b["ts"] for b in missed]), "y": [b["availability"] * 100 for b in missed],
                       "marker": {"color": _RED, "size": 7},
                       "customdata": [[b["probes_up"], b["probes_down"]] for b in missed], "hovertemplate": hover})
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": objective, "y1": objective,
               "line": {"color": _GREY, "dash": "dot", "width": 1.5}}]
    return _figure(traces, theme, height=230, showlegend=False, shapes=shapes,
                   yaxis={"range": [max(0.0, low - 0.5), 100.2], "ticksuffix": " %"})


def latency_figure(data: dict, theme: str) -> dict:
    """p95 request latency per window against the objective (ms)."""
    buckets = data["buckets"]
    x = _times([b["ts"] for b in buckets])
    objective = data["objective_p95_ms"]
    trace = {"type": "scatter", "mode": "lines+markers", "x": x, "y": [b["p95_ms"] for b in buckets],
             "connectgaps": False, "line": {"color": _BLUE, "width": 2}, "marker": {
                 "size": 4, "color": [_RED if b["latency_met"] is False else _BLUE for b in buckets]},
             "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>p95 %{y:,.1f} ms<extra></extra>"}
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": objective, "y1": objective,
               "line": {"color": _RED, "dash": "dot", "width": 1.5}}]
    values = [b["p95_ms"] for b in buckets if b["p95_ms"] is not None]
    return _figure([trace], theme, height=230, showlegend=False, shapes=shapes,
                   yaxis={"title": {"text": "p95 (ms)"}, "range": [0, max([objective, *values]) * 1.15]})


def _minutes(seconds: float) -> str:
    minutes = abs(seconds) / 60
    return f"{minutes:,.1f} min" if minutes < 600 else f"{minutes / 60:,.1f} h"


def budget_text(budget: dict | None) -> str:
    """The error budget in words: '31.2 min (72 %) of 43.2 min left' / 'overspent by 3.1 min'."""
    if budget is None:
        return "no probes in this period"
    allowed = _minutes(budget["allowed_s"])
    if budget["left_s"] >= 0:
        return f"{_minutes(budget['left_s'])} ({budget['left_ratio'] * 100:.0f} %) of {allowed} left"
    return f"overspent by {_minutes(budget['left_s'])} ({-budget['left_ratio'] * 100:.0f} % over the {allowed} allowed)"
