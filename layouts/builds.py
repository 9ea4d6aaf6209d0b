"""Build intelligence page: trends with forecasts and anomalies, duration percentiles, stage
bottlenecks, failure signatures and the builds table."""
from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from layouts.ids import BUILDS
from layouts.panels import csv_button, panel, table_tools

__all__ = ["layout", "SIGNATURE_COLUMNS", "BUILD_COLUMNS", "GRID_BLOCK_ROWS"]

GRID_BLOCK_ROWS = 100  # rows the builds table asks the server for at a time

SIGNATURE_COLUMNS = [
    {"field": "pattern", "headerName": "Signature", "minWidth": 320, "flex": 3, "tooltipField": "example"},
    {"field": "count", "headerName": "Builds", "type": "numericColumn", "maxWidth": 110, "sort": "desc",
     "valueFormatter": {"function": "d3.format(',')(params.value)"}},
    {"field": "share", "headerName": "Share", "type": "numericColumn", "maxWidth": 100,
     "valueFormatter": {"function": "params.value == null ? '—' : d3.format('.1%')(params.value)"}},
    {"field": "trend", "headerName": "Trend", "minWidth": 150, "cellClass": "sparkline"},
    {"field": "partner_count", "headerName": "Partners", "type": "numericColumn", "maxWidth": 110,
     "tooltipField": "partner_list"},
    {"field": "stage_list", "headerName": "Stage", "minWidth": 130},
    {"field": "category_list", "headerName": "Category", "minWidth": 110},
    {"field": "first_seen_text", "headerName": "First seen", "minWidth": 140},
    {"field": "last_seen_text", "headerName": "Last seen", "minWidth": 140},
    {"field": "new_text", "headerName": "New", "maxWidth": 90},
    {"field": "signature", "headerName": "Id", "minWidth": 150, "hide": False},
]
_TEXT_FILTER = {"filter": "agTextColumnFilter", "filterParams": {"filterOptions": ["equals"], "maxNumConditions": 1}}
BUILD_COLUMNS = [
    {"field": "finished_at", "headerName": "Finished (UTC)", "minWidth": 170, "sort": "desc", "sortable": True},
    {"field": "build_id", "headerName": "Build", "minWidth": 140},
    {"field": "partner_id", "headerName": "Partner", "minWidth": 150, **_TEXT_FILTER},
    {"field": "build_type", "headerName": "Type", "maxWidth": 110, **_TEXT_FILTER},
    {"field": "status", "headerName": "Status", "maxWidth": 120, **_TEXT_FILTER},
    {"field": "duration_s", "headerName": "Duration (s)", "type": "numericColumn", "maxWidth": 130, "sortable": True,
     "valueFormatter": {"function": "params.value == null ? '' : d3.format(',.1f')(params.value)"}},
    {"field": "failed_stage", "headerName": "Failed stage", "minWidth": 140, **_TEXT_FILTER},
    {"field": "error_category", "headerName": "Category", "maxWidth": 130, **_TEXT_FILTER},
    {"field": "error_signature", "headerName": "Signature", "minWidth": 150, **_TEXT_FILTER},
    {"field": "error_message", "headerName": "Error message", "minWidth": 320, "flex": 2,
     "tooltipField": "error_message"},
]


