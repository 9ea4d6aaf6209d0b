"""Figures of the build intelligence page: series with forecast bands and anomaly marks, duration
percentiles per build type, stage bottlenecks (plain functions, Plotly JSON dicts, no I/O)."""
from __future__ import annotations

from layouts.figures import _figure, _times, format_duration

__all__ = ["forecast_figure", "percentiles_figure", "bottleneck_figure", "stage_trend_figure", "sparkline",
           "ANOMALY_COLOUR", "STAGE_COLOURS"]

ANOMALY_COLOUR = "#e03131"
_HISTORY, _FORECAST = "#1c7ed6", "#7048e8"
STAGE_COLOURS = ("#74c0fc", "#ffa94d", "#1864ab", "#63e6be", "#b197fc", "#ff8787")
_TYPE_DASH = {"debug": "dot", "release": "dash", "store": "dashdot"}
_BLOCKS = "▁▂▃▄▅▆▇█"


def _value_format(metric: str) -> tuple[str, dict, float]:
    """(hover format, y axis settings, scale) of a metric."""
    if metric == "success_rate":
        return ".1f", {"ticksuffix": " %", "title": {"text": "success rate"}}, 100.0
    if metric == "duration_p95":
        return ".1f", {"title": {"text": "p95 build time (min)"}, "rangemode": "tozero"}, 1 / 60
    return ",.0f", {"title": {"text": "builds"}, "rangemode": "tozero"}, 1.0


def forecast_figure(history: list, forecast: dict | None, anomalies: list[dict], metric: str, theme: str,
                    step_s: int) -> dict:
    """History line, the forecast's mean with its 80 % and 95 % bands, and the anomalies marked."""
    fmt, yaxis, k = _value_format(metric)

    def scaled(v):
        return None if v is None else v * k

    unit = " %" if metric == "success_rate" else (" min" if metric == "duration_p95" else "")
    traces = [{"type": "scatter", "mode": "lines", "name": "actual", "x": _times([p[0] for p in history]),
               "y": [scaled(p[1]) for p in history], "line": {"color": _HISTORY, "width": 2},
               "hovertemplate": "%{x|%b %d %H:%M} UTC<br>%{y:" + fmt + "}" + unit + "<extra>actual</extra>"}]
    points = (forecast or {}).get("points") or []
    if points:
        x = _times([p["ts"] for p in points])
        back = x[::-1]
        for level, alpha in (("95", 0.13), ("80", 0.25)):
            traces.append({"type": "scatter", "mode": "lines", "name": f"{level} % interval", "fill": "toself",
                           "x": x + back, "y": [scaled(p[f"upper_{level}"]) for p in points]
                           + [scaled(p[f"lower_{level}"]) for p in points][::-1],
                           "line": {"width": 0}, "fillcolor": f"rgba(112,72,232,{alpha})", "hoverinfo": "skip"})
        traces.append({"type": "scatter", "mode": "lines", "name": "forecast", "x": x,
                       "y": [scaled(p["mean"]) for p in points], "line": {"color": _FORECAST, "dash": "dash"},
                       "customdata": [[scaled(p["lower_95"]), scaled(p["upper_95"])] for p in points],
                       "hovertemplate": "%{x|%b %d %H:%M} UTC<br>forecast %{y:" + fmt + "}" + unit
                                        + " (95 %: %{customdata[0]:" + fmt + "}–%{customdata[1]:" + fmt + "})"
                                        + "<extra></extra>"})
    if anomalies:
        traces.append({"type": "scatter", "mode": "markers", "name": "anomaly",
                       "x": _times([a["ts"] for a in anomalies]), "y": [scaled(a["value"]) for a in anomalies],
                       "marker": {"color": ANOMALY_COLOUR, "size": 10, "symbol": "circle-open", "line": {"width": 2}},
                       "text": [(a.get("cause") or {}).get("sentence") or "" for a in anomalies],
                       "hovertemplate": "%{text}<extra>anomaly</extra>"})
    return _figure(traces, theme, height=280, yaxis=yaxis, hovermode="closest",
                   margin=dict(l=64, r=16, t=16, b=40))


