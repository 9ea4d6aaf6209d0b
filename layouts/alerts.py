"""Alerts page: the active alerts (acknowledge, silence), the history of state changes, the rules in
force with their last evaluation, the silences and the notification deliveries."""
from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from layouts.alert_dialogs import ack_dialog, silence_dialog
from layouts.ids import ALERTS
from layouts.panels import panel, table_tools
from services.alerting.history import ALERT_STATES, SEVERITIES

__all__ = ["layout", "ACTIVE_COLUMNS", "HISTORY_COLUMNS", "SILENCE_COLUMNS", "DELIVERY_COLUMNS", "QUEUE_COLUMNS",
           "grid_style", "HISTORY_STATES", "HISTORY_SEVERITIES"]

HISTORY_STATES = ALERT_STATES
HISTORY_SEVERITIES = tuple(reversed(SEVERITIES))  # critical first
# A cell is redrawn when its value changes: the button and badge columns' values (`actions`,
# `flags`) change with what they draw (callbacks/alerts.py).
_FLEX = {"sortable": True, "resizable": True, "filter": False, "minWidth": 90, "flex": 1,
         "useValueFormatterForExport": False}  # the CSV holds the raw numbers
_NUM = {"function": "params.value == null ? '—' : d3.format(',.4~g')(params.value)"}
ACTIVE_COLUMNS = [
    {"field": "severity", "headerName": "Severity", "cellRenderer": "SeverityBadge", "minWidth": 90, "maxWidth": 110},
    {"field": "state", "headerName": "State", "minWidth": 80, "maxWidth": 100},
    {"field": "rule", "headerName": "Rule", "minWidth": 160, "flex": 2, "tooltipField": "rule"},
    {"field": "partner_id", "headerName": "Partner", "cellRenderer": "PartnerLink", "minWidth": 110, "flex": 1},
    {"field": "age_text", "headerName": "Age", "minWidth": 95, "maxWidth": 120,
     "headerTooltip": "Since the alert started (pending, or firing with for: 0s)"},
    {"field": "value_text", "headerName": "Value", "minWidth": 80, "maxWidth": 120},
    {"field": "threshold_text", "headerName": "Threshold", "minWidth": 85, "maxWidth": 120},
    {"field": "summary", "headerName": "Summary", "minWidth": 160, "flex": 3, "tooltipField": "summary"},
    {"field": "flags", "headerName": "", "cellRenderer": "AlertFlags", "minWidth": 130, "flex": 2, "sortable": False},
    {"field": "actions", "headerName": "", "cellRenderer": "AlertActions", "minWidth": 215, "maxWidth": 230,
     "sortable": False},
]
HISTORY_COLUMNS = [
    {"field": "ts_text", "headerName": "Time (UTC)", "minWidth": 150, "sort": "desc"},
    {"field": "rule", "headerName": "Rule", "minWidth": 170, "flex": 2, "tooltipField": "rule"},
    {"field": "state", "headerName": "State", "minWidth": 85},
    {"field": "severity", "headerName": "Severity", "minWidth": 90},
    {"field": "partner_id", "headerName": "Partner", "minWidth": 110, "flex": 1},
    {"field": "value", "headerName": "Value", "type": "numericColumn", "minWidth": 80, "valueFormatter": _NUM},
    {"field": "threshold", "headerName": "Threshold", "type": "numericColumn", "minWidth": 90, "valueFormatter": _NUM},
    {"field": "summary", "headerName": "Summary", "minWidth": 200, "flex": 3, "tooltipField": "summary"},
    {"field": "acknowledged", "headerName": "Acknowledged", "minWidth": 110, "cellDataType": False},
    {"field": "source", "headerName": "Source", "minWidth": 80},
]
SILENCE_COLUMNS = [
    {"field": "state", "headerName": "State", "cellRenderer": "SilenceState", "minWidth": 95, "maxWidth": 110},
    {"field": "matchers_text", "headerName": "Matchers", "minWidth": 220, "flex": 3, "tooltipField": "matchers_text"},
    {"field": "ends_text", "headerName": "Ends (UTC)", "minWidth": 160},
    {"field": "author", "headerName": "Author", "minWidth": 110, "flex": 1},
    {"field": "comment", "headerName": "Comment", "minWidth": 140, "flex": 2, "tooltipField": "comment"},
    {"field": "actions", "headerName": "", "cellRenderer": "SilenceActions", "minWidth": 95, "maxWidth": 110,
     "sortable": False},
]
DELIVERY_COLUMNS = [
    {"field": "ts_text", "headerName": "Time (UTC)", "minWidth": 165, "sort": "desc"},
    {"field": "receiver", "headerName": "Receiver", "minWidth": 110, "flex": 1},
    {"field": "status", "headerName": "Status", "minWidth": 90},
    {"field": "outcome", "headerName": "Outcome", "cellRenderer": "DeliveryOutcome", "minWidth": 105},
    {"field": "http_status", "headerName": "HTTP", "minWidth": 75},
    {"field": "error", "headerName": "Error", "minWidth": 160, "flex": 2, "tooltipField": "error"},
]
QUEUE_COLUMNS = [
    {"field": "due_text", "headerName": "Due (UTC)", "minWidth": 165, "sort": "asc"},
    {"field": "receiver", "headerName": "Receiver", "minWidth": 110, "flex": 1},
    {"field": "status", "headerName": "Status", "minWidth": 90},
    {"field": "attempts", "headerName": "Attempts", "type": "numericColumn", "minWidth": 95},
    {"field": "last_error", "headerName": "Last error", "minWidth": 160, "flex": 2, "tooltipField": "last_error"},
]
_PAGED = {"animateRows": False, "tooltipShowDelay": 300, "domLayout": "autoHeight", "pagination": True,
          "paginationPageSize": 20, "paginationPageSizeSelector": False, "suppressCellFocus": True,
          "suppressColumnVirtualisation": True}


