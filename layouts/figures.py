"""Figure builders: plain functions from panel data to Plotly figures (unit-tested, no I/O).

Figures are built as plain dicts in Plotly's JSON schema rather than `go.Figure` objects:
validating a `go.Figure` costs ~60 ms per gauge here, a dict a fraction of a millisecond, and
`dcc.Graph` takes either."""
from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

__all__ = ["template_for", "plotly_template", "success_rate_gauge", "build_time_gauge", "build_rate_figure",
           "duration_heatmap_figure", "stage_durations_figure", "monthly_trend_figure", "revenue_figure",
           "change", "format_duration", "SUCCESS_RED", "SUCCESS_AMBER", "STATUS_COLOURS", "usage_gauge",
           "http_latency_figure", "http_errors_figure", "format_bytes", "USAGE_AMBER", "USAGE_RED", "nice_axis"]

SUCCESS_RED = 0.90    # below: red
SUCCESS_AMBER = 0.95  # below: amber
STATUS_COLOURS = {"success": "#2f9e44", "failed": "#e03131", "cancelled": "#868e96"}
_GREEN, _AMBER, _RED = "#2f9e44", "#f08c00", "#e03131"


def template_for(theme: str) -> str:
    """Name of the Plotly template matching the page theme."""
    return "plotly_dark" if theme == "dark" else "plotly_white"


_TEMPLATE_LAYOUT = ("autotypenumbers", "colorway", "font", "hovermode", "hoverlabel", "paper_bgcolor",
                    "plot_bgcolor", "coloraxis", "xaxis", "yaxis", "title", "annotationdefaults", "shapedefaults")
_TEMPLATE_TRACES = ("bar", "scatter", "heatmap", "indicator")


@lru_cache(maxsize=2)
def plotly_template(theme: str) -> dict:
    """The Plotly template (as JSON) matching the page theme, cut to what these figures use: the
    whole template is 7 KB per figure, sent, diffed by the Dash renderer and applied by Plotly for
    every figure of a page; this part is ~1 KB. Loaded once per process."""
    import plotly.io as pio

    full = pio.templates[template_for(theme)].to_plotly_json()
    return {"layout": {k: v for k, v in full["layout"].items() if k in _TEMPLATE_LAYOUT},
            "data": {k: v for k, v in full["data"].items() if k in _TEMPLATE_TRACES}}


def format_duration(seconds: float | None) -> str:
    """'4 min 18 s' / '42.3 s' / '2 h 5 min' / '—' (rounded before splitting, so never '60 s')."""
    if seconds is None:
        return "—"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    total = int(round(seconds))
    if total >= 3600:
        hours, rest = divmod(total, 3600)
        return f"{hours} h {rest // 60} min"
    minutes, secs = divmod(total, 60)
    return f"{minutes} min {secs} s"


def _figure(data: list[dict], theme: str, height: int = 260, **layout) -> dict:
    base = dict(template=plotly_template(theme), height=height, margin=dict(l=64, r=16, t=16, b=40),
                paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
                font=dict(size=12), legend=dict(orientation="h", y=-0.2))
    base.update(layout)
    if any(trace["type"] != "indicator" for trace in data):
        # Fixed margins sized for the labels instead of axis automargin: automargin measures every
        # tick label and draws the plot a second time — half of a time series' 100 ms render here.
        for axis in ("xaxis", "yaxis", *(["yaxis2"] if "yaxis2" in base else [])):
            base[axis] = {"automargin": False, **base.get(axis, {})}
    return {"data": data, "layout": base}


def _times(ts_list) -> list[str]:
    return [datetime.fromtimestamp(ts, tz=timezone.utc).isoformat() for ts in ts_list]


def _gauge(value, axis: dict, colour: str, steps=None, threshold=None, suffix="", valueformat=".1f") -> dict:
    gauge = {"axis": axis, "bar": {"color": colour}}
    if steps:
        gauge["steps"] = steps
    if threshold:
        gauge["threshold"] = threshold
    return {"type": "indicator", "mode": "gauge+number", "value": value,
            "number": {"suffix": suffix, "valueformat": valueformat}, "gauge": gauge}


