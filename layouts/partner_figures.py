"""Figures of the Partners page (plain Plotly dicts, see layouts/figures.py)."""
from __future__ import annotations

from datetime import datetime, timezone

from layouts.figures import _figure, _times
from services.vocabulary import TIERS

__all__ = ["tier_mix_figure", "changes_figure", "usage_heatmap_figure", "quota_figure", "TIER_COLOURS",
           "comparison_figure", "burn_down_figure"]

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
             "colorscale": "Blues", "reversescale": True, "hoverongaps": False, "colorbar": {"title": {"text": "builds/h"}},
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


_PARTNER, _FLEET = "#4263eb", "#868e96"


def comparison_figure(comparison: dict, partner_id: str, theme: str) -> dict:
    """The partner's builds (bars) and success rate (line) per bucket, against the fleet's median
    and its middle half (25th–75th percentile band)."""
    x = _times(comparison["ts"])
    fb, fs = comparison["fleet_builds"], comparison["fleet_success_rate"]

    def band(quartiles, axis: str, scale: float = 1.0):
        lo = [q[0] * scale if q else None for q in quartiles]
        hi = [q[2] * scale if q else None for q in quartiles]
        mid = [q[1] * scale if q else None for q in quartiles]
        return [{"type": "scatter", "mode": "lines", "x": x, "y": lo, "yaxis": axis, "line": {"width": 0},
                 "hoverinfo": "skip", "showlegend": False},
                {"type": "scatter", "mode": "lines", "x": x, "y": hi, "yaxis": axis, "line": {"width": 0},
                 "fill": "tonexty", "fillcolor": "rgba(134,142,150,0.22)", "name": "fleet 25–75 %",
                 "legendgroup": "band", "showlegend": axis == "y", "hoverinfo": "skip"},
                {"type": "scatter", "mode": "lines", "x": x, "y": mid, "yaxis": axis, "name": "fleet median",
                 "legendgroup": "median", "showlegend": axis == "y", "line": {"color": _FLEET, "dash": "dash"},
                 "hovertemplate": "fleet median %{y:" + (".1f" if scale == 1 else ".1f") + "}"
                                  + ("" if scale == 1 else " %") + "<extra></extra>"}]

    rates = [None if v is None else v * 100 for v in comparison["success_rate"]]
    traces = [{"type": "bar", "x": x, "y": comparison["builds"], "name": partner_id, "legendgroup": "own",
               "marker": {"color": _PARTNER}, "hovertemplate": "%{x}: %{y:,} builds<extra></extra>"},
              *band(fb, "y"),
              {"type": "scatter", "mode": "lines+markers", "x": x, "y": rates, "yaxis": "y2", "name": partner_id,
               "legendgroup": "own", "showlegend": False, "connectgaps": False,
               "line": {"color": _PARTNER}, "marker": {"size": 5},
               "hovertemplate": "%{x}: %{y:.1f} % success<extra></extra>"},
              *band(fs, "y2", 100.0)]
    return _figure(traces, theme, height=380, barmode="overlay",
                   xaxis={"type": "date", "anchor": "y2"},
                   yaxis={"domain": [0.56, 1.0], "title": {"text": "builds"}, "rangemode": "tozero"},
                   yaxis2={"domain": [0.0, 0.42], "title": {"text": "success %"}, "ticksuffix": "",
                           "range": [max(0.0, min([v for v in rates if v is not None] +
                                                   [q[0] * 100 for q in fs if q] + [100.0]) - 5), 101]},
                   legend={"orientation": "h", "y": -0.14}, margin=dict(l=64, r=16, t=16, b=56))


def burn_down_figure(burn: dict, theme: str) -> dict:
    """Quota left this month, day by day, and its projection at the pace of the last 7 days (the
    cumulative builds when the partner has no quota)."""
    quota = burn["quota"]
    if burn["left"] is None:
        used = burn["used"]
        traces = [{"type": "scatter", "mode": "lines+markers", "x": _times([t for t, _ in used]),
                   "y": [n for _, n in used], "name": "builds this month", "line": {"color": _PARTNER, "shape": "hv"},
                   "hovertemplate": "%{x}: %{y:,} builds<extra></extra>"}]
        return _figure(traces, theme, height=260, yaxis={"title": {"text": "builds (no quota)"}, "rangemode": "tozero"},
                       xaxis={"type": "date", "range": _times([burn["month_start"], burn["month_end"]])},
                       showlegend=False)
    left = burn["left"]
    traces = [{"type": "scatter", "mode": "lines+markers", "x": _times([t for t, _ in left]), "y": [n for _, n in left],
               "name": "quota left", "line": {"color": _PARTNER}, "marker": {"size": 5},
               "hovertemplate": "%{x}: %{y:,} builds left<extra></extra>"}]
    if burn["projection"]:
        p = burn["projection"]
        traces.append({"type": "scatter", "mode": "lines", "x": _times([t for t, _ in p]), "y": [n for _, n in p],
                       "name": "projection (7-day pace)", "line": {"color": "#f59f00", "dash": "dash"},
                       "hovertemplate": "%{x}: %{y:,.0f} left (projected)<extra></extra>"})
    return _figure(traces, theme, height=260,
                   yaxis={"title": {"text": f"builds left of {quota:,}"}, "range": [0, quota * 1.05]},
                   xaxis={"type": "date", "range": _times([burn["month_start"], burn["month_end"]])},
                   legend={"orientation": "h", "y": -0.2})