def grid_style(rows: list | None) -> dict:
    """A grid is hidden while it has no row (the panel's empty state says why)."""
    return {} if rows else {"display": "none"}


def _grid(grid_id: str, columns: list[dict], rows: list[dict] | None, **extra):
    return dag.AgGrid(id=grid_id, columnDefs=columns, rowData=rows or [], getRowId="params.data.id",
                      defaultColDef=_FLEX, dashGridOptions=_PAGED, style=grid_style(rows), **extra)


def _history_filters(rule_options: list[dict]):
    def choice(cid, placeholder, options, width):
        return dbc.Col(dcc.Dropdown(id=cid, options=options, placeholder=placeholder, clearable=True), md=width)
    return dbc.Row([
        choice(ALERTS.HISTORY_STATE, "Every state", [{"label": s, "value": s} for s in HISTORY_STATES], 3),
        choice(ALERTS.HISTORY_SEVERITY, "Every severity", [{"label": s, "value": s} for s in HISTORY_SEVERITIES], 3),
        choice(ALERTS.HISTORY_RULE, "Every rule", rule_options, 6),
    ], className="g-2 mb-2")


def layout(content: dict | None = None, export_href: str = "", partner_manager: bool = False):
    """The page; `content` maps body ids (and `<grid>.rows`, `rule_options`) to what they show
    (callbacks/alerts.py draws it for the page's filters)."""
    c = content or {}
    return html.Div([
        html.H4("Alerts", className="mt-2"),
        html.Div(id=ALERTS.FEEDBACK),
        dcc.Store(id=ALERTS.RESULT),
        dcc.Store(id=ALERTS.ACK_TARGET),
        dbc.Row(dbc.Col(panel("alerts-active", "Active alerts",
                              "Pending and firing alerts you may see, critical first, then the oldest. Acknowledge: "
                              "you are on it (escalation stops); Silence: no notifications while it lasts.",
                              ALERTS.ACTIVE_GRID + "-body", min_height=120, body=[
                                  html.Div(c.get(ALERTS.ACTIVE_NOTE), id=ALERTS.ACTIVE_NOTE),
                                  _grid(ALERTS.ACTIVE_GRID, ACTIVE_COLUMNS, c.get("active.rows")),
                              ])), className="mb-3"),
        dbc.Row(dbc.Col(panel("alerts-history", "History",
                              "Every state change of the period (pending, firing, resolved, acknowledged as "
                              "recorded), newest first. CSV: these rows; Full export: the alerts dataset.",
                              ALERTS.HISTORY_GRID + "-body", min_height=160, body=[
                                  _history_filters(c.get("rule_options") or []),
                                  table_tools(ALERTS.HISTORY_CSV, ALERTS.EXPORT, export_href),
                                  html.Div(c.get(ALERTS.HISTORY_NOTE), id=ALERTS.HISTORY_NOTE),
                                  _grid(ALERTS.HISTORY_GRID, HISTORY_COLUMNS, c.get("history.rows"),
                                        csvExportParams={"fileName": "alert-history.csv"}),
                              ])), className="mb-3"),
        dbc.Row(dbc.Col(panel("alerts-rules", "Rules in force",
                              "The rules file's rules with the engine's last evaluation: the worst value"
                              + (" of your partners" if partner_manager else "") + " and whether it meets the "
                              "condition, and the pending and firing alerts of each.", ALERTS.RULES, min_height=120,
                              content=c)), className="mb-3"),
        dbc.Row(dbc.Col(panel("alerts-silences", "Silences",
                          "Silences suppress the notifications of the alerts all their matchers match, from start "
                          "to end; the alerts still go through their states.", ALERTS.SILENCES_GRID + "-body",
                          min_height=120, body=[
                              html.Div(dbc.Button([html.I(className="bi bi-bell-slash me-1"), "New silence"],
                                                  id=ALERTS.NEW_SILENCE, size="sm", color="secondary", outline=True),
                                       className="text-end mb-2"),
                              html.Div(c.get(ALERTS.SILENCES_NOTE), id=ALERTS.SILENCES_NOTE),
                              _grid(ALERTS.SILENCES_GRID, SILENCE_COLUMNS, c.get("silences.rows")),
                          ])), className="mb-3"),
        dbc.Row(dbc.Col(panel("alerts-delivery", "Notification delivery",
                          "Attempts of the period to send notifications to the receivers (newest first), and what "
                          "is queued (retried with back-off until delivered or too old).",
                          ALERTS.DELIVERY_GRID + "-body", min_height=120, body=[
                              html.Div(c.get(ALERTS.DELIVERY_NOTE), id=ALERTS.DELIVERY_NOTE),
                              _grid(ALERTS.DELIVERY_GRID, DELIVERY_COLUMNS, c.get("delivery.rows")),
                              html.Div("Queue", className="fw-semibold small mt-3 mb-1"),
                              html.Div(c.get(ALERTS.QUEUE_NOTE), id=ALERTS.QUEUE_NOTE),
                              _grid(ALERTS.QUEUE_GRID, QUEUE_COLUMNS, c.get("queue.rows")),
                          ])), className="mb-3"),
        ack_dialog(),
        silence_dialog(partner_manager),
    ])