def success_rate_gauge(rate: float | None, theme: str) -> dict:
    """Gauge 0–100 % with red < 90 %, amber < 95 %, green above."""
    value = None if rate is None else rate * 100
    colour = _GREEN if value is None or value >= SUCCESS_AMBER * 100 else _AMBER if value >= SUCCESS_RED * 100 else _RED
    steps = [{"range": [0, SUCCESS_RED * 100], "color": "rgba(224,49,49,0.18)"},
             {"range": [SUCCESS_RED * 100, SUCCESS_AMBER * 100], "color": "rgba(240,140,0,0.18)"},
             {"range": [SUCCESS_AMBER * 100, 100], "color": "rgba(47,158,68,0.18)"}]
    trace = _gauge(value, {"range": [0, 100], "ticksuffix": " %"}, colour, steps=steps, suffix=" %")
    return _figure([trace], theme, height=200, margin=dict(l=52, r=52, t=24, b=8))


def build_time_gauge(avg_s: float | None, target_s: float, theme: str) -> dict:
    """Average build time in minutes against the target (threshold line); red above the target."""
    value = None if avg_s is None else avg_s / 60
    target = target_s / 60
    top = max(target * 2, (value or 0) * 1.1)
    colour = _GREEN if value is None or value <= target * 0.8 else _AMBER if value <= target else _RED
    trace = _gauge(value, {"range": [0, top]}, colour, suffix=" min",
                   threshold={"line": {"color": _RED, "width": 3}, "thickness": 0.8, "value": target})
    return _figure([trace], theme, height=200, margin=dict(l=52, r=52, t=24, b=8))


USAGE_AMBER = 80.0  # percent: amber from here
USAGE_RED = 90.0    # percent: red from here


def format_bytes(n: float | None) -> str:
    """'12.3 GiB' (binary units) / '—'."""
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "—"


def usage_gauge(percent: float | None, theme: str) -> dict:
    """Resource use 0–100 % with amber from 80 % and red from 90 %."""
    colour = _GREEN if percent is None or percent < USAGE_AMBER else _AMBER if percent < USAGE_RED else _RED
    steps = [{"range": [0, USAGE_AMBER], "color": "rgba(47,158,68,0.18)"},
             {"range": [USAGE_AMBER, USAGE_RED], "color": "rgba(240,140,0,0.18)"},
             {"range": [USAGE_RED, 100], "color": "rgba(224,49,49,0.18)"}]
    trace = _gauge(percent, {"range": [0, 100], "ticksuffix": " %"}, colour, steps=steps, suffix=" %")
    return _figure([trace], theme, height=170, margin=dict(l=48, r=48, t=20, b=4))


def nice_axis(top: float, ticks: int = 4) -> dict:
    """A 0-based axis up to a round number above `top` with round tick steps (1, 2, 2.5, 5 × 10^k),
    the 0 tick unlabelled (on a right axis it would sit on the time labels)."""
    import math

    if not top or top <= 0 or not math.isfinite(top):
        return {"range": [0, 1], "tickvals": [0.5, 1], "ticktext": ["0.5", "1"]}
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    count = math.ceil(top / step - 1e-9)
    values = [round(step * i, 12) for i in range(1, count + 1)]
    decimals = max(0, -math.floor(math.log10(step)) + (1 if step / power == 2.5 else 0))
    return {"range": [0, step * count * 1.02], "tickvals": values, "ticktext": [f"{v:,.{decimals}f}" for v in values]}


def _recording_since(rows: list[dict], key: str) -> dict | None:
    """A dotted line and label where the records of a period start, when they start late in it
    (a fresh store: a few minutes on a 24-hour axis)."""
    first = next((r["ts"] for r in rows if r.get(key)), None)
    if first is None or len(rows) < 2 or first <= rows[0]["ts"] + (rows[-1]["ts"] - rows[0]["ts"]) * 0.1:
        return None
    at = _times([first])[0]
    label = datetime.fromtimestamp(first, tz=timezone.utc).strftime("recorded since %H:%M UTC")
    return {"shape": {"type": "line", "x0": at, "x1": at, "yref": "paper", "y0": 0, "y1": 1,
                      "line": {"color": "#868e96", "dash": "dot", "width": 1}},
            "annotation": {"x": at, "xref": "x", "y": 1, "yref": "paper", "text": label, "showarrow": False,
                           "xanchor": "right", "yanchor": "top", "font": {"size": 11, "color": "#868e96"}}}


