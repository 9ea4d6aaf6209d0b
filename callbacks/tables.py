"""What every table's CSV button does: the grid exports what it shows (AG Grid, in the browser)."""
from __future__ import annotations

from urllib.parse import urlencode

from dash import Input, Output

from services.scope import Scope

__all__ = ["bind_csv_export", "export_href"]


def export_href(dataset: str, scope: Scope, *, partners: bool = True) -> str:
    """The "Full export" link of a page: `dataset` as CSV over the scope's period (and partners,
    unless the dataset is not per partner)."""
    args = [("from", f"{scope.start:.0f}"), ("to", f"{scope.end:.0f}")]
    if partners:
        args += [("partner", p) for p in scope.partner_list() or []]
    return f"/api/v1/export/{dataset}.csv?" + urlencode(args)


def bind_csv_export(app, button_id: str, grid_id: str) -> None:
    """A click on `button_id` downloads `grid_id`'s rows as CSV (its csvExportParams)."""

    @app.callback(Output(grid_id, "exportDataAsCsv"), Input(button_id, "n_clicks"), prevent_initial_call=True)
    def export(_clicks):
        return True
