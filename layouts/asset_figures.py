"""Figures of the Assets page (plain Plotly dicts, themed through layouts/figures._figure). Sizes are
binary units throughout (layouts/figures.format_bytes)."""
from __future__ import annotations

from layouts.figures import _figure, _step_label, _times, format_bytes
from services.vocabulary import ASSET_FORMATS, ASSET_TYPES

__all__ = ["breakdown_figure", "saved_figure", "format_trend_figure", "format_mix_figure", "times_figure",
           "time_trend_figure", "byte_unit", "FORMAT_COLOURS", "TYPE_COLOURS"]

FORMAT_COLOURS = {"png": "#4263eb", "webp": "#2f9e44", "jpg": "#f59f00", "svg": "#ae3ec9"}
TYPE_COLOURS = {"icon": "#4263eb", "splash": "#f59f00", "logo": "#2f9e44", "banner": "#e8590c",
                "screenshot": "#ae3ec9", "all": "#868e96"}
_RATIO, _QUALITY = "#1c7ed6", "#f08c00"
_QUANTILE_COLOURS = (("p50", "#74c0fc"), ("p95", "#1864ab"), ("p99", "#862e9c"))
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def byte_unit(largest: float) -> tuple[str, int]:
    """(unit, bytes per unit) an axis of byte values up to `largest` is drawn in: the unit
    format_bytes writes `largest` in, so axis and hover texts agree."""
    unit = format_bytes(largest or 0).split()[-1]
    return unit, 1024 ** _UNITS.index(unit)


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100


def breakdown_figure(rows: list[dict], label: str, theme: str) -> dict:
    """Compression ratio (bars, left axis) and mean quality score (markers, right axis) per value of
    one dimension (asset type, format or density)."""
    x = [r["value"] for r in rows]
    custom = [[format_bytes(r["saved_bytes"]), r["assets"], format_bytes(r["original_bytes"])] for r in rows]
    traces = [
        {"type": "bar", "name": "compression", "x": x, "y": [_pct(r["compression_ratio"]) for r in rows],
         "marker": {"color": _RATIO}, "customdata": custom,
         "hovertemplate": "%{x}: %{y:.1f} % smaller<br>%{customdata[0]} saved of %{customdata[2]}<br>"
                          "%{customdata[1]:,} assets<extra></extra>"},
        {"type": "scatter", "mode": "markers", "name": "mean quality", "x": x, "yaxis": "y2",
         "y": [r["quality_avg"] for r in rows], "marker": {"color": _QUALITY, "size": 11, "symbol": "diamond"},
         "cliponaxis": False,  # a quality of 99 sits on the top edge: drawn whole
         "hovertemplate": "%{x}: mean quality %{y:.1f}<extra></extra>"},
    ]
    return _figure(traces, theme, height=250, xaxis={"type": "category", "title": {"text": label}},
                   yaxis={"title": {"text": "compression"}, "ticksuffix": " %", "rangemode": "tozero"},
                   # linear ticks: an overlaying axis would otherwise take the left axis' tick positions
                   yaxis2={"title": {"text": "quality"}, "overlaying": "y", "side": "right", "range": [0, 100],
                           "tickmode": "linear", "tick0": 0, "dtick": 25, "showgrid": False},
                   legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
                   margin=dict(l=64, r=56, t=28, b=48))


def saved_figure(trends: dict, theme: str) -> dict:
    """Bytes saved (Σ original − Σ output) per window."""
    saved = trends["saved_bytes"]
    unit, size = byte_unit(max(saved, default=0))
    custom = [[format_bytes(s), _pct(r), n] for s, r, n in zip(saved, trends["compression_ratio"], trends["assets"])]
    trace = {"type": "bar", "name": "saved", "x": _times(trends["ts"]), "y": [s / size for s in saved],
             "marker": {"color": "#2f9e44"}, "customdata": custom,
             "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{customdata[0]} saved (%{customdata[1]:.1f} % smaller)"
                              "<br>%{customdata[2]:,} assets<extra></extra>"}
    return _figure([trace], theme, height=260, bargap=0.1, showlegend=False,
                   yaxis={"title": {"text": f"{unit} saved / {_step_label(trends['step_s'])}"}, "rangemode": "tozero"})


