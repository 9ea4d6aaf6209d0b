"""What every table's CSV button does: the grid exports what it shows (AG Grid, in the browser)."""
from __future__ import annotations

from dash import Input, Output

__all__ = ["bind_csv_export"]


def bind_csv_export(app, button_id: str, grid_id: str) -> None:
    """A click on `button_id` downloads `grid_id`'s rows as CSV (its csvExportParams)."""

    @app.callback(Output(grid_id, "exportDataAsCsv"), Input(button_id, "n_clicks"), prevent_initial_call=True)
    def export(_clicks):
        return True
