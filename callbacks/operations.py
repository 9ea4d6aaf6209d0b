"""Operations page callbacks: filters → one service call per panel group → figures and rows."""
from __future__ import annotations

import logging

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from callbacks.tables import bind_csv_export
from callbacks.filters import filters_scope
from layouts import figures
from layouts import operations as operations_layout
from layouts.capacity_figures import format_availability
from layouts.ids import OPS, SHELL
from layouts.panels import empty_state, error_state, kpi_tile
from services.queries.promql import PrometheusUnavailable, display_url
from services.store import StoreUnavailable

log = logging.getLogger(__name__)

__all__ = ["register", "OperationsPanels", "kpi_tiles", "uptime_detail", "system_gauge", "graph", "GRAPH_CONFIG"]

# Dashboards are filtered by the global bar, not zoomed per chart: no mode bar over the panels.
GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}
NO_BUILDS = "No builds in this period"


def uptime_detail(availability: dict | None) -> str:
    """The line under an uptime KPI: how many of the period's /readyz probes failed."""
    if not availability or availability.get("availability") is None:
        return "no probes in the period"
    total = availability["probes_up"] + availability["probes_down"]
    return f"{availability['probes_down']:,} of {total:,} probes down"


def kpi_tiles(summary: dict, availability: dict | None = None) -> list:
    """The overview row from a summary and the period's probe record (plain function, unit-tested)."""
    rate = summary["success_rate"]
    tiles = [
        ("Builds", f"{summary['builds_total']:,}", "builds_total",
         f"{summary['builds_failed']:,} failed · {summary['builds_cancelled']:,} cancelled"),
        ("Success rate", "—" if rate is None else f"{rate * 100:.1f} %", "success_rate", "of completed builds"),
        ("Average build time", figures.format_duration(summary["duration_avg_s"]), "duration_avg_s",
         f"p95 {figures.format_duration(summary['duration_p95_s'])}"),
        ("Active builds", f"{summary['active_builds']:,}", "active_builds", "running now · live"),
        ("Active partners", f"{summary['active_partners']:,}", "active_partners", "with a finished build"),
        ("Uptime", format_availability((availability or {}).get("availability")), "uptime",
         uptime_detail(availability)),
    ]
    return dbc.Row([dbc.Col(kpi_tile(label, value, kpi, detail,
                                     value_id=OPS.ACTIVE_BUILDS if kpi == "active_builds" else None), xs=6, md=4, xl=2)
                    for label, value, kpi, detail in tiles], className="g-3")


def system_gauge(summary: dict, latest: dict, measure: str, theme: str):
    """One host panel: period-average gauge, and now / peak / size below (plain function)."""
    if not summary["samples"]:
        return empty_state("No samples yet in this period",
                           "The collector writes one every 5 s while `serve` (or `lulupay-analytics collector`) runs.")
    avg, peak = summary[f"{measure}_percent_avg"], summary[f"{measure}_percent_max"]
    now = latest.get(f"{measure}_percent") if measure != "cpu" else latest.get("cpu_percent")
    parts = [f"now {now:.0f} %" if now is not None else "now —", f"peak {peak:.0f} %"]
    if measure == "memory" and latest:
        parts.append(f"{figures.format_bytes(latest['memory_used_bytes'])} of {figures.format_bytes(latest['memory_total_bytes'])}")
    if measure == "disk" and latest:
        parts.append(f"{figures.format_bytes(latest['disk_free_bytes'])} free of {figures.format_bytes(latest['disk_total_bytes'])}")
    parts.append(f"{summary['samples']:,} samples")
    return [dcc.Graph(figure=figures.usage_gauge(avg, theme), config=GRAPH_CONFIG),
            html.Div(" · ".join(parts), className="small text-body-secondary text-center", **{"data-detail": measure})]


