"""Capacity page: host resources with their trend and the projected time to each threshold, ingest
and build throughput, and SLA compliance (availability with the error budget, p95 latency)."""
from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import html

from layouts.ids import CAPACITY
from layouts.panels import panel, table_tools

__all__ = ["layout", "SLA_COLUMNS"]

_PCT3 = {"function": "params.value == null ? '—' : d3.format('.3%')(params.value)"}
_INT = {"function": "params.value == null ? '—' : d3.format(',')(params.value)"}
_MS = {"function": "params.value == null ? '—' : d3.format(',.1f')(params.value)"}
_MET = {"function": "params.value == null ? '—' : (params.value ? 'yes' : 'no')"}
SLA_COLUMNS = [
    {"field": "ts_text", "headerName": "Interval (UTC)", "minWidth": 150, "sort": "desc"},
    {"field": "probes_up", "headerName": "Probes up", "type": "numericColumn", "minWidth": 110, "valueFormatter": _INT},
    {"field": "probes_down", "headerName": "Probes down", "type": "numericColumn", "minWidth": 120,
     "valueFormatter": _INT},
    {"field": "availability", "headerName": "Availability", "type": "numericColumn", "minWidth": 120,
     "valueFormatter": _PCT3},
    {"field": "availability_met", "headerName": "Availability met", "minWidth": 140, "valueFormatter": _MET,
     "cellDataType": False},
    {"field": "requests", "headerName": "Requests", "type": "numericColumn", "minWidth": 110, "valueFormatter": _INT},
    {"field": "p95_ms", "headerName": "p95 (ms)", "type": "numericColumn", "minWidth": 100, "valueFormatter": _MS},
    {"field": "latency_met", "headerName": "Latency met", "minWidth": 120, "valueFormatter": _MET, "cellDataType": False},
]


def _resource(data_panel: str, title: str, what: str, body_id: str, content: dict):
    return panel(data_panel, title, f"{what} per interval over the period (collector samples every 5 s); dashed: "
                 "the robust trend of its hourly means carried forward; dotted red: the threshold.", body_id,
                 min_height=250, content=content)


def layout(content: dict | None = None, sla_rows: list[dict] | None = None, export_href: str = ""):
    """The page; `content` maps panel body ids to what they show (callbacks/capacity.py)."""
    content = content or {}
    return html.Div([
        html.H4("Capacity", className="mt-2"),
        dbc.Row(dbc.Col(panel("capacity-summary", "Capacity and service levels in words",
                              "When each resource is projected to reach its threshold (within 30 days), and the "
                              "period's availability and p95 latency against their objectives. Host figures are "
                              "deployment-wide; throughput covers the partners you see.",
                              CAPACITY.SUMMARY, min_height=110, content=content)), className="mb-3"),
        dbc.Row([
            dbc.Col(_resource("cpu-trend", "CPU", "CPU use of the collector's host", CAPACITY.CPU, content), xl=6,
                    className="mb-3"),
            dbc.Col(_resource("memory-trend", "Memory", "Memory in use", CAPACITY.MEMORY, content), xl=6,
                    className="mb-3"),
        ]),
        dbc.Row([
            dbc.Col(_resource("disk-trend", "Disk", "Disk holding the data directory", CAPACITY.DISK, content), xl=6,
                    className="mb-3"),
            dbc.Col(_resource("network-trend", "Network", "Bytes sent + received per second", CAPACITY.NETWORK,
                              content), xl=6, className="mb-3"),
        ]),
        dbc.Row([
            dbc.Col(panel("ingest-throughput", "Ingest throughput",
                          "Events accepted per interval by type, from the build rollups (duplicates and rejected "
                          "events are not counted; partner records are not rolled up).", CAPACITY.INGEST,
                          min_height=260, content=content), xl=6, className="mb-3"),
            dbc.Col(panel("build-throughput", "Build throughput",
                          "Finished builds per hour (intervals of at least an hour), from the build rollups.",
                          CAPACITY.BUILDS, min_height=260, content=content), xl=6, className="mb-3"),
        ]),
        dbc.Row([
            dbc.Col(panel("availability-sla", "Availability against the objective",
                          "Share of the collector's /readyz probes that answered 200, per interval (red: below the "
                          "objective, dotted line), with the error budget of the period.", CAPACITY.AVAILABILITY,
                          min_height=260, content=content), xl=6, className="mb-3"),
            dbc.Col(panel("latency-sla", "p95 latency against the objective",
                          "95th percentile of the app's request durations per interval (every route but /metrics; "
                          "the request rollups), against the objective (dotted red).", CAPACITY.LATENCY,
                          min_height=260, content=content), xl=6, className="mb-3"),
        ]),
        dbc.Row(dbc.Col(panel("sla-buckets", "Service levels per interval",
                              "Probes, availability, requests and p95 latency of each interval of the charts above. "
                              "CSV: this table; Full export: the system dataset (every stored bucket).",
                              CAPACITY.SLA_GRID + "-body", min_height=200, body=[
                                  html.Div(content.get(CAPACITY.SLA_NOTE), id=CAPACITY.SLA_NOTE),
                                  table_tools(CAPACITY.SLA_CSV, CAPACITY.EXPORT, export_href),
                                  dag.AgGrid(id=CAPACITY.SLA_GRID, columnDefs=SLA_COLUMNS, rowData=sla_rows or [],
                                             getRowId="String(params.data.ts)",
                                             defaultColDef={"sortable": True, "filter": True, "resizable": True,
                                                            "flex": 1, "useValueFormatterForExport": False},
                                             csvExportParams={"fileName": "service-levels.csv"},
                                             dashGridOptions={"animateRows": False},
                                             style={"height": "320px"}),
                              ])), className="mb-3"),
    ])