def layout(content: dict | None = None, signature_rows: list[dict] | None = None, export_href: str = "",
           poll: bool = False):
    """The page. `content` maps a panel body's id to what it shows (callbacks/builds.py draws it for
    the page's filters); `poll` keeps asking for forecasts still being computed."""
    content = content or {}
    return html.Div([
        html.H4("Build intelligence", className="mt-2"),
        dcc.Interval(id=BUILDS.FORECAST_POLL, interval=2000, max_intervals=60, disabled=not poll, n_intervals=0),
        dbc.Row(dbc.Col(panel("builds-summary", "What this period says",
                              "The success-rate trend and its forecast, the stage that slows builds, the top failure "
                              "signatures and the anomalies, in words.", BUILDS.SUMMARY + "-body", min_height=110,
                              body=[html.Div(content.get(BUILDS.SUMMARY), id=BUILDS.SUMMARY),
                                    # the bottleneck's sentence comes with the bottleneck panel (its callback)
                                    html.Div(content.get(BUILDS.SUMMARY_BOTTLENECK), id=BUILDS.SUMMARY_BOTTLENECK)])),
                className="mb-3"),
        dbc.Row([
            dbc.Col(panel("success-trend", "Success rate and forecast",
                          "Succeeded ÷ completed per step; dashed: the forecast with its 80 % and 95 % prediction "
                          "intervals; circles: anomalies (hover for their cause).", BUILDS.SUCCESS, min_height=300,
                          content=content), xl=6, className="mb-3"),
            dbc.Col(panel("volume-trend", "Build volume and forecast",
                          "Finished builds per step, the forecast with its intervals, anomalies marked.",
                          BUILDS.VOLUME, min_height=300, content=content), xl=6, className="mb-3"),
        ]),
        dbc.Row([
            dbc.Col(panel("duration-percentiles", "Build time percentiles",
                          "p50, p95 and p99 of completed builds per step (buttons: by build type); red: the target.",
                          BUILDS.PERCENTILES, min_height=300, content=content), xl=6, className="mb-3"),
            dbc.Col(panel("stage-bottlenecks", "Stage bottlenecks",
                          "Each stage's share of all build time and of the time of the slowest 5 % of builds.",
                          BUILDS.BOTTLENECKS, min_height=300, content=content), xl=6, className="mb-3"),
        ]),
        dbc.Row([
            dbc.Col(panel("stage-trend", "Stage p95 over time", "The 95th percentile duration of each stage per step.",
                          BUILDS.STAGE_TREND, min_height=280, content=content), xl=6, className="mb-3"),
            dbc.Col(panel("anomalies", "Anomalies and their causes",
                          "Steps outside their expected seasonal band (the weekly and daily rhythm is expected), "
                          "strongest first, with what contributed most.", BUILDS.ANOMALIES, min_height=280,
                          content=content), xl=6, className="mb-3"),
        ]),
        dbc.Row(dbc.Col(panel("failure-signatures", "Failure signatures",
                              "Failed builds grouped by their normalised error message (numbers, ids, paths, "
                              "versions masked). Click a row to see its builds below.", BUILDS.SIGNATURES + "-body",
                              min_height=200, body=[
                                  html.Div(content.get(BUILDS.SIGNATURES), id=BUILDS.SIGNATURES),
                                  html.Div(csv_button(BUILDS.SIGNATURE_CSV), className="text-end mb-2"),
                                  dag.AgGrid(id=BUILDS.SIGNATURE_GRID, columnDefs=SIGNATURE_COLUMNS,
                                             rowData=signature_rows or [],
                                             getRowId="params.data.signature",
                                             defaultColDef={"sortable": True, "filter": True, "resizable": True,
                                                            "minWidth": 90},
                                             csvExportParams={"fileName": "failure-signatures.csv",
                                                              "columnKeys": ["signature", "pattern", "count", "share",
                                                                             "partner_list", "stage_list",
                                                                             "category_list", "first_seen_text",
                                                                             "last_seen_text", "new_text"]},
                                             dashGridOptions={"animateRows": False, "tooltipShowDelay": 300,
                                                              "suppressColumnVirtualisation": True,
                                                              "rowSelection": {"mode": "singleRow",
                                                                               "checkboxes": False,
                                                                               "enableClickSelection": True}},
                                             style={"height": "340px"}),
                              ])), className="mb-3"),
        dbc.Row(dbc.Col(panel("builds-table", "Builds",
                              "Every finished build of the period, newest first (or by duration); filter by partner, "
                              "type, status, stage, category or signature (set by a click above). CSV: the rows loaded here; Full export: every row.",
                              BUILDS.GRID + "-body", min_height=200, body=[
                                  table_tools(BUILDS.GRID_CSV, BUILDS.EXPORT, export_href),
                                  dag.AgGrid(id=BUILDS.GRID, columnDefs=BUILD_COLUMNS, rowModelType="infinite",
                                             getRowId="params.data.build_id",
                                             defaultColDef={"sortable": False, "resizable": True, "minWidth": 90,
                                                            "floatingFilter": False},
                                             csvExportParams={"fileName": "builds.csv"},
                                             dashGridOptions={"cacheBlockSize": GRID_BLOCK_ROWS,
                                                              "maxBlocksInCache": 20,
                                                              "infiniteInitialRowCount": GRID_BLOCK_ROWS,
                                                              "tooltipShowDelay": 300, "animateRows": False,
                                                              "suppressColumnVirtualisation": True},
                                             style={"height": "420px"}),
                              ])), className="mb-3"),
    ])