class OperationsPanels:
    """What every Operations panel shows for a filter set and a theme. The page layout draws the
    first view with it (the panels arrive with the page: no callback round before anything shows);
    the refresh and theme callbacks redraw with it."""

    def __init__(self, services):
        self.boards = services.dashboards
        self.clock = services.clock
        self.target_s = services.settings.build_time_target_s
        self.prometheus_url = display_url(services.settings.prometheus_url)

    def scope(self, filters):
        return filters_scope(filters, self.clock())

    def overview(self, filters, theme):
        """(KPI tiles, success-rate gauge, build-time gauge)."""
        scope = self.scope(filters)
        try:
            summary = self.boards.summary(scope)
            availability = self.boards.availability(scope)
        except StoreUnavailable:
            return error_state(), error_state(), error_state()
        if summary["builds_total"] == 0:
            empty = empty_state(NO_BUILDS)
            return kpi_tiles(summary, availability), empty, empty
        return (kpi_tiles(summary, availability), graph(figures.success_rate_gauge(summary["success_rate"], theme)),
                graph(figures.build_time_gauge(summary["duration_avg_s"], self.target_s, theme)))

    def over_time(self, filters, theme):
        """(build rate chart, duration heatmap)."""
        scope = self.scope(filters)
        try:
            rate = self.boards.build_rate(scope)
            heat = self.boards.duration_heatmap(scope)
        except StoreUnavailable:
            return error_state(), error_state()
        if not any(r["success"] or r["failed"] or r["cancelled"] for r in rate["rows"]):
            return empty_state(NO_BUILDS), empty_state(NO_BUILDS)
        return graph(figures.build_rate_figure(rate, theme)), graph(figures.duration_heatmap_figure(heat, theme))

    def stages(self, filters, theme):
        scope = self.scope(filters)
        try:
            rows = self.boards.stage_durations(scope)
        except StoreUnavailable:
            return error_state()
        if not any(r["runs"] for r in rows):
            return empty_state("No build stages in this period")
        return graph(figures.stage_durations_figure(rows, theme))

    def assets(self, filters):
        """(grid rows, the message above the grid: empty or error state, else None)."""
        scope = self.scope(filters)
        try:
            rows = self.boards.asset_table(scope)
        except StoreUnavailable:
            return [], error_state()
        return rows, (None if rows else empty_state("No assets processed in this period"))

    def system(self, filters, theme):
        """(CPU, memory, disk) panels of the collector's host — not per partner."""
        try:
            summary, latest = self.boards.system(self.scope(filters))
        except StoreUnavailable:
            return error_state(), error_state(), error_state()
        return tuple(system_gauge(summary, latest, measure, theme) for measure in ("cpu", "memory", "disk"))

    def http(self, filters, theme):
        """(latency and request rate, error share) — requests are not per partner."""
        try:
            rows = self.boards.http(self.scope(filters))
        except PrometheusUnavailable as exc:
            log.warning("Prometheus query failed: %s", exc)
            message = f"Prometheus ({self.prometheus_url}) could not be queried; see the server log"
            return error_state(message), error_state(message)
        except StoreUnavailable:
            return error_state(), error_state()
        source = (f"Source: Prometheus at {self.prometheus_url} (every instance)"
                  if rows["source"] == "prometheus" else "Source: the app's own request rollups (every worker "
                                                         "and instance sharing this store)")
        if not any(r["requests_per_s"] for r in rows["rows"]):
            empty = empty_state("No HTTP requests recorded in this period", source)
            return empty, empty
        caption = html.Div(source, className="small text-body-secondary", **{"data-source": rows["source"]})
        return ([graph(figures.http_latency_figure(rows, theme)), caption],
                [graph(figures.http_errors_figure(rows, theme)), caption])

    def page(self, filters: dict, theme: str):
        """The whole page with every panel drawn. (The panel groups run one after the other: side
        by side on threads was measured no faster — the work is Python, under one GIL.)"""
        kpis, success, build_time = self.overview(filters, theme)
        rate, heatmap = self.over_time(filters, theme)
        rows, asset_message = self.assets(filters)
        cpu, memory, disk = self.system(filters, theme)
        latency, errors = self.http(filters, theme)
        return operations_layout.layout(content={
            OPS.KPIS: kpis, OPS.SUCCESS_GAUGE: success, OPS.BUILD_TIME_GAUGE: build_time, OPS.CPU: cpu,
            OPS.MEMORY: memory, OPS.DISK: disk, OPS.BUILD_RATE: rate, OPS.HEATMAP: heatmap,
            OPS.STAGES: self.stages(filters, theme), OPS.ASSETS: asset_message, OPS.HTTP_LATENCY: latency,
            OPS.HTTP_ERRORS: errors}, asset_rows=rows)


def graph(figure):
    return dcc.Graph(figure=figure, config=GRAPH_CONFIG)


def register(app, services) -> OperationsPanels:
    """Bind the Operations callbacks; returns the panels object the page layout draws with.

    The first view arrives with the page (OperationsPanels.page). A filter change goes through the
    URL, which makes Dash Pages draw the page again; so the callbacks here only redraw on the refresh
    tick and on a theme change, reading the filters as state (prevent_initial_call: never a second
    drawing of what the page brought)."""
    view = OperationsPanels(services)
    redraw = dict(inputs=[Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data")],
                  state=[State(SHELL.FILTERS, "data")], prevent_initial_call=True)

    @app.callback(Output(OPS.KPIS, "children"), Output(OPS.SUCCESS_GAUGE, "children"),
                  Output(OPS.BUILD_TIME_GAUGE, "children"), **redraw)
    def overview(_n, theme, filters):
        return view.overview(filters, theme)

    @app.callback(Output(OPS.BUILD_RATE, "children"), Output(OPS.HEATMAP, "children"), **redraw)
    def over_time(_n, theme, filters):
        return view.over_time(filters, theme)

    @app.callback(Output(OPS.STAGES, "children"), **redraw)
    def stages(_n, theme, filters):
        return view.stages(filters, theme)

    @app.callback(Output(OPS.ASSET_GRID, "rowData"), Output(OPS.ASSETS, "children"),
                  Input(SHELL.TICK, "n_intervals"), State(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def assets(_n, filters):
        return view.assets(filters)

    @app.callback(Output(OPS.CPU, "children"), Output(OPS.MEMORY, "children"), Output(OPS.DISK, "children"),
                  **redraw)
    def system(_n, theme, filters):
        return view.system(filters, theme)

    @app.callback(Output(OPS.HTTP_LATENCY, "children"), Output(OPS.HTTP_ERRORS, "children"), **redraw)
    def http(_n, theme, filters):
        return view.http(filters, theme)

    # Between refreshes, the live channel moves "active builds" (+1 started, −1 finished, in the
    # socket's partner filter, which is the page's).
    app.clientside_callback(
        "function(inbox, text) { return window.lulupayLive.activeBuilds(inbox, text); }",
        Output(OPS.ACTIVE_BUILDS, "children"), Input(SHELL.RT_INBOX, "data"), State(OPS.ACTIVE_BUILDS, "children"),
        prevent_initial_call=True,
    )

    bind_csv_export(app, OPS.ASSET_CSV, OPS.ASSET_GRID)
    return view