def http_latency_figure(data: dict, theme: str) -> dict:
    """p50/p95/p99 latency (ms, left axis) and requests per second (bars, right axis)."""
    rows = data["rows"]
    x = _times([r["ts"] for r in rows])
    traces = [{"type": "bar", "x": x, "y": [r["requests_per_s"] for r in rows], "name": "requests/s", "yaxis": "y2",
               "marker": {"color": "rgba(134,142,150,0.35)"},
               "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y:,.2f} requests/s<extra></extra>"}]
    for key, name, colour in (("p50_s", "p50", "#4dabf7"), ("p95_s", "p95", "#1864ab"), ("p99_s", "p99", "#e03131")):
        traces.append({"type": "scatter", "mode": "lines", "x": x, "name": name, "line": {"color": colour, "width": 2},
                       "y": [None if r[key] is None else r[key] * 1000 for r in rows], "connectgaps": False,
                       "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>" + name + " %{y:,.1f} ms<extra></extra>"})
    since = _recording_since(rows, "requests")
    rate_axis = nice_axis(max((r["requests_per_s"] for r in rows), default=0))
    return _figure(traces, theme, height=240,
                   yaxis=dict(title=dict(text="latency (ms)"), rangemode="tozero"),
                   yaxis2=dict(title=dict(text="requests/s"), overlaying="y", side="right", showgrid=False,
                               zeroline=False, tickmode="array", **rate_axis),
                   margin=dict(l=64, r=64, t=16, b=40),
                   **({"shapes": [since["shape"]], "annotations": [since["annotation"]]} if since else {}))


def http_errors_figure(data: dict, theme: str) -> dict:
    """Share of responses that were 4xx and 5xx per step (percent, stacked)."""
    rows = data["rows"]
    x = _times([r["ts"] for r in rows])
    traces = []
    for key, name, colour in (("errors_5xx_per_s", "5xx", _RED), ("errors_4xx_per_s", "4xx", _AMBER)):
        y = [(r[key] / r["requests_per_s"] * 100) if r["requests_per_s"] else None for r in rows]
        traces.append({"type": "bar", "x": x, "y": y, "name": name, "marker": {"color": colour},
                       "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>" + name + " %{y:.2f} % of responses<extra></extra>"})
    since = _recording_since(rows, "requests")
    return _figure(traces, theme, height=240, barmode="stack", bargap=0.1,
                   yaxis=dict(title=dict(text="% of responses"), rangemode="tozero", ticksuffix=" %"),
                   **({"shapes": [since["shape"]], "annotations": [since["annotation"]]} if since else {}))


def build_rate_figure(data: dict, theme: str) -> dict:
    """Finished builds per step, stacked by status."""
    rows = data["rows"]
    x = _times([r["ts"] for r in rows])
    traces = [{"type": "bar", "x": x, "y": [r[status] for r in rows], "name": status, "marker": {"color": colour},
               "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y:,} " + status + "<extra></extra>"}
              for status, colour in STATUS_COLOURS.items()]
    return _figure(traces, theme, barmode="stack", bargap=0.1,
                   yaxis=dict(title=dict(text=f"builds / {_step_label(data['step_s'])}"), rangemode="tozero"))


def duration_heatmap_figure(data: dict, theme: str) -> dict:
    """Completed builds per time step (x) and duration band (y)."""
    z = [list(col) for col in zip(*data["counts"])] if data["counts"] else []
    trace = {"type": "heatmap", "x": _times(data["ts"]), "y": data["bands"], "z": z, "colorscale": "Viridis",
             "colorbar": {"title": {"text": "builds"}},
             "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y}: %{z:,} builds<extra></extra>"}
    return _figure([trace], theme, yaxis=dict(title=dict(text="build duration")), margin=dict(l=100, r=16, t=16, b=40))


