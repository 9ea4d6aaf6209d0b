"""Overview page: the headline figures of the last 24 hours (the full dashboards come next)."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

__all__ = ["layout", "IDS", "kpi_cards", "KPIS"]


class IDS:
    KPIS = "overview-kpis"
    INTERVAL = "overview-interval"
    UPDATED = "overview-updated"


# (summary field, label, formatter name)
KPIS = (
    ("builds_total", "Builds (24 h)", "int"),
    ("success_rate", "Success rate", "pct"),
    ("duration_avg_s", "Average build time", "dur"),
    ("duration_p95_s", "p95 build time", "dur"),
    ("active_builds", "Active builds", "int"),
    ("active_partners", "Active partners", "int"),
    ("assets_processed", "Assets processed", "int"),
    ("asset_compression_ratio_avg", "Asset compression", "pct"),
)


def _format(value, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value * 100:.1f} %"
    if kind == "dur":
        minutes, seconds = divmod(value, 60)
        return f"{int(minutes)} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"
    return f"{int(value):,}"


def kpi_cards(summary: dict) -> list:
    """KPI cards from a summary dict (plain function, unit-tested)."""
    return [
        dbc.Col(dbc.Card(dbc.CardBody([
            html.Div(label, className="text-muted small"),
            html.Div(_format(summary.get(field), kind), className="fs-3 fw-semibold", **{"data-kpi": field}),
        ])), xs=6, md=3, className="mb-3")
        for field, label, kind in KPIS
    ]


def layout(**_query) -> html.Div:
    """The page: a row of KPI cards refreshed every 30 s."""
    return html.Div([
        html.H4("Last 24 hours"),
        html.P("Figures from the store's rollups, same definitions as GET /api/v1/summary.",
               className="text-muted"),
        dbc.Row(id=IDS.KPIS),
        html.Div(id=IDS.UPDATED, className="text-muted small"),
        dcc.Interval(id=IDS.INTERVAL, interval=30_000),
    ])