def percentiles_figure(data: dict, target_s: float, theme: str) -> dict:
    """p50/p95/p99 of build time per window, for all builds or one build type (buttons pick which),
    and the build-time target as a line."""
    x = _times(data["ts"])
    traces, groups = [], []
    for name, colour in (("p50", "#4dabf7"), ("p95", "#1864ab"), ("p99", "#862e9c")):
        traces.append({"type": "scatter", "mode": "lines", "name": f"{name} all", "x": x,
                       "y": [None if v is None else v / 60 for v in data["types"]["all"][name]],
                       "line": {"color": colour, "width": 2},
                       "hovertemplate": "%{x|%b %d %H:%M} UTC<br>" + name + " %{y:.1f} min<extra>all</extra>"})
        groups.append("all")
    for build_type, dash in _TYPE_DASH.items():
        for name, colour in (("p50", "#4dabf7"), ("p95", "#1864ab"), ("p99", "#862e9c")):
            traces.append({"type": "scatter", "mode": "lines", "name": f"{name} {build_type}", "x": x,
                           "y": [None if v is None else v / 60 for v in data["types"][build_type][name]],
                           "line": {"color": colour, "dash": dash}, "visible": False,
                           "hovertemplate": "%{x|%b %d %H:%M} UTC<br>" + name + " %{y:.1f} min<extra>"
                                            + build_type + "</extra>"})
            groups.append(build_type)
    buttons = [{"label": label, "method": "restyle", "args": [{"visible": [g == group for g in groups]}]}
               for group, label in (("all", "All builds"), ("debug", "debug"), ("release", "release"),
                                    ("store", "store"))]
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": target_s / 60, "y1": target_s / 60,
               "line": {"color": "#e03131", "dash": "dot", "width": 1.5}}]
    annotations = [{"xref": "paper", "x": 1, "y": target_s / 60, "yanchor": "bottom", "xanchor": "right",
                    "text": f"target {format_duration(target_s)}", "showarrow": False,
                    "font": {"color": "#e03131", "size": 11}}]
    return _figure(traces, theme, height=300, shapes=shapes, annotations=annotations,
                   yaxis={"title": {"text": "build time (min)"}, "rangemode": "tozero"},
                   # Plotly paints the active button light in either theme: dark text on mid-grey buttons
                   # keeps both readable on a dark page
                   updatemenus=[{"type": "buttons", "direction": "right", "x": 0, "y": 1.12, "xanchor": "left",
                                 "yanchor": "bottom", "buttons": buttons, "showactive": True, "pad": {"r": 4, "t": 0},
                                 "font": {"size": 11, "color": "#212529"},
                                 **({"bgcolor": "#adb5bd", "bordercolor": "#6c757d"} if theme == "dark" else {})}],
                   margin=dict(l=64, r=16, t=40, b=40))


def bottleneck_figure(stages: list[dict], theme: str) -> dict:
    """Each stage's share of all build time against its share of the slowest 5 % of builds."""
    names = [s["stage"].replace("_", " ") for s in stages]
    traces = [{"type": "bar", "orientation": "h", "y": names, "x": [None if s[key] is None else s[key] * 100
                                                                     for s in stages],
               "name": label, "marker": {"color": colour},
               "hovertemplate": "%{y}: %{x:.1f} % " + label + "<extra></extra>"}
              for key, label, colour in (("share_of_time", "of all build time", "#74c0fc"),
                                         ("share_of_slowest", "of the slowest 5 %", "#e8590c"))]
    return _figure(traces, theme, height=280, barmode="group",
                   xaxis={"ticksuffix": " %", "rangemode": "tozero"},
                   yaxis={"autorange": "reversed", "automargin": True}, margin=dict(l=140, r=16, t=16, b=40),
                   legend=dict(orientation="h", y=-0.15))


def stage_trend_figure(trend: dict, theme: str) -> dict:
    """p95 duration of each stage per window."""
    x = _times(trend["ts"])
    traces = [{"type": "scatter", "mode": "lines", "name": stage.replace("_", " "), "x": x,
               "y": [None if v is None else v / 60 for v in values], "line": {"color": colour},
               "hovertemplate": "%{x|%b %d %H:%M} UTC<br>p95 %{y:.2f} min<extra>" + stage + "</extra>"}
              for (stage, values), colour in zip(trend["p95"].items(), STAGE_COLOURS)]
    return _figure(traces, theme, height=280, yaxis={"title": {"text": "stage p95 (min)"}, "rangemode": "tozero"})


def sparkline(counts: list[int] | None) -> str:
    """A text sparkline of counts (block characters; empty for none)."""
    if not counts:
        return ""
    top = max(counts)
    if top <= 0:
        return _BLOCKS[0] * len(counts)
    return "".join(_BLOCKS[min(len(_BLOCKS) - 1, int(c / top * (len(_BLOCKS) - 1) + 0.5))] if c else " "
                   for c in counts)