def stage_durations_figure(rows: list[dict], theme: str) -> dict:
    """p50 and p95 per stage (minutes), pipeline order."""
    stages = [r["stage"].replace("_", "<br>") for r in rows]
    traces = [
        {"type": "bar", "x": stages, "y": [None if r[key] is None else r[key] / 60 for r in rows], "name": name,
         "marker": {"color": colour}, "hovertemplate": "%{x}: " + name + " %{y:.2f} min<extra></extra>"}
        for key, name, colour in (("p50_s", "p50", "#4dabf7"), ("p95_s", "p95", "#1864ab"))
    ]
    # Stage names need two lines and tilt on narrow panels: this small chart keeps automargin on its
    # x axis (one cheap redraw), with the legend above so tilted names never run into it.
    return _figure(traces, theme, barmode="group", yaxis=dict(title=dict(text="minutes"), rangemode="tozero"),
                   xaxis=dict(automargin=True), legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"),
                   margin=dict(l=64, r=16, t=28, b=52))


def monthly_trend_figure(rows: list[dict], theme: str) -> dict:
    """Builds per day of each month (bars: like with like, a partial month is not a collapse; partial
    months hatched and marked "partial") and success rate (line, right axis)."""
    months = [r["month"] + (" (partial)" if r.get("partial") and r["builds"] else "") for r in rows]
    custom = [[r["builds"], f"{r['days']:.1f} of {r['month_days']} days" if r.get("partial") else "whole month"]
              for r in rows]
    traces = [
        {"type": "bar", "x": months, "y": [r.get("builds_per_day") for r in rows], "name": "builds per day",
         "marker": {"color": "#4dabf7",
                    "pattern": {"shape": ["/" if r.get("partial") else "" for r in rows], "solidity": 0.35}},
         "customdata": custom,
         "hovertemplate": "%{x}: %{y:,.0f} builds/day<br>%{customdata[0]:,} builds, %{customdata[1]}<extra></extra>"},
        {"type": "scatter", "x": months, "yaxis": "y2", "mode": "lines+markers", "name": "success rate",
         "y": [None if r["success_rate"] is None else r["success_rate"] * 100 for r in rows],
         "line": {"color": "#2f9e44", "width": 2}, "hovertemplate": "%{x}: %{y:.1f} %<extra></extra>"},
    ]
    return _figure(traces, theme, xaxis=dict(type="category"),
                   yaxis=dict(title=dict(text="builds per day"), rangemode="tozero"),
                   yaxis2=dict(title=dict(text="success rate"), overlaying="y", side="right", ticksuffix=" %",
                               range=[0, 100], dtick=25, showgrid=False),
                   margin=dict(l=64, r=72, t=16, b=40))


def revenue_figure(current: dict, previous: dict, currency: str, theme: str) -> dict:
    """Monthly recurring revenue by tier, this period's end against the previous period's end."""
    tiers = list(current)
    hover = "%{x}: %{y:,.0f} " + currency + "<extra></extra>"
    traces = [
        {"type": "bar", "x": tiers, "y": [previous.get(t, 0) for t in tiers], "name": "previous period",
         "marker": {"color": "#adb5bd"}, "hovertemplate": hover},
        {"type": "bar", "x": tiers, "y": [current[t] for t in tiers], "name": "now",
         "marker": {"color": "#1864ab"}, "hovertemplate": hover},
    ]
    return _figure(traces, theme, barmode="group", yaxis=dict(title=dict(text=f"{currency} / month"), rangemode="tozero"))


def change(current: float | None, previous: float | None, *, higher_is_better: bool = True,
           as_points: bool = False, digits: int = 1) -> tuple[str, str | None]:
    """'▲ 12.3 %' against the previous period, and a tone (success/danger) — or ('no previous data', None).
    `digits`: decimals shown (a change that rounds to zero has no tone)."""
    if current is None or previous is None:
        return "no previous data", None
    if as_points:
        delta = (current - previous) * 100
        text = f"{'▲' if delta >= 0 else '▼'} {abs(delta):.{digits}f} pts vs previous period"
    else:
        if previous == 0:
            return ("new this period" if current else "no change"), None
        delta = (current - previous) / abs(previous) * 100
        text = f"{'▲' if delta >= 0 else '▼'} {abs(delta):.{digits}f} % vs previous period"
    if abs(delta) < 0.5 * 10 ** -digits:
        return text, None
    good = (delta > 0) == higher_is_better
    return text, "success" if good else "danger"


def _step_label(step_s: int) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if step_s % size == 0:
            count = step_s // size
            return f"{count} {unit}" if count != 1 else unit
    return f"{step_s} s"
