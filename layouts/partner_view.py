"""The one-partner view (/partners/<id>, and /partners with exactly one partner selected): how the
partner does against the fleet, when its quota runs out, when it builds, what fails, its assets and
its subscription history."""
from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from layouts.builds import SIGNATURE_COLUMNS
from layouts.ids import PARTNER
from layouts.operations import ASSET_COLUMNS
from layouts.panels import csv_button, empty_state, panel

__all__ = ["layout", "missing", "FAILED_COLUMNS", "HISTORY_COLUMNS", "PARTNER_SIGNATURE_COLUMNS"]

# The signature table without the partner columns (one partner) and the trend sparkline.
PARTNER_SIGNATURE_COLUMNS = [c for c in SIGNATURE_COLUMNS if c["field"] not in ("partner_count", "trend")]
FAILED_COLUMNS = [
    {"field": "finished_at", "headerName": "Finished (UTC)", "minWidth": 170, "sort": "desc"},
    {"field": "build_id", "headerName": "Build", "minWidth": 140},
    {"field": "build_type", "headerName": "Type", "maxWidth": 110},
    {"field": "failed_stage", "headerName": "Failed stage", "minWidth": 140},
    {"field": "error_category", "headerName": "Category", "maxWidth": 130},
    {"field": "pattern", "headerName": "Signature", "minWidth": 280, "flex": 2, "tooltipField": "error_message"},
    {"field": "error_signature", "headerName": "Id", "minWidth": 150},
    {"field": "duration_s", "headerName": "Duration (s)", "type": "numericColumn", "maxWidth": 130,
     "valueFormatter": {"function": "params.value == null ? '' : d3.format(',.1f')(params.value)"}},
]
HISTORY_COLUMNS = [
    {"field": "when", "headerName": "When (UTC)", "minWidth": 150, "sort": "desc"},
    {"field": "change", "headerName": "Change", "maxWidth": 130},
    {"field": "tier", "headerName": "Tier", "maxWidth": 110},
    {"field": "status", "headerName": "Status", "maxWidth": 120},
    {"field": "monthly_build_quota", "headerName": "Monthly quota", "type": "numericColumn", "minWidth": 130,
     "valueFormatter": {"function": "params.value == null ? '—' : d3.format(',')(params.value)"}},
    {"field": "name", "headerName": "Name", "minWidth": 160, "flex": 1},
]


def _grid(grid_id: str, columns: list[dict], rows: list[dict], height: int, file_name: str, row_id: str | None):
    return dag.AgGrid(id=grid_id, columnDefs=columns, rowData=rows,
                      **({"getRowId": f"params.data.{row_id}"} if row_id else {}),
                      defaultColDef={"sortable": True, "filter": True, "resizable": True, "minWidth": 90,
                                     "useValueFormatterForExport": False},
                      csvExportParams={"fileName": file_name},
                      dashGridOptions={"animateRows": False, "tooltipShowDelay": 300},
                      style={"height": f"{height}px"})


def _table_panel(data_panel: str, title: str, explanation: str, note_id: str | None, csv_id: str, grid, content):
    return panel(data_panel, title, explanation, (note_id or csv_id) + "-body", min_height=120, body=[
        html.Div(content.get(note_id), id=note_id) if note_id else None,
        html.Div(csv_button(csv_id), className="text-end mb-2"), grid])


