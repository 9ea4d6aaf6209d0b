"""Capacity page callbacks: filters → the capacity figures (through the query cache) → charts, words
and the service-level table. The host and SLA figures are the deployment's own (they name no
partner, like the Operations host panels); the ingest and build throughput are read with the page's
scope, so a partner manager sees their partners' throughput only."""
from __future__ import annotations

from datetime import datetime, timezone

from dash import Input, Output, State, dcc, html

from callbacks.filters import filters_scope
from callbacks.operations import GRAPH_CONFIG
from callbacks.tables import bind_csv_export, export_href
from layouts import capacity as capacity_layout
from layouts import capacity_figures as figs
from layouts.ids import CAPACITY, SHELL
from layouts.panels import empty_state, error_state
from services.queries.capacity import RESOURCES
from services.queries.reader import TooMuchWork
from services.store import StoreUnavailable

__all__ = ["register", "CapacityPanels", "BODIES", "sla_rows"]

BODIES = (CAPACITY.SUMMARY, CAPACITY.CPU, CAPACITY.MEMORY, CAPACITY.DISK, CAPACITY.NETWORK, CAPACITY.INGEST,
          CAPACITY.BUILDS, CAPACITY.AVAILABILITY, CAPACITY.LATENCY, CAPACITY.SLA_NOTE)
_RESOURCE_BODY = {"cpu": CAPACITY.CPU, "memory": CAPACITY.MEMORY, "disk": CAPACITY.DISK, "network": CAPACITY.NETWORK}
NO_SAMPLES = "No host samples in this period"
NO_PROBES = "No probes in this period"


