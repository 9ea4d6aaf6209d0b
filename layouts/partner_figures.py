"""Figures of the Partners page (plain Plotly dicts, see layouts/figures.py)."""
from __future__ import annotations

from datetime import datetime, timezone

from layouts.figures import _figure
from services.vocabulary import TIERS

__all__ = ["tier_mix_figure", "changes_figure", "usage_heatmap_figure", "quota_figure", "TIER_COLOURS"]

TIER_COLOURS = {"free": "#adb5bd", "basic": "#74c0fc", "pro": "#4263eb", "enterprise": "#7048e8"}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _month(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%b %Y")


def tier_mix_figure(mix: dict, theme: str) -> dict:
    """Active partners per tier at each month's end (the last bar: now)."""
    x = [_month(ts) for ts in mix["ts"]]
    traces = [{"type": "bar", "name": tier, "x": x, "y": mix["tiers"][tier], "marker": {"color": TIER_COLOURS[tier]},
               "hovertemplate": "%{x}: %{y} " + tier + "<extra></extra>"} for tier in TIERS]
    return _figure(traces, theme, height=260, barmode="stack", yaxis={"title": {"text": "active partners"}},
                   xaxis={"type": "category"})


def changes_figure(months: list[dict], theme: str) -> dict:
    """Upgrades, downgrades and churned partners per month (new partners are named in the hover:
    a store's first month creates them all and would dwarf the changes)."""
    x = [_month(m["month"]) for m in months]
    series = (("upgrades", "upgrades", "#4263eb"), ("downgrades", "downgrades", "#f59f00"),
              ("churned", "churned", "#e03131"), ("suspended", "suspended", "#868e96"))
    traces = [{"type": "bar", "name": label, "x": x, "y": [len(m[key]) for m in months],
               "customdata": [", ".join(m[key]) or "—" for m in months], "marker": {"color": colour},
               "hovertemplate": "%{x}: %{y} " + label + "<br>%{customdata}<extra></extra>"}
              for key, label, colour in series]
    top = max((len(m[key]) for m in months for key, _, _ in series), default=0)
    new = {"type": "scatter", "mode": "markers", "name": "new partners", "x": x, "y": [0] * len(x), "opacity": 0,
           "showlegend": False, "customdata": [f"{len(m['new'])} new: {', '.join(m['new'][:8])}"
                                               f"{' …' if len(m['new']) > 8 else ''}" if m["new"] else "no new partner"
                                               for m in months],
           "hovertemplate": "%{x}: %{customdata}<extra></extra>"}
    yaxis = {"title": {"text": "partners"}, "rangemode": "tozero", "tickformat": "d", **({"dtick": 1} if top <= 8 else {})}
    return _figure([*traces, new], theme, height=260, barmode="group", yaxis=yaxis, xaxis={"type": "category"})


def usage_heatmap_figure(grid: list[list[float | None]], theme: str) -> dict:
    """Mean finished builds per UTC hour of the week."""
    trace = {"type": "heatmap", "z": grid, "x": [f"{h:02d}" for h in range(24)], "y": list(_DAYS),
             "colorscale": "Blues", "hoverongaps": False, "colorbar": {"title": {"text": "builds/h"}},
             "hovertemplate": "%{y} %{x}:00 UTC: %{z:.1f} builds per hour<extra></extra>"}
    return _figure([trace], theme, height=260, yaxis={"autorange": "reversed"}, margin=dict(l=48, r=16, t=16, b=40),
                   xaxis={"title": {"text": "hour (UTC)"}})


def quota_figure(rows: list[dict], theme: str, limit: int = 15) -> dict:
    """Quota used this month against the limit, the partners nearest to it first."""
    rows = [r for r in rows if r["monthly_build_quota"]][:limit]
    names = [r["partner_id"] for r in rows]
    used = [min(r["quota_used_ratio"], 2.0) * 100 for r in rows]
    colours = ["#e03131" if r["quota_exhausted"] else "#f59f00" if r["quota_projected_exhaustion_at"] else "#4263eb"
               for r in rows]
    custom = [[r["quota_used"], r["monthly_build_quota"], r["projection_text"]] for r in rows]
    trace = {"type": "bar", "orientation": "h", "y": names, "x": used, "marker": {"color": colours},
             "customdata": custom,
             "hovertemplate": "%{y}: %{customdata[0]:,} of %{customdata[1]:,} (%{x:.0f} %)<br>%{customdata[2]}"
                              "<extra></extra>"}
    return _figure([trace], theme, height=max(200, 22 * len(rows) + 60), xaxis={"ticksuffix": " %", "rangemode": "tozero"},
                   yaxis={"autorange": "reversed"}, margin=dict(l=150, r=16, t=16, b=40),
                   shapes=[{"type": "line", "x0": 100, "x1": 100, "yref": "paper", "y0": 0, "y1": 1,
                            "line": {"color": "#e03131", "dash": "dash"}}], showlegend=False)
