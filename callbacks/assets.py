"""Assets page callbacks: filters → the asset service (through the query cache) → figures, grid rows
and a sentence. Every read is scoped: a partner manager sees their partners only."""
from __future__ import annotations


from dash import Input, Output, State, dcc, html

from callbacks.filters import filters_scope
from callbacks.operations import GRAPH_CONFIG
from callbacks.tables import bind_csv_export, export_href
from layouts import asset_figures as figs
from layouts import assets as assets_layout
from layouts.figures import format_bytes
from layouts.ids import ASSETS, SHELL
from layouts.panels import empty_state, error_state
from services.analytics.assets import top_saver
from services.queries.reader import TooMuchWork
from services.store import StoreUnavailable

__all__ = ["register", "AssetsPanels", "summary_parts", "NO_ASSETS", "NO_TIMES"]

NO_ASSETS = "No assets processed in this period"
NO_TIMES = "No processing-time histogram in this period"
_NO_TIMES_DETAIL = ("Percentiles come from the asset-time rollups (kind `ah`), which exist for assets ingested "
                    "since they were introduced.")
BODIES = (ASSETS.SUMMARY, ASSETS.BY_TYPE, ASSETS.BY_FORMAT, ASSETS.BY_DENSITY, ASSETS.SAVED, ASSETS.FORMAT_TREND,
          ASSETS.FORMAT_MIX, ASSETS.TIMES, ASSETS.TIME_TREND, ASSETS.TABLE_NOTE)


def _pct(share: float) -> str:
    return f"{share * 100:.1f} %"


def summary_parts(data: dict) -> list[tuple[str, str]]:
    """(finding, sentence) pairs of the summary line, from a breakdown (plain function)."""
    total = data["total"]
    ratio = total["compression_ratio"]
    saved, original = format_bytes(total["saved_bytes"]), format_bytes(total["original_bytes"])
    if saved.split()[-1] == original.split()[-1]:  # "12.2 of 24.6 GiB", one unit named once
        saved = saved.rsplit(" ", 1)[0]
    # saved ÷ original is the compression ratio: "4.0 of 7.0 MiB saved (57.1 %)"
    noun = "asset" if total["assets"] == 1 else "assets"
    parts = [("total", f"{total['assets']:,} {noun}: {saved} of {original} saved"
                       + (f" ({_pct(ratio)})" if ratio is not None else "")
                       + f", mean quality {total['quality_avg']:.1f}.")]
    best = top_saver(data["by_format"])
    if best is not None:
        parts.append(("format", f"{best['value']} saves the most: {format_bytes(best['saved_bytes'])} "
                                f"({_pct(best['saved_share'])} of all saved)."))
    else:
        parts.append(("format", "No format saved any bytes."))
    timed = [r for r in data["times"] if r["asset_type"] != "all" and r["timed"]]
    if timed:
        slowest = max(timed, key=lambda r: r["p95_s"])
        parts.append(("time", f"Slowest: {slowest['asset_type']}, p95 {slowest['p95_s']:.2f} s."))
    return parts


class AssetsPanels:
    """What every /assets panel shows for a filter set and a theme (first view and redraws)."""

    def __init__(self, services):
        self.boards = services.dashboards
        self.clock = services.clock

    def scope(self, filters):
        """The reads' scope: the filters ∩ the partners the signed-in principal may see."""
        return filters_scope(filters, self.clock())

    def panels(self, filters, theme: str) -> tuple[dict, list[dict]]:
        """(panel bodies by id, table rows)."""
        scope = self.scope(filters)
        try:
            data = self.boards.asset_breakdown(scope)
            trends = self.boards.asset_trends(scope)
        except StoreUnavailable:
            return {i: error_state() for i in BODIES}, []
        except TooMuchWork as exc:
            return {i: error_state(str(exc)) for i in BODIES}, []
        if not data["total"]["assets"]:
            empty = empty_state(NO_ASSETS, "asset.processed events of the partners you may see show here.")
            return {i: empty for i in BODIES}, []

        def graph(figure):
            return dcc.Graph(figure=figure, config=GRAPH_CONFIG)

        content = {
            ASSETS.SUMMARY: self.summary(data),
            ASSETS.BY_TYPE: graph(figs.breakdown_figure(data["by_asset_type"], "asset type", theme)),
            ASSETS.BY_FORMAT: graph(figs.breakdown_figure(data["by_format"], "format", theme)),
            ASSETS.BY_DENSITY: graph(figs.breakdown_figure(data["by_density"], "density", theme)),
            ASSETS.SAVED: graph(figs.saved_figure(trends, theme)),
            ASSETS.FORMAT_TREND: graph(figs.format_trend_figure(trends, theme)),
            ASSETS.FORMAT_MIX: graph(figs.format_mix_figure(data["by_format"], theme)),
            ASSETS.TIMES: self.times(data, theme),
            ASSETS.TIME_TREND: graph(figs.time_trend_figure(trends, theme)) if trends["times"]
            else empty_state(NO_TIMES, _NO_TIMES_DETAIL),
            ASSETS.TABLE_NOTE: None,
        }
        return content, data["combinations"]

    @staticmethod
    def times(data: dict, theme: str):
        """The percentiles chart, with a note when the histograms hold only part of the assets."""
        rows = data["times"]
        every = next((r for r in rows if r["asset_type"] == "all"), None)
        if every is None or not every["timed"]:
            return empty_state(NO_TIMES, _NO_TIMES_DETAIL)
        out = [dcc.Graph(figure=figs.times_figure(rows, theme), config=GRAPH_CONFIG)]
        if every["timed"] < every["assets"]:
            out.append(html.Div(f"From the {every['timed']:,} of {every['assets']:,} assets ingested since the "
                                "processing-time histograms exist.", className="small text-body-secondary",
                                **{"data-note": "partial-times"}))
        return out

    @staticmethod
    def summary(data: dict):
        """The summary line: totals, the format that saves the most, the slowest asset type."""
        return html.P([html.Span(text + " ", **{"data-finding": key}) for key, text in summary_parts(data)],
                      className="mb-0", style={"fontSize": "0.95rem"})

    def export_href(self, filters) -> str:
        """The assets dataset export for the page's period and partners."""
        return export_href("assets", self.scope(filters))

    def page(self, filters: dict, theme: str):
        """The whole page, drawn for the filters and theme."""
        content, rows = self.panels(filters, theme)
        return assets_layout.layout(content=content, table_rows=rows, export_href=self.export_href(filters))


def register(app, services) -> AssetsPanels:
    """Bind the /assets callbacks (refresh tick, theme, the CSV button)."""
    view = AssetsPanels(services)

    @app.callback(*[Output(b, "children") for b in BODIES], Output(ASSETS.TABLE, "rowData"),
                  Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data"),
                  State(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def refresh(_n, theme, filters):
        content, rows = view.panels(filters, theme)
        return (*[content[b] for b in BODIES], rows)

    bind_csv_export(app, ASSETS.TABLE_CSV, ASSETS.TABLE)
    return view
