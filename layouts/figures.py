"""Figure builders: plain functions from panel data to Plotly figures (unit-tested, no I/O)."""
from __future__ import annotations

from datetime import datetime, timezone

import plotly.graph_objects as go

__all__ = ["template_for", "success_rate_gauge", "build_time_gauge", "build_rate_figure",
           "duration_heatmap_figure", "stage_durations_figure", "SUCCESS_RED", "SUCCESS_AMBER",
           "STATUS_COLOURS", "format_duration"]

SUCCESS_RED = 0.90    # below: red
SUCCESS_AMBER = 0.95  # below: amber
STATUS_COLOURS = {"success": "#2f9e44", "failed": "#e03131", "cancelled": "#868e96"}
_GREEN, _AMBER, _RED = "#2f9e44", "#f08c00", "#e03131"


def template_for(theme: str) -> str:
    """Plotly template matching the page theme."""
    return "plotly_dark" if theme == "dark" else "plotly_white"


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


def _layout(fig: go.Figure, theme: str, height: int = 260, **extra) -> go.Figure:
    settings = dict(template=template_for(theme), height=height, margin=dict(l=48, r=16, t=16, b=40),
                    paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
                    font=dict(size=12), legend=dict(orientation="h", y=-0.2))
    settings.update(extra)
    fig.update_layout(**settings)
    return fig


def _times(ts_list) -> list[datetime]:
    return [datetime.fromtimestamp(ts, tz=timezone.utc) for ts in ts_list]


def success_rate_gauge(rate: float | None, theme: str) -> go.Figure:
    """Gauge 0–100 % with red < 90 %, amber < 95 %, green above."""
    value = None if rate is None else rate * 100
    colour = _GREEN if value is None or value >= SUCCESS_AMBER * 100 else _AMBER if value >= SUCCESS_RED * 100 else _RED
    fig = go.Figure(go.Indicator(
        mode="gauge+number", value=value, number=dict(suffix=" %", valueformat=".1f"),
        gauge=dict(axis=dict(range=[0, 100], ticksuffix=" %"), bar=dict(color=colour),
                   steps=[dict(range=[0, SUCCESS_RED * 100], color="rgba(224,49,49,0.18)"),
                          dict(range=[SUCCESS_RED * 100, SUCCESS_AMBER * 100], color="rgba(240,140,0,0.18)"),
                          dict(range=[SUCCESS_AMBER * 100, 100], color="rgba(47,158,68,0.18)")])))
    return _layout(fig, theme, height=200, margin=dict(l=40, r=40, t=24, b=8))


def build_time_gauge(avg_s: float | None, target_s: float, theme: str) -> go.Figure:
    """Average build time in minutes against the target (threshold line); red above the target."""
    value = None if avg_s is None else avg_s / 60
    target = target_s / 60
    top = max(target * 2, (value or 0) * 1.1)
    colour = _GREEN if value is None or value <= target * 0.8 else _AMBER if value <= target else _RED
    fig = go.Figure(go.Indicator(
        mode="gauge+number", value=value, number=dict(suffix=" min", valueformat=".1f"),
        gauge=dict(axis=dict(range=[0, top]), bar=dict(color=colour),
                   threshold=dict(line=dict(color=_RED, width=3), thickness=0.8, value=target))))
    return _layout(fig, theme, height=200, margin=dict(l=40, r=40, t=24, b=8))


def build_rate_figure(data: dict, theme: str) -> go.Figure:
    """Finished builds per step, stacked by status."""
    rows = data["rows"]
    x = _times([r["ts"] for r in rows])
    fig = go.Figure([go.Bar(x=x, y=[r[status] for r in rows], name=status, marker_color=colour,
                            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y:,} " + status + "<extra></extra>")
                     for status, colour in STATUS_COLOURS.items()])
    return _layout(fig, theme, barmode="stack", bargap=0.1,
                   yaxis=dict(title=f"builds / {_step_label(data['step_s'])}", rangemode="tozero"))