def layout(partner_id: str, content: dict | None = None, grids: dict | None = None, fleet_href: str = "/partners",
           export_href: str = ""):
    """The view; `content` maps panel body ids to what they show and `grids` grid ids to their rows
    (callbacks/partner_view.py)."""
    content, grids = content or {}, grids or {}
    return html.Div([
        dcc.Store(id=PARTNER.ID, data=partner_id),
        html.Div([html.A([html.I(className="bi bi-arrow-left me-1"), "All partners"], href=fleet_href,
                         className="small", id="partner-fleet-link"),
                  html.A([html.I(className="bi bi-box-arrow-down me-1"), "Export its builds"], href=export_href,
                         target="_blank", className="btn btn-sm btn-outline-secondary ms-3")],
                 className="mt-2 d-flex align-items-center"),
        dbc.Row(dbc.Col(panel("partner-header", "Partner", "Its record now, its churn risk and why, and its quota.",
                              PARTNER.HEADER, min_height=80, content=content)), className="my-3"),
        dbc.Row(dbc.Col(panel("partner-kpis", "Against the fleet",
                              "The period's builds, success rate and average build time of this partner, the median of "
                              "the active partners you may see, and its rank among them (1 = best).",
                              PARTNER.KPIS, min_height=90, content=content)), className="mb-3"),
        dbc.Row([
            dbc.Col(panel("partner-vs-fleet", "Builds and success rate against the fleet",
                          "Per hour (periods up to 2 days) or per day: this partner against the fleet's median and "
                          "middle half (25th–75th percentile of the per-partner figures).",
                          PARTNER.COMPARISON, min_height=380, content=content), xl=7, className="mb-3"),
            dbc.Col(panel("quota-burn-down", "Quota burn-down this month",
                          "Builds left of the monthly quota at the end of each UTC day, and the projection at the pace "
                          "of the last 7 days until the month ends or the quota runs out.",
                          PARTNER.BURN_DOWN, min_height=260, content=content), xl=5, className="mb-3"),
        ]),
        dbc.Row([
            dbc.Col(panel("partner-usage", "When it builds",
                          "Mean finished builds per UTC hour of the week over the period (at most its last 35 days).",
                          PARTNER.USAGE, min_height=260, content=content), xl=6, className="mb-3"),
            dbc.Col(_table_panel("subscription-history", "Subscription history",
                                 "Every change of its record: creation, upgrades, downgrades, status and quota "
                                 "changes.", None, PARTNER.HISTORY_CSV,
                                 _grid(PARTNER.HISTORY_GRID, HISTORY_COLUMNS, grids.get(PARTNER.HISTORY_GRID, []), 230,
                                       "subscription-history.csv", None), content), xl=6, className="mb-3"),
        ]),
        dbc.Row(dbc.Col(_table_panel(
            "partner-signatures", "Failure signatures",
            "Its failed builds in the period grouped by normalised error message, with first and last seen over "
            "the whole retention.", PARTNER.SIGNATURE_NOTE, PARTNER.SIGNATURE_CSV,
            _grid(PARTNER.SIGNATURE_GRID, PARTNER_SIGNATURE_COLUMNS, grids.get(PARTNER.SIGNATURE_GRID, []), 240,
                  "partner-signatures.csv", "signature"), content)), className="mb-3"),
        dbc.Row(dbc.Col(_table_panel(
            "partner-failed-builds", "Recent failed builds",
            "Its last 25 failed builds of the period, newest first, with the signature each belongs to.",
            PARTNER.FAILED_NOTE, PARTNER.FAILED_CSV,
            _grid(PARTNER.FAILED_GRID, FAILED_COLUMNS, grids.get(PARTNER.FAILED_GRID, []), 280,
                  "partner-failed-builds.csv", "build_id"), content)), className="mb-3"),
        dbc.Row(dbc.Col(_table_panel(
            "partner-assets", "Its assets",
            "Assets processed for this partner in the period by type, format and density.",
            PARTNER.ASSET_NOTE, PARTNER.ASSET_CSV,
            _grid(PARTNER.ASSET_GRID, ASSET_COLUMNS, grids.get(PARTNER.ASSET_GRID, []), 260, "partner-assets.csv",
                  None), content)), className="mb-3"),
    ])


def missing(fleet_href: str = "/partners"):
    """What /partners/<id> shows for a partner the viewer may not see or that does not exist: the
    same answer for both, and the id is not echoed (the page reveals nothing of partners it does
    not show)."""
    return html.Div([
        dcc.Store(id=PARTNER.ID, data=None),
        html.Div(html.A([html.I(className="bi bi-arrow-left me-1"), "All partners"], href=fleet_href,
                        className="small", id="partner-fleet-link"), className="mt-2"),
        html.Div(empty_state("No such partner among the partners you may see",
                             "Pick one from the partners table."), className="mt-4", **{"data-panel": "partner-missing"}),
    ])
