"""Overview page callbacks: summary → KPI cards."""
from __future__ import annotations

from datetime import datetime, timezone

import dash_bootstrap_components as dbc
from dash import Input, Output

from layouts.overview import IDS, kpi_cards
from services.store import StoreUnavailable

__all__ = ["register"]


def register(app, services) -> None:
    """Bind the overview callbacks to `app`."""

    @app.callback(Output(IDS.KPIS, "children"), Output(IDS.UPDATED, "children"),
                  Input(IDS.INTERVAL, "n_intervals"))
    def refresh(_n):
        now = services.clock()
        stamp = datetime.fromtimestamp(now, tz=timezone.utc).strftime("updated %H:%M:%S UTC")
        try:
            summary = services.queries.summary(now - 86400, now, services.visible_partners())
        except StoreUnavailable:
            return [dbc.Alert("The store is unreachable; figures will return when it is back.", color="warning")], stamp
        return kpi_cards(summary), stamp
