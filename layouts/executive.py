"""Executive page: KPIs against the previous period, month-over-month trends, health summary."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from layouts.ids import EXEC
from layouts.panels import panel

__all__ = ["layout"]


def layout(content: dict | None = None):
    """The page. `content` maps a panel body's id to what it shows (callbacks/executive.py draws it
    for the page's filters); a body left out stays empty until its callback fills it."""
    content = content or {}
    return html.Div([
        html.H4("Executive overview", className="mt-2"),
        dbc.Row(dbc.Col(panel("exec-kpis", "Key figures",
                              "The selected period against the previous period of the same length.", EXEC.KPIS,
                              min_height=110, content=content)), className="mb-3"),
        dbc.Row([
            dbc.Col(panel("exec-trends", "Month over month", "Builds and success rate per calendar month (UTC), last 12 months.",
                          EXEC.TRENDS, min_height=280, content=content), xl=6, className="mb-3"),
            dbc.Col(panel("exec-revenue", "Revenue by tier",
                          "Monthly recurring revenue of active partners from the configured price list.",
                          EXEC.REVENUE, min_height=280, content=content), xl=3, md=6, className="mb-3"),
            dbc.Col(panel("exec-health", "Health", "Status of the service in the selected period.", EXEC.HEALTH,
                          min_height=280, content=content), xl=3, md=6, className="mb-3"),
        ]),
    ])