def duration_heatmap_figure(data: dict, theme: str) -> go.Figure:
    """Completed builds per time step (x) and duration band (y)."""
    z = [list(col) for col in zip(*data["counts"])] if data["counts"] else []
    fig = go.Figure(go.Heatmap(x=_times(data["ts"]), y=data["bands"], z=z, colorscale="Viridis",
                               colorbar=dict(title="builds"),
                               hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y}: %{z:,} builds<extra></extra>"))
    return _layout(fig, theme, yaxis=dict(title="build duration"))


def stage_durations_figure(rows: list[dict], theme: str) -> go.Figure:
    """p50 and p95 per stage (minutes), pipeline order."""
    stages = [r["stage"].replace("_", "<br>") for r in rows]
    fig = go.Figure([
        go.Bar(x=stages, y=[None if r["p50_s"] is None else r["p50_s"] / 60 for r in rows], name="p50",
               marker_color="#4dabf7", hovertemplate="%{x}: p50 %{y:.2f} min<extra></extra>"),
        go.Bar(x=stages, y=[None if r["p95_s"] is None else r["p95_s"] / 60 for r in rows], name="p95",
               marker_color="#1864ab", hovertemplate="%{x}: p95 %{y:.2f} min<extra></extra>"),
    ])
    return _layout(fig, theme, barmode="group", yaxis=dict(title="minutes", rangemode="tozero"))


def _step_label(step_s: int) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if step_s % size == 0:
            count = step_s // size
            return f"{count} {unit}" if count != 1 else unit
    return f"{step_s} s"


def monthly_trend_figure(rows: list[dict], theme: str) -> go.Figure:
    """Builds per month (bars) and success rate (line, right axis)."""
    months = [r["month"] for r in rows]
    fig = go.Figure([
        go.Bar(x=months, y=[r["builds"] for r in rows], name="builds", marker_color="#4dabf7",
               hovertemplate="%{x}: %{y:,} builds<extra></extra>"),
        go.Scatter(x=months, y=[None if r["success_rate"] is None else r["success_rate"] * 100 for r in rows],
                   name="success rate", yaxis="y2", mode="lines+markers", line=dict(color="#2f9e44", width=2),
                   hovertemplate="%{x}: %{y:.1f} %<extra></extra>"),
    ])
    return _layout(fig, theme, xaxis=dict(type="category"), yaxis=dict(title="builds", rangemode="tozero"),
                   yaxis2=dict(title="success rate", overlaying="y", side="right", ticksuffix=" %", range=[0, 100], dtick=25,
                               showgrid=False))


def revenue_figure(current: dict, previous: dict, currency: str, theme: str) -> go.Figure:
    """Monthly recurring revenue by tier, this period's end against the previous period's end."""
    tiers = list(current)
    fig = go.Figure([
        go.Bar(x=tiers, y=[previous.get(t, 0) for t in tiers], name="previous period", marker_color="#adb5bd",
               hovertemplate="%{x}: %{y:,.0f} " + currency + "<extra></extra>"),
        go.Bar(x=tiers, y=[current[t] for t in tiers], name="now", marker_color="#1864ab",
               hovertemplate="%{x}: %{y:,.0f} " + currency + "<extra></extra>"),
    ])
    return _layout(fig, theme, barmode="group", yaxis=dict(title=f"{currency} / month", rangemode="tozero"))


def change(current: float | None, previous: float | None, *, higher_is_better: bool = True,
           as_points: bool = False) -> tuple[str, str | None]:
    """'▲ 12.3 %' against the previous period, and a tone (success/danger) — or ('no previous data', None)."""
    if current is None or previous is None:
        return "no previous data", None
    if as_points:
        delta = (current - previous) * 100
        text = f"{'▲' if delta >= 0 else '▼'} {abs(delta):.1f} pts vs previous period"
    else:
        if previous == 0:
            return ("new this period" if current else "no change"), None
        delta = (current - previous) / abs(previous) * 100
        text = f"{'▲' if delta >= 0 else '▼'} {abs(delta):.1f} % vs previous period"
    if abs(delta) < 0.05:
        return text, None
    good = (delta > 0) == higher_is_better
    return text, "success" if good else "danger"
