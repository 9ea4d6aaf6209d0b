"""Reusable panel container and the states every panel can be in."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

__all__ = ["panel", "csv_button", "table_tools", "empty_state", "error_state", "kpi_tile"]


def panel(data_panel: str, title: str, explanation: str, body_id: str, *, body=None, content: dict | None = None,
          min_height: int = 200):
    """A titled card with a one-line explanation and a loading wrapper around its body. The body shows
    `body`, else `content[body_id]` (a page drawn with its data), else nothing until a callback fills it."""
    if body is None and content:
        body = content.get(body_id)
    return html.Div(dbc.Card([
        dbc.CardHeader([html.Div(title, className="panel-title"),
                        html.Div(explanation, className="panel-explanation text-body-secondary small")]),
        dbc.CardBody(dcc.Loading(html.Div(body, id=body_id, style={"minHeight": f"{min_height}px"}),
                                 type="dot", delay_show=300)),
    ], className="panel h-100"), className="h-100", **{"data-panel": data_panel})


def csv_button(button_id: str):
    """The small "CSV" button above a table (its callback: callbacks.tables.bind_csv_export)."""
    return dbc.Button([html.I(className="bi bi-download me-1"), "CSV"], id=button_id, size="sm", color="secondary",
                      outline=True)


def table_tools(csv_id: str, export_id: str, export_href: str):
    """Above a table: the "Full export" link (the server-side dataset) and the "CSV" button (what the
    table shows)."""
    return html.Div([html.A([html.I(className="bi bi-box-arrow-down me-1"), "Full export"], id=export_id,
                            href=export_href, target="_blank", className="btn btn-sm btn-outline-secondary me-2"),
                     csv_button(csv_id)], className="text-end mb-2")


def empty_state(message: str, detail: str | None = None):
    """What a panel shows when there is nothing to show for the filters."""
    return html.Div([html.I(className="bi bi-inbox fs-3 d-block mb-1"), html.Div(message),
                     html.Div(detail, className="small") if detail else None],
                    className="panel-empty text-body-secondary text-center py-4")


def error_state(message: str = "The store is unreachable; this panel will refresh when it is back."):
    """What a panel shows when its data cannot be read."""
    return html.Div([html.I(className="bi bi-exclamation-triangle fs-3 d-block mb-1"), html.Div(message)],
                    className="panel-error text-danger text-center py-4")


def kpi_tile(label: str, value: str, kpi: str, detail: str | None = None, tone: str | None = None,
             value_id: str | None = None):
    """One KPI: label, big value, optional detail line (e.g. change against the previous period)."""
    extra = {"id": value_id} if value_id else {}
    return html.Div([
        html.Div(label, className="kpi-label text-body-secondary small"),
        html.Div(value, className="kpi-value fs-4 fw-semibold", **{"data-kpi": kpi}, **extra),
        html.Div(detail, className="kpi-detail small " + (f"text-{tone}-emphasis" if tone else "text-body-secondary"))
        if detail else None,
    ], className="kpi-tile")
