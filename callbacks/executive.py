"""Executive page callbacks."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from callbacks.filters import filters_scope
from callbacks.operations import GRAPH_CONFIG
from layouts import executive as executive_layout
from layouts import figures
from layouts.figures import SUCCESS_AMBER, SUCCESS_RED, change, format_duration
from layouts.capacity_figures import format_availability
from layouts.ids import EXEC, SHELL
from layouts.panels import empty_state, error_state, kpi_tile
from services.alerting.overview import firing_counts
from services.store import StoreUnavailable

__all__ = ["register", "ExecutivePanels", "executive_tiles", "alerts_tile", "health_items", "PREVIOUS_MIN_COVERED"]

PREVIOUS_MIN_COVERED = 0.1  # a previous period recorded for less than this share of its length is not compared


def alerts_tile(counts: dict | None) -> tuple[str, str, str, tuple[str | None, str | None]]:
    """The "Active alerts" KPI spec: firing alerts the viewer sees now, with the critical ones."""
    if counts is None:
        return "Active alerts", "—", "active_alerts", ("store unreachable", None)
    critical, pending = counts["critical"], counts["pending"]
    detail = f"{critical:,} critical" if critical else "none critical"
    if pending:
        detail += f" · {pending:,} pending"
    return "Active alerts", f"{counts['firing']:,}", "active_alerts", (detail, "danger" if critical else None)


def executive_tiles(data: dict, currency: str, alerts: dict | None | bool = False) -> dbc.Row:
    """KPI tiles with their change against the previous period (plain function, unit-tested); with
    `alerts` (firing_counts, or None when unreadable) the Active alerts tile too."""
    cur, prev = data["current"], data["previous"]
    revenue_now, revenue_before = sum(cur["revenue"].values()), sum(prev["revenue"].values())
    length = data.get("previous_days")
    covered = data.get("previous_covered_days", length)
    compare = change
    if length and covered < PREVIOUS_MIN_COVERED * length:
        # (almost) nothing recorded before this period: a comparison would be a number made of nothing
        note = ("no previous data" if covered <= 0 else
                f"previous period recorded for {covered:.1f} of {length:.0f} days: not compared")
        compare = lambda *_args, **_kwargs: (note, None)  # noqa: E731
    specs = [
        ("Builds per day", f"{cur['builds_per_day']:,.0f}", "builds_per_day",
         compare(cur["builds_per_day"], prev["builds_per_day"])),
        ("Success rate", "—" if cur["success_rate"] is None else f"{cur['success_rate'] * 100:.1f} %", "success_rate",
         compare(cur["success_rate"], prev["success_rate"], as_points=True)),
        ("Average build time", format_duration(cur["duration_avg_s"]), "duration_avg_s",
         compare(cur["duration_avg_s"], prev["duration_avg_s"], higher_is_better=False)),
        ("Active partners", f"{cur['active_partners']:,}", "active_partners",
         compare(cur["active_partners"], prev["active_partners"])),
        ("Monthly revenue", f"{revenue_now:,.0f} {currency}", "revenue", compare(revenue_now, revenue_before)),
        ("Uptime", format_availability(cur.get("availability")), "uptime",
         compare(cur.get("availability"), prev.get("availability"), as_points=True, digits=3)),
    ]
    if alerts is not False:
        specs.append(alerts_tile(alerts))
    return dbc.Row([dbc.Col(kpi_tile(label, value, kpi, detail, tone), xs=6, md=4, xl=True)
                    for label, value, kpi, (detail, tone) in specs], className="g-3")


def health_items(summary: dict, target_s: float, store_ok: bool) -> list[tuple[str, str, str]]:
    """(label, status text, colour) lines of the health summary."""
    items = [("Store", "reachable" if store_ok else "unreachable", "success" if store_ok else "danger")]
    rate = summary["success_rate"]
    if rate is None:
        items.append(("Build success", "no completed builds", "secondary"))
    else:
        colour = "success" if rate >= SUCCESS_AMBER else "warning" if rate >= SUCCESS_RED else "danger"
        items.append(("Build success", f"{rate * 100:.1f} %", colour))
    avg = summary["duration_avg_s"]
    if avg is None:
        items.append(("Build time", "no completed builds", "secondary"))
    else:
        items.append(("Build time", f"{format_duration(avg)} (target {format_duration(target_s)})",
                      "success" if avg <= target_s else "danger"))
    items.append(("Active builds", f"{summary['active_builds']:,} running", "info"))
    return items


class ExecutivePanels:
    """What every Executive panel shows for a filter set and a theme: the page layout draws the first
    view with it, the refresh and theme callbacks redraw with it (see callbacks/operations.py)."""

    def __init__(self, services):
        self.boards = services.dashboards
        self.alert_store = services.alert_store
        self.clock = services.clock
        self.settings = services.settings

    def kpis(self, filters, theme):
        """(KPI tiles, revenue by tier, health summary)."""
        settings = self.settings
        scope = filters_scope(filters, self.clock())
        try:
            data = self.boards.executive(scope)
        except StoreUnavailable:
            return error_state(), error_state(), error_state()
        try:
            alerts = firing_counts(self.alert_store, scope)
        except StoreUnavailable:
            alerts = None
        revenue = dcc.Graph(figure=figures.revenue_figure(data["current"]["revenue"], data["previous"]["revenue"],
                                                          settings.currency, theme), config=GRAPH_CONFIG)
        health = html.Ul([html.Li([html.Span(label), dbc.Badge(text, color=colour, className="text-wrap")],
                                  className="d-flex justify-content-between align-items-center gap-2 mb-2",
                                  **{"data-health": label})
                          for label, text, colour in health_items(data["current"], settings.build_time_target_s,
                                                                   self.boards.store_ok())],
                         className="list-unstyled mb-0")
        return executive_tiles(data, settings.currency, alerts), revenue, health

    def trends(self, filters, theme):
        try:
            rows = self.boards.monthly_trend(filters_scope(filters, self.clock()))
        except StoreUnavailable:
            return error_state()
        if not any(r["builds"] for r in rows):
            return empty_state("No builds in the last 12 months")
        return dcc.Graph(figure=figures.monthly_trend_figure([r for r in rows if r["builds"]], theme),
                         config=GRAPH_CONFIG)

    def page(self, filters: dict, theme: str):
        """The whole page with every panel drawn."""
        tiles, revenue, health = self.kpis(filters, theme)
        return executive_layout.layout(content={EXEC.KPIS: tiles, EXEC.REVENUE: revenue, EXEC.HEALTH: health,
                                                EXEC.TRENDS: self.trends(filters, theme)})


def register(app, services) -> ExecutivePanels:
    """Bind the Executive callbacks (refresh tick and theme only; the first view comes with the
    page); returns the panels object the page layout draws with."""
    view = ExecutivePanels(services)
    redraw = dict(inputs=[Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data")],
                  state=[State(SHELL.FILTERS, "data")], prevent_initial_call=True)

    @app.callback(Output(EXEC.KPIS, "children"), Output(EXEC.REVENUE, "children"), Output(EXEC.HEALTH, "children"),
                  **redraw)
    def kpis(_n, theme, filters):
        return view.kpis(filters, theme)

    @app.callback(Output(EXEC.TRENDS, "children"), **redraw)
    def trends(_n, theme, filters):
        return view.trends(filters, theme)

    return view
