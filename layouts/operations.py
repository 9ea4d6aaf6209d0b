"""Operations page: the 12 operational panels."""
from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import html

from layouts.ids import OPS
from layouts.panels import csv_button, panel

__all__ = ["layout", "ASSET_COLUMNS"]


# Widths that fit the panel (8 of 12 columns) at 1280 px without a horizontal scroll.
ASSET_COLUMNS = [
    {"field": "asset_type", "headerName": "Type", "minWidth": 76},
    {"field": "format", "headerName": "Format", "minWidth": 88},
    {"field": "density", "headerName": "Density", "minWidth": 90},
    {"field": "processed", "headerName": "Processed", "type": "numericColumn", "minWidth": 108,
     "valueFormatter": {"function": "d3.format(',')(params.value)"}},
    {"field": "compression_ratio", "headerName": "Compression", "type": "numericColumn", "minWidth": 124,
     "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.1%')(params.value)"}},
    {"field": "bytes_saved", "headerName": "Saved", "type": "numericColumn", "minWidth": 96,
     "valueFormatter": {"function": "binaryBytes(params.value)"}},
    {"field": "quality_avg", "headerName": "Quality", "type": "numericColumn", "minWidth": 88,
     "valueFormatter": {"function": "d3.format('.1f')(params.value)"}},
    {"field": "duration_avg_s", "headerName": "Time (s)", "type": "numericColumn", "minWidth": 90,
     "headerTooltip": "average processing time per asset, seconds",
     "valueFormatter": {"function": "d3.format('.2f')(params.value)"}},
]


def _system_panel(data_panel: str, title: str, what: str, body_id: str, content: dict):
    return panel(data_panel, title, f"{what}: average over the period of the collector's samples "
                 "(every 5 s); now = latest sample. Amber from 80 %, red from 90 %.", body_id, min_height=200,
                 content=content)


def layout(content: dict | None = None, asset_rows: list[dict] | None = None):
    """The page. `content` maps a panel body's id to what it shows (callbacks/operations.py draws it
    for the page's filters); a body left out stays empty until its callback fills it."""
    content = content or {}
    return html.Div([
        html.H4("Operations", className="mt-2"),
        dbc.Row(dbc.Col(panel("kpi-overview", "Overview", "Finished builds in the selected period, from the store's rollups; active builds now; "
                              "uptime: the share of the collector's /readyz probes that answered.",
                              OPS.KPIS, min_height=90, content=content)), className="mb-3"),
        dbc.Row([
            dbc.Col(panel("success-rate-gauge", "Build success rate",
                          "Succeeded ÷ (succeeded + failed) in the period. Red below 90 %, amber below 95 %.",
                          OPS.SUCCESS_GAUGE, content=content), md=6, xl=4, className="mb-3"),
            dbc.Col(panel("build-time-gauge", "Average build time",
                          "Mean duration of completed builds in the period; the red mark is the target.",
                          OPS.BUILD_TIME_GAUGE, content=content), md=6, xl=4, className="mb-3"),
            dbc.Col(_system_panel("cpu-gauge", "CPU", "CPU use of the collector's host", OPS.CPU, content), md=12, xl=4,
                    className="mb-3"),
        ]),
        dbc.Row([
            dbc.Col(_system_panel("memory-gauge", "Memory", "Memory in use", OPS.MEMORY, content), md=6, className="mb-3"),
            dbc.Col(_system_panel("disk-gauge", "Disk", "Disk holding the data directory", OPS.DISK, content), md=6,
                    className="mb-3"),
        ]),
        dbc.Row([
            dbc.Col(panel("build-rate", "Build rate", "Finished builds per interval, stacked by status.",
                          OPS.BUILD_RATE, min_height=260, content=content), xl=6, className="mb-3"),
            dbc.Col(panel("duration-heatmap", "Build duration heatmap",
                          "Completed builds per interval and duration band.", OPS.HEATMAP, min_height=260, content=content),
                    xl=6, className="mb-3"),
        ]),
        dbc.Row([
            dbc.Col(panel("stage-durations", "Stage durations", "p50 and p95 duration of each build stage in the period.",
                          OPS.STAGES, min_height=260, content=content), xl=4, className="mb-3"),
            dbc.Col(panel("asset-table", "Asset processing",
                          "Assets processed in the period by type, format and density. Sort, filter, download.",
                          OPS.ASSETS + "-body", min_height=260, body=[
                              html.Div(content.get(OPS.ASSETS), id=OPS.ASSETS),
                              html.Div(csv_button(OPS.ASSET_CSV), className="text-end mb-2"),
                              dag.AgGrid(id=OPS.ASSET_GRID, columnDefs=ASSET_COLUMNS, rowData=asset_rows or [],
                                         # CSV carries raw numbers, not the on-screen formatting
                                         defaultColDef={"sortable": True, "filter": True, "resizable": True, "flex": 1,
                                                        "useValueFormatterForExport": False,
                                                        },
                                         csvExportParams={"fileName": "assets.csv"},
                                         dashGridOptions={"animateRows": False, "domLayout": "normal"},
                                         style={"height": "320px"}),
                          ]), xl=8, className="mb-3"),
        ]),
        dbc.Row([
            dbc.Col(panel("http-latency", "HTTP latency and request rate",
                          "p50/p95/p99 latency and requests per second of every route except /metrics; "
                          "from Prometheus (every instance) when configured, else the app's own rollups.",
                          OPS.HTTP_LATENCY, min_height=260, content=content), xl=6, className="mb-3"),
            dbc.Col(panel("http-errors", "HTTP errors",
                          "Share of responses with status 4xx and 5xx per interval; same source as the latency panel.",
                          OPS.HTTP_ERRORS, min_height=260, content=content), xl=6, className="mb-3"),
        ]),
    ])
