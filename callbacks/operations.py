"""Operations page callbacks: filters → one service call per panel group → figures and rows."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Input, Output, dcc

from callbacks.filters import QueryCache, resolve_scope
from layouts import figures
from layouts.ids import OPS, SHELL
from layouts.panels import empty_state, error_state, kpi_tile
from services.dashboard import DashboardData
from services.store import StoreUnavailable

__all__ = ["register", "kpi_tiles", "GRAPH_CONFIG"]

# Dashboards are filtered by the global bar, not zoomed per chart: no mode bar over the panels.
GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}
NO_BUILDS = "No builds in this period"


def kpi_tiles(summary: dict) -> list:
    """The overview row from a summary (plain function, unit-tested)."""
    rate = summary["success_rate"]
    tiles = [
        ("Builds", f"{summary['builds_total']:,}", "builds_total",
         f"{summary['builds_failed']:,} failed · {summary['builds_cancelled']:,} cancelled"),
        ("Success rate", "—" if rate is None else f"{rate * 100:.1f} %", "success_rate", "of completed builds"),
        ("Average build time", figures.format_duration(summary["duration_avg_s"]), "duration_avg_s",
         f"p95 {figures.format_duration(summary['duration_p95_s'])}"),
        ("Active builds", f"{summary['active_builds']:,}", "active_builds", "running now"),
        ("Active partners", f"{summary['active_partners']:,}", "active_partners", "with a finished build"),
        ("Uptime", "—", "uptime", "no collector samples yet"),
    ]
    return dbc.Row([dbc.Col(kpi_tile(label, value, kpi, detail), xs=6, md=4, xl=2) for label, value, kpi, detail in tiles],
                   className="g-3")


def register(app, services) -> None:
    """Bind the Operations callbacks."""
    data = DashboardData(services.queries)
    cache = QueryCache(services.store.client, services.store.keys.cache_prefix())
    target_s = services.settings.build_time_target_s

    def scope(filters):
        return resolve_scope(filters, services)

    def graph(figure):
        return dcc.Graph(figure=figure, config=GRAPH_CONFIG)

    @app.callback(Output(OPS.KPIS, "children"), Output(OPS.SUCCESS_GAUGE, "children"),
                  Output(OPS.BUILD_TIME_GAUGE, "children"),
                  Input(SHELL.FILTERS, "data"), Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data"))
    def overview(filters, _n, theme):
        start, end, partners, key = scope(filters)
        try:
            summary = cache.get_or_compute("summary", key, lambda: services.queries.summary(start, end, partners))
        except StoreUnavailable:
            return error_state(), error_state(), error_state()
        if summary["builds_total"] == 0:
            empty = empty_state(NO_BUILDS)
            return kpi_tiles(summary), empty, empty
        return (kpi_tiles(summary), graph(figures.success_rate_gauge(summary["success_rate"], theme)),
                graph(figures.build_time_gauge(summary["duration_avg_s"], target_s, theme)))

    @app.callback(Output(OPS.BUILD_RATE, "children"), Output(OPS.HEATMAP, "children"),
                  Input(SHELL.FILTERS, "data"), Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data"))
    def over_time(filters, _n, theme):
        start, end, partners, key = scope(filters)
        try:
            rate = cache.get_or_compute("build_rate", key, lambda: data.build_rate(start, end, partners))
            heat = cache.get_or_compute("heatmap", key, lambda: data.duration_heatmap(start, end, partners))
        except StoreUnavailable:
            return error_state(), error_state()
        if not any(r["success"] or r["failed"] or r["cancelled"] for r in rate["rows"]):
            return empty_state(NO_BUILDS), empty_state(NO_BUILDS)
        return graph(figures.build_rate_figure(rate, theme)), graph(figures.duration_heatmap_figure(heat, theme))

    @app.callback(Output(OPS.STAGES, "children"),
                  Input(SHELL.FILTERS, "data"), Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data"))
    def stages(filters, _n, theme):
        start, end, partners, key = scope(filters)
        try:
            rows = cache.get_or_compute("stages", key, lambda: data.stage_durations(start, end, partners))
        except StoreUnavailable:
            return error_state()
        if not any(r["runs"] for r in rows):
            return empty_state("No build stages in this period")
        return graph(figures.stage_durations_figure(rows, theme))

    @app.callback(Output(OPS.ASSET_GRID, "rowData"), Output(OPS.ASSETS, "children"),
                  Input(SHELL.FILTERS, "data"), Input(SHELL.TICK, "n_intervals"))
    def assets(filters, _n):
        start, end, partners, key = scope(filters)
        try:
            rows = cache.get_or_compute("assets", key, lambda: data.asset_table(start, end, partners))
        except StoreUnavailable:
            return [], error_state()
        return rows, (None if rows else empty_state("No assets processed in this period"))

    @app.callback(Output(OPS.ASSET_GRID, "exportDataAsCsv"), Input(OPS.ASSET_CSV, "n_clicks"), prevent_initial_call=True)
    def export_assets(_clicks):
        return True