def format_trend_figure(trends: dict, theme: str) -> dict:
    """Share of the window's assets per format (stacked to 100 %)."""
    x = _times(trends["ts"])
    traces = [{"type": "bar", "name": fmt, "x": x, "y": [_pct(v) for v in trends["format_shares"][fmt]],
               "customdata": trends["formats"][fmt], "marker": {"color": FORMAT_COLOURS[fmt]},
               "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>" + fmt + " %{y:.1f} % (%{customdata:,} assets)"
                                "<extra></extra>"}
              for fmt in ASSET_FORMATS if any(trends["formats"][fmt])]
    return _figure(traces, theme, height=260, barmode="stack", bargap=0.1,
                   yaxis={"title": {"text": "share of assets"}, "ticksuffix": " %", "range": [0, 100]})


def format_mix_figure(rows: list[dict], theme: str) -> dict:
    """Each format's share of the period's assets, and of the bytes saved."""
    y = [r["value"] for r in rows]
    traces = [{"type": "bar", "orientation": "h", "name": name, "y": y, "x": [_pct(r[key]) for r in rows],
               "marker": {"color": colour},
               "customdata": [[r["assets"], format_bytes(r["saved_bytes"])] for r in rows],
               "hovertemplate": "%{y}: %{x:.1f} % " + name + "<br>%{customdata[0]:,} assets, %{customdata[1]} saved"
                                "<extra></extra>"}
              for key, name, colour in (("asset_share", "of assets", "#74c0fc"),
                                        ("saved_share", "of bytes saved", "#2f9e44"))]
    return _figure(traces, theme, height=250, barmode="group", xaxis={"ticksuffix": " %", "rangemode": "tozero"},
                   yaxis={"autorange": "reversed", "type": "category"}, margin=dict(l=56, r=16, t=16, b=40),
                   legend={"orientation": "h", "y": -0.2})


def times_figure(rows: list[dict], theme: str) -> dict:
    """p50/p95/p99 processing time per asset type (and all types), seconds."""
    rows = [r for r in rows if r["timed"]]
    x = [r["asset_type"] if r["asset_type"] != "all" else "all types" for r in rows]
    traces = [{"type": "bar", "name": label, "x": x, "y": [r[f"{label}_s"] for r in rows],
               "marker": {"color": colour}, "customdata": [r["timed"] for r in rows],
               "hovertemplate": "%{x}: " + label + " %{y:.3f} s<br>of %{customdata:,} assets<extra></extra>"}
              for label, colour in _QUANTILE_COLOURS]
    return _figure(traces, theme, height=250, barmode="group", xaxis={"type": "category"},
                   yaxis={"title": {"text": "seconds"}, "rangemode": "tozero"},
                   legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
                   margin=dict(l=64, r=16, t=28, b=40))


def time_trend_figure(trends: dict, theme: str) -> dict:
    """Processing time per window and asset type: p95 shown, buttons switch to p50 or p99."""
    x = _times(trends["ts"])
    traces, groups = [], []
    for label, _ in _QUANTILE_COLOURS:
        for asset_type in ASSET_TYPES:
            series = trends["times"].get(asset_type)
            if series is None:
                continue
            traces.append({"type": "scatter", "mode": "lines", "name": asset_type, "x": x, "y": series[label],
                           "line": {"color": TYPE_COLOURS[asset_type], "width": 2}, "visible": label == "p95",
                           "connectgaps": False, "legendgroup": asset_type,
                           "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>" + label + " %{y:.3f} s<extra>"
                                            + asset_type + "</extra>"})
            groups.append(label)
    buttons = [{"label": label, "method": "restyle", "args": [{"visible": [g == label for g in groups]}]}
               for label, _ in _QUANTILE_COLOURS]
    return _figure(traces, theme, height=280, yaxis={"title": {"text": "seconds"}, "rangemode": "tozero"},
                   # as on the Build intelligence percentiles: dark text on mid-grey buttons in both themes
                   updatemenus=[{"type": "buttons", "direction": "right", "x": 0, "y": 1.12, "xanchor": "left",
                                 "yanchor": "bottom", "buttons": buttons, "showactive": True, "active": 1,
                                 "pad": {"r": 4, "t": 0}, "font": {"size": 11, "color": "#212529"},
                                 **({"bgcolor": "#adb5bd", "bordercolor": "#6c757d"} if theme == "dark" else {})}],
                   margin=dict(l=64, r=16, t=40, b=40))