def sla_rows(sla: dict) -> list[dict]:
    """The table's rows: every interval with a probe or a request."""
    return [{**b, "ts_text": datetime.fromtimestamp(b["ts"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M")}
            for b in sla["buckets"] if b["probes_up"] or b["probes_down"] or b["requests"]]


def _met(flag: bool | None) -> str:
    return "met" if flag else "missed"


def _now_text(data: dict, unit: str) -> str:
    values = [v for _, v in data["points"] if v is not None]
    if not values:
        return "no sample"
    fmt = (lambda v: f"{v:.0f} %") if unit == "%" else figs.format_rate
    return f"latest {fmt(values[-1])} · peak {fmt(max(values))}"


class CapacityPanels:
    """What every /capacity panel shows for a filter set and a theme (first view and redraws)."""

    def __init__(self, services):
        self.boards = services.dashboards
        self.clock = services.clock

    def scope(self, filters):
        """The page's scope: its range, and the partners the viewer may see (the throughput's)."""
        return filters_scope(filters, self.clock())

    def host(self, scope, theme) -> tuple[dict, dict | None]:
        """(bodies of the resource panels, the resources data or None when unreadable)."""
        try:
            data = self.boards.capacity_resources(scope)
        except StoreUnavailable:
            return {_RESOURCE_BODY[name]: error_state() for name, _, _ in RESOURCES}, None
        if not data["samples"]:
            empty = empty_state(NO_SAMPLES, "The collector writes one every 5 s while `serve` (or "
                                            "`lulupay-analytics collector`) runs.")
            return {_RESOURCE_BODY[name]: empty for name, _, _ in RESOURCES}, data
        bodies = {}
        for name, _, unit in RESOURCES:
            resource = data["resources"][name]
            words = figs.projection_text(resource["projection"], unit)
            bodies[_RESOURCE_BODY[name]] = [
                dcc.Graph(figure=figs.resource_figure(resource, unit, theme), config=GRAPH_CONFIG),
                html.Div([html.Span(words[:1].upper() + words[1:], className="fw-semibold",
                                    **{"data-projection": name}),
                          html.Span(f" · {_now_text(resource, unit)}")], className="small text-center")]
        return bodies, data

    def sla(self, scope, theme) -> tuple[dict, list[dict], dict | None]:
        """(availability, latency and table-note bodies, table rows, the SLA data or None)."""
        try:
            sla = self.boards.capacity_sla(scope)
        except StoreUnavailable:
            return {CAPACITY.AVAILABILITY: error_state(), CAPACITY.LATENCY: error_state(),
                    CAPACITY.SLA_NOTE: error_state()}, [], None
        bodies = {}
        if sla["availability"] is None:
            bodies[CAPACITY.AVAILABILITY] = empty_state(
                NO_PROBES, "The collector's leader probes /readyz every round while it runs.")
        else:
            met = _met(sla["availability"] >= sla["objective_availability"])
            line = (f"{figs.format_availability(sla['availability'])} over the period against "
                    f"{figs.format_objective(sla['objective_availability'])}: {met} · "
                    f"error budget {figs.budget_text(sla['budget'])}")
            bodies[CAPACITY.AVAILABILITY] = [
                dcc.Graph(figure=figs.availability_figure(sla, theme), config=GRAPH_CONFIG),
                html.Div(line, className="small text-center", **{"data-sla": "availability"})]
        if sla["p95_ms"] is None:
            bodies[CAPACITY.LATENCY] = empty_state("No HTTP requests recorded in this period")
        else:
            line = (f"p95 {sla['p95_ms']:,.1f} ms over the period against {sla['objective_p95_ms']:,.0f} ms: "
                    f"{_met(sla['latency_met'])} · {sla['latency_buckets_met']:,} of {sla['latency_buckets']:,} "
                    f"intervals within")
            bodies[CAPACITY.LATENCY] = [dcc.Graph(figure=figs.latency_figure(sla, theme), config=GRAPH_CONFIG),
                                        html.Div(line, className="small text-center", **{"data-sla": "latency"})]
        rows = sla_rows(sla)
        bodies[CAPACITY.SLA_NOTE] = None if rows else empty_state("No probes or requests in this period")
        return bodies, rows, sla

    def throughput(self, scope, theme) -> tuple[dict, dict | None, dict | None]:
        """(ingest and build bodies, ingest data, build data) for the scope's partners."""
        try:
            ingest = self.boards.ingest_throughput(scope)
            builds = self.boards.build_throughput(scope)
        except StoreUnavailable:
            return {CAPACITY.INGEST: error_state(), CAPACITY.BUILDS: error_state()}, None, None
        except TooMuchWork as exc:
            return {CAPACITY.INGEST: error_state(str(exc)), CAPACITY.BUILDS: error_state(str(exc))}, None, None
        return {CAPACITY.INGEST: dcc.Graph(figure=figs.ingest_figure(ingest, theme), config=GRAPH_CONFIG)
                if ingest["events"] else empty_state("No events accepted in this period"),
                CAPACITY.BUILDS: dcc.Graph(figure=figs.builds_figure(builds, theme), config=GRAPH_CONFIG)
                if builds["builds"] else empty_state("No builds finished in this period")}, ingest, builds

    @staticmethod
    def summary(resources: dict | None, sla: dict | None, ingest: dict | None, builds: dict | None):
        """The page in words, one line per finding (`data-finding`)."""
        lines = []
        if resources is None:
            lines.append(("resources", "Host figures: the store is unreachable."))
        elif not resources["samples"]:
            lines.append(("resources", f"{NO_SAMPLES}: no projection."))
        else:
            for name, label, unit in RESOURCES:
                words = figs.projection_text(resources["resources"][name]["projection"], unit)
                lines.append((name, f"{label}: {words}."))
        if sla is not None:
            if sla["availability"] is None:
                lines.append(("availability", f"Availability: {NO_PROBES.lower()}."))
            else:
                met = _met(sla["availability"] >= sla["objective_availability"])
                lines.append(("availability", f"Availability {figs.format_availability(sla['availability'])} "
                                              f"against the {figs.format_objective(sla['objective_availability'])} "
                                              f"objective ({met}); error budget {figs.budget_text(sla['budget'])}."))
            if sla["p95_ms"] is not None:
                lines.append(("latency", f"p95 latency {sla['p95_ms']:,.1f} ms against the "
                                         f"{sla['objective_p95_ms']:,.0f} ms objective ({_met(sla['latency_met'])})."))
        if ingest is not None and builds is not None:
            rates = [r["per_hour"] for r in builds["rows"]]
            peak = f", peak {max(rates):,.0f}/h" if builds["builds"] else ""
            lines.append(("throughput", f"{ingest['events']:,} events accepted and {builds['builds']:,} builds "
                                        f"finished in the period{peak}."))
        return html.Ul([html.Li(text, className="mb-1", **{"data-finding": key}) for key, text in lines],
                       className="mb-0")

    def panels(self, filters, theme: str) -> tuple[dict, list[dict]]:
        """(panel bodies by id, service-level table rows)."""
        scope = self.scope(filters)
        host, resources = self.host(scope, theme)
        sla_bodies, rows, sla = self.sla(scope, theme)
        flows, ingest, builds = self.throughput(scope, theme)
        content = {**host, **sla_bodies, **flows, CAPACITY.SUMMARY: self.summary(resources, sla, ingest, builds)}
        return content, rows

    def export_href(self, filters) -> str:
        """The Full export link: the `system` dataset of the page's period."""
        return export_href("system", self.scope(filters), partners=False)

    def page(self, filters: dict, theme: str):
        """The whole page with every panel drawn (the first view)."""
        content, rows = self.panels(filters, theme)
        return capacity_layout.layout(content=content, sla_rows=rows, export_href=self.export_href(filters))


def register(app, services) -> CapacityPanels:
    """Bind the /capacity callbacks (refresh tick, theme, the table's CSV button)."""
    view = CapacityPanels(services)

    @app.callback(*[Output(b, "children") for b in BODIES], Output(CAPACITY.SLA_GRID, "rowData"),
                  Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data"),
                  State(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def refresh(_n, theme, filters):
        content, rows = view.panels(filters, theme)
        return (*[content[b] for b in BODIES], rows)

    bind_csv_export(app, CAPACITY.SLA_CSV, CAPACITY.SLA_GRID)
    return view
