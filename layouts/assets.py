"""Assets page: compression and quality by asset type, format and density, bytes saved and the
format mix over time, processing-time percentiles, and every type × format × density in a table."""
from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import html

from layouts.ids import ASSETS
from layouts.panels import panel, table_tools

__all__ = ["layout", "TABLE_COLUMNS"]

_INT = {"function": "params.value == null ? '—' : d3.format(',')(params.value)"}
_BYTES = {"function": "binaryBytes(params.value)"}  # assets/grid-functions.js, the twin of format_bytes
_NUM = "numericColumn"
TABLE_COLUMNS = [
    {"field": "asset_type", "headerName": "Type", "minWidth": 110, "pinned": "left"},
    {"field": "format", "headerName": "Format", "minWidth": 96},
    {"field": "density", "headerName": "Density", "minWidth": 104},
    {"field": "assets", "headerName": "Assets", "type": _NUM, "minWidth": 100, "sort": "desc", "valueFormatter": _INT},
    {"field": "original_bytes", "headerName": "Original", "type": _NUM, "minWidth": 110, "valueFormatter": _BYTES,
     "headerTooltip": "Σ original_bytes (CSV: bytes)"},
    {"field": "output_bytes", "headerName": "Output", "type": _NUM, "minWidth": 110, "valueFormatter": _BYTES,
     "headerTooltip": "Σ output_bytes (CSV: bytes)"},
    {"field": "saved_bytes", "headerName": "Saved", "type": _NUM, "minWidth": 110, "valueFormatter": _BYTES,
     "headerTooltip": "Σ original − Σ output (CSV: bytes)"},
    {"field": "compression_ratio", "headerName": "Compression", "type": _NUM, "minWidth": 124,
     "headerTooltip": "1 − Σ output ÷ Σ original (CSV: a fraction)",
     "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.1%')(params.value)"}},
    {"field": "quality_avg", "headerName": "Quality", "type": _NUM, "minWidth": 100,
     "headerTooltip": "mean quality score, 0–100",
     "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.1f')(params.value)"}},
    {"field": "duration_avg_s", "headerName": "Avg time (s)", "type": _NUM, "minWidth": 120,
     "headerTooltip": "mean processing time per asset, seconds",
     "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.3f')(params.value)"}},
]


def _row_id() -> str:
    return "params.data.asset_type + ':' + params.data.format + ':' + params.data.density"


def layout(content: dict | None = None, table_rows: list[dict] | None = None, export_href: str = ""):
    """The page; `content` maps panel body ids to what they show (callbacks/assets.py)."""
    content = content or {}

    def card(data_panel, title, explanation, body_id, width, height=250):
        return dbc.Col(panel(data_panel, title, explanation, body_id, min_height=height, content=content), xl=width,
                       className="mb-3")

    return html.Div([
        html.H4("Assets", className="mt-2"),
        dbc.Row(dbc.Col(panel("asset-summary", "Assets in words",
                              "Bytes saved = Σ original − Σ output bytes; compression ratio = 1 − Σ output ÷ Σ original bytes.",
                              ASSETS.SUMMARY, min_height=24, content=content)), className="mb-3"),
        dbc.Row([
            card("asset-by-type", "By asset type", "Compression ratio (bars) and mean quality (diamonds, right "
                 "axis) per asset type.", ASSETS.BY_TYPE, 4),
            card("asset-by-format", "By format", "Compression ratio (bars) and mean quality (diamonds, right "
                 "axis) per output format.", ASSETS.BY_FORMAT, 4),
            card("asset-by-density", "By density", "Compression ratio (bars) and mean quality (diamonds, right "
                 "axis) per screen density.", ASSETS.BY_DENSITY, 4),
        ]),
        dbc.Row([
            card("asset-bytes-saved", "Bytes saved over time",
                 "Σ original − Σ output bytes of the assets processed in each interval.", ASSETS.SAVED, 6, 260),
            card("asset-format-trend", "Format mix over time",
                 "Each format's share of the assets processed in each interval.", ASSETS.FORMAT_TREND, 6, 260),
        ]),
        dbc.Row([
            card("asset-format-mix", "Format distribution",
                 "Each format's share of the period's assets and of the bytes they saved.", ASSETS.FORMAT_MIX, 3),
            card("asset-processing-times", "Processing time by asset type",
                 "p50 / p95 / p99 of duration_s of the period's processed assets, from log-bucket histograms "
                 "(within 1 %).", ASSETS.TIMES, 4),
            card("asset-processing-trend", "Processing time over time",
                 "p95 per asset type in each interval; the buttons switch to p50 or p99.", ASSETS.TIME_TREND, 5,
                 280),
        ]),
        dbc.Row(dbc.Col(panel("asset-combinations", "Every type × format × density",
                              "Assets, sizes, compression, quality and mean processing time of each combination "
                              "in the period. CSV: the rows the table shows, in raw units (bytes, fractions, "
                              "seconds); Full export: one row per processed asset.",
                              ASSETS.TABLE + "-body", min_height=200, body=[
                                  html.Div(content.get(ASSETS.TABLE_NOTE), id=ASSETS.TABLE_NOTE),
                                  table_tools(ASSETS.TABLE_CSV, ASSETS.EXPORT, export_href),
                                  dag.AgGrid(id=ASSETS.TABLE, columnDefs=TABLE_COLUMNS, rowData=table_rows or [],
                                             getRowId=_row_id(),
                                             # CSV carries the raw numbers, not the on-screen formatting
                                             defaultColDef={"sortable": True, "filter": True, "resizable": True,
                                                            "flex": 1, "useValueFormatterForExport": False},
                                             csvExportParams={"fileName": "asset-combinations.csv"},
                                             dashGridOptions={"animateRows": False, "tooltipShowDelay": 300},
                                             style={"height": "420px"}),
                              ])), className="mb-3"),
    ])
