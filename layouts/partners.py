"""Partners page: the fleet's tier mix and subscription changes, churn risk, quota use with the
projected exhaustion, the hour-of-week usage and the partners table."""
from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import html

from layouts.ids import PARTNERS
from layouts.panels import csv_button, panel, table_tools

__all__ = ["layout", "RISK_COLUMNS", "TABLE_COLUMNS"]

_PCT = {"function": "params.value == null ? '—' : d3.format('.1%')(params.value)"}
_INT = {"function": "params.value == null ? '—' : d3.format(',')(params.value)"}
RISK_COLUMNS = [
    {"field": "partner_id", "headerName": "Partner", "minWidth": 160, "pinned": "left", "cellRenderer": "PartnerLink"},
    {"field": "churn_level", "headerName": "Risk", "maxWidth": 100},
    {"field": "churn_score", "headerName": "Score", "type": "numericColumn", "maxWidth": 100, "sort": "desc",
     "valueFormatter": {"function": "d3.format('.2f')(params.value)"}},
    {"field": "reasons_text", "headerName": "Why", "minWidth": 380, "flex": 3, "tooltipField": "reasons_text"},
    {"field": "tier", "headerName": "Tier", "maxWidth": 110},
    {"field": "builds_last_7d", "headerName": "Builds 7 d", "type": "numericColumn", "maxWidth": 120,
     "valueFormatter": _INT},
    {"field": "last_build_text", "headerName": "Last build (UTC)", "minWidth": 150},
]
TABLE_COLUMNS = [
    {"field": "partner_id", "headerName": "Partner", "minWidth": 160, "pinned": "left", "cellRenderer": "PartnerLink"},
    {"field": "name", "headerName": "Name", "minWidth": 170},
    {"field": "tier", "headerName": "Tier", "maxWidth": 110},
    {"field": "status", "headerName": "Status", "maxWidth": 110},
    {"field": "builds", "headerName": "Builds", "type": "numericColumn", "maxWidth": 110, "sort": "desc",
     "valueFormatter": _INT},
    {"field": "success_rate", "headerName": "Success", "type": "numericColumn", "maxWidth": 110, "valueFormatter": _PCT},
    {"field": "duration_avg_text", "headerName": "Avg build time", "minWidth": 130},
    {"field": "quota_used", "headerName": "Quota used", "type": "numericColumn", "maxWidth": 130,
     "valueFormatter": _INT},
    {"field": "monthly_build_quota", "headerName": "Quota", "type": "numericColumn", "maxWidth": 110,
     "valueFormatter": _INT},
    {"field": "quota_used_ratio", "headerName": "Used", "type": "numericColumn", "maxWidth": 100, "valueFormatter": _PCT},
    {"field": "projection_text", "headerName": "Quota runs out", "minWidth": 170},
    {"field": "churn_level", "headerName": "Churn risk", "maxWidth": 120},
    {"field": "last_build_text", "headerName": "Last build (UTC)", "minWidth": 150},
]
_EXPORT_KEYS = ["partner_id", "name", "tier", "status", "builds", "success_rate", "duration_avg_s", "quota_used",
                "monthly_build_quota", "quota_used_ratio", "projection_text", "churn_level", "churn_score",
                "last_build_text"]


def _grid(grid_id: str, columns: list[dict], rows: list[dict], height: int, file_name: str, keys=None):
    return dag.AgGrid(id=grid_id, columnDefs=columns, rowData=rows, getRowId="params.data.partner_id",
                      defaultColDef={"sortable": True, "filter": True, "resizable": True, "minWidth": 90},
                      csvExportParams={"fileName": file_name, **({"columnKeys": keys} if keys else {})},
                      dashGridOptions={"animateRows": False, "tooltipShowDelay": 300,
                                       "suppressColumnVirtualisation": True},
                      style={"height": f"{height}px"})


def layout(content: dict | None = None, risk_rows: list[dict] | None = None, table_rows: list[dict] | None = None,
           export_href: str = ""):
    """The page; `content` maps panel body ids to what they show (callbacks/partners.py)."""
    content = content or {}
    return html.Div([
        html.H4("Partners", className="mt-2"),
        dbc.Row(dbc.Col(panel("partners-summary", "The fleet in words",
                              "Partners by status, who is at risk of churning, whose quota runs out this month.",
                              PARTNERS.SUMMARY, min_height=90, content=content)), className="mb-3"),
        dbc.Row([
            dbc.Col(panel("tier-mix", "Tier mix over time",
                          "Active partners per subscription tier at the end of each month of the period (the last bar: "
                          "now).", PARTNERS.TIER_MIX, min_height=260, content=content), xl=6, className="mb-3"),
            dbc.Col(panel("subscription-changes", "Upgrades, downgrades and churn per month",
                          "Changes of tier and status in the partners' record history; hover for who (and the month's new "
                          "partners).",
                          PARTNERS.CHANGES, min_height=260, content=content), xl=6, className="mb-3"),
        ]),
        dbc.Row(dbc.Col(panel("churn-risk", "Churn risk",
                              "Partners whose builds dropped sharply, who stopped building against their own rhythm, "
                              "or who downgraded recently, highest score first (the score is explained on the docs "
                              "page docs/partners.md).", PARTNERS.RISK_GRID + "-body", min_height=160, body=[
                                  html.Div(content.get(PARTNERS.RISK_NOTE), id=PARTNERS.RISK_NOTE),
                                  html.Div(csv_button(PARTNERS.RISK_CSV), className="text-end mb-2"),
                                  _grid(PARTNERS.RISK_GRID, RISK_COLUMNS, risk_rows or [], 280, "churn-risk.csv"),
                              ])), className="mb-3"),
        dbc.Row([
            dbc.Col(panel("quota-use", "Quota used this month",
                          "Finished builds this UTC month against the monthly quota, nearest to it first; red: "
                          "exhausted, amber: runs out this month at the pace of the last 7 days.",
                          PARTNERS.QUOTA, min_height=260, content=content), xl=6, className="mb-3"),
            dbc.Col(panel("usage-heatmap", "When partners build",
                          "Mean finished builds per UTC hour of the week over the period (at most its last 35 days).",
                          PARTNERS.USAGE, min_height=260, content=content), xl=6, className="mb-3"),
        ]),
        dbc.Row(dbc.Col(panel("top-partners", "Partners",
                              "Every partner with the period's builds, success rate and average build time, this "
                              "month's quota use and projection, churn risk and last build. CSV: what the table shows; "
                              "Full export: the partners dataset.", PARTNERS.TABLE + "-body", min_height=200, body=[
                                  table_tools(PARTNERS.TABLE_CSV, PARTNERS.EXPORT, export_href),
                                  _grid(PARTNERS.TABLE, TABLE_COLUMNS, table_rows or [], 420, "partners.csv",
                                        _EXPORT_KEYS),
                              ])), className="mb-3"),
    ])
