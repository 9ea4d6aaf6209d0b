"""Partners page callbacks: filters → the partner services (through the query cache) → figures,
grid rows and sentences. Every read is scoped: a partner manager sees their partners only."""
from __future__ import annotations

from datetime import datetime, timezone

from dash import Input, Output, State, dcc, html

from callbacks.filters import filters_scope
from callbacks.tables import bind_csv_export, export_href
from callbacks.operations import GRAPH_CONFIG
from layouts import partner_figures as figs
from layouts import partners as partners_layout
from layouts.figures import format_duration
from layouts.ids import PARTNERS, SHELL
from layouts.panels import empty_state, error_state
from services.queries.reader import TooMuchWork
from services.store import StoreUnavailable

__all__ = ["register", "PartnersPanels", "projection_text"]

NO_PARTNERS = "No partners to show"


def _when(ts: float | None) -> str:
    return "—" if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def projection_text(row: dict) -> str:
    """The quota projection in words (the table's and the chart's)."""
    if not row.get("monthly_build_quota"):
        return "no quota"
    at = row.get("quota_projected_exhaustion_at")
    if row.get("quota_exhausted"):
        return f"exhausted {_when(at)}"
    if at is not None:
        return f"{_when(at)} at {row['quota_pace_per_day']:,.0f}/day"
    return "not this month"


def _rows(table: list[dict]) -> list[dict]:
    return [{**r, "projection_text": projection_text(r), "last_build_text": _when(r["last_build_at"]),
             "duration_avg_text": format_duration(r["duration_avg_s"]) if r["duration_avg_s"] is not None else "—",
             "reasons_text": "; ".join(r["churn_reasons"])} for r in table]


class PartnersPanels:
    """What every /partners panel shows for a filter set and a theme (first view and redraws)."""

    def __init__(self, services):
        self.boards = services.dashboards
        self.clock = services.clock
        self.partner_view = None  # the one-partner view (callbacks/partner_view.py), set by callbacks.register

    def scope(self, filters):
        return filters_scope(filters, self.clock())

    def panels(self, filters, theme: str) -> tuple[dict, list[dict], list[dict]]:
        """(panel bodies by id, churn-risk rows, table rows)."""
        ids = (PARTNERS.SUMMARY, PARTNERS.TIER_MIX, PARTNERS.CHANGES, PARTNERS.QUOTA, PARTNERS.USAGE,
               PARTNERS.RISK_NOTE)
        scope = self.scope(filters)
        try:
            rows = _rows(self.boards.partner_table(scope))
            subscriptions = self.boards.partner_subscriptions(scope)
            usage = self.boards.partner_usage(scope)
        except StoreUnavailable:
            return {i: error_state() for i in ids}, [], []
        except TooMuchWork as exc:
            return {i: error_state(str(exc)) for i in ids}, [], []
        if not rows:
            empty = empty_state(NO_PARTNERS, "No partner record has been ingested for the partners you may see.")
            return {i: empty for i in ids}, [], []
        risky = [r for r in rows if r["status"] == "active" and r["churn_level"] != "low"]
        risky.sort(key=lambda r: (-r["churn_score"], r["partner_id"]))
        quota_rows = sorted((r for r in rows if r["monthly_build_quota"] and r["status"] == "active"),
                            key=lambda r: -(r["quota_used_ratio"] or 0))
        content = {
            PARTNERS.SUMMARY: self.summary(rows, risky),
            PARTNERS.TIER_MIX: dcc.Graph(figure=figs.tier_mix_figure(subscriptions, theme), config=GRAPH_CONFIG),
            PARTNERS.CHANGES: dcc.Graph(figure=figs.changes_figure(subscriptions["months"], theme), config=GRAPH_CONFIG)
            if subscriptions["months"] else empty_state("No month in this period"),
            PARTNERS.QUOTA: dcc.Graph(figure=figs.quota_figure(quota_rows, theme), config=GRAPH_CONFIG)
            if quota_rows else empty_state("No active partner with a quota"),
            PARTNERS.USAGE: dcc.Graph(figure=figs.usage_heatmap_figure(usage, theme), config=GRAPH_CONFIG)
            if any(v for row in usage for v in row) else empty_state("No builds in this period"),
            PARTNERS.RISK_NOTE: None if risky else empty_state(
                "No active partner at risk", "Every active partner builds at its usual pace and rhythm."),
        }
        return content, risky, rows

    @staticmethod
    def summary(rows: list[dict], risky: list[dict]):
        by_status: dict[str, int] = {}
        for r in rows:
            by_status[r["status"]] = by_status.get(r["status"], 0) + 1
        status_text = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items(), key=lambda kv: -kv[1]))
        high = [r for r in risky if r["churn_level"] == "high"]
        exhausted = [r["partner_id"] for r in rows if r["quota_exhausted"] and r["status"] == "active"]
        running_out = [r["partner_id"] for r in rows if r["status"] == "active" and not r["quota_exhausted"]
                       and r["quota_projected_exhaustion_at"] is not None]
        lines = [("partners", f"{len(rows)} partners: {status_text}.")]
        if risky:
            top = "; ".join(f"{r['partner_id']} ({r['churn_reasons'][0]})" for r in (high or risky)[:3])
            lines.append(("churn", f"{len(high)} at high and {len(risky) - len(high)} at medium churn risk — {top}."))
        else:
            lines.append(("churn", "No active partner at risk of churning."))
        if exhausted or running_out:
            parts = []
            if exhausted:
                parts.append(f"quota exhausted: {', '.join(exhausted[:5])}{' …' if len(exhausted) > 5 else ''}")
            if running_out:
                parts.append(f"runs out this month: {', '.join(running_out[:5])}{' …' if len(running_out) > 5 else ''}")
            lines.append(("quota", "; ".join(parts).capitalize() + "."))
        else:
            lines.append(("quota", "No active partner runs out of quota this month at its current pace."))
        return html.Ul([html.Li(text, className="mb-1", **{"data-finding": key}) for key, text in lines],
                       className="mb-0")

    def export_href(self, filters) -> str:
        return export_href("partners", self.scope(filters))

    def page(self, filters: dict, theme: str):
        """The fleet view, or the one-partner view when exactly one partner is selected."""
        selected = (filters or {}).get("partners") or []
        if len(selected) == 1 and self.partner_view is not None:
            return self.partner_view.page(filters, theme, selected[0])
        content, risky, rows = self.panels(filters, theme)
        return partners_layout.layout(content=content, risk_rows=risky, table_rows=rows,
                                      export_href=self.export_href(filters))


def register(app, services) -> PartnersPanels:
    """Bind the /partners callbacks (refresh tick, theme, CSV buttons)."""
    view = PartnersPanels(services)
    bodies = (PARTNERS.SUMMARY, PARTNERS.TIER_MIX, PARTNERS.CHANGES, PARTNERS.QUOTA, PARTNERS.USAGE,
              PARTNERS.RISK_NOTE)

    @app.callback(*[Output(b, "children") for b in bodies], Output(PARTNERS.RISK_GRID, "rowData"),
                  Output(PARTNERS.TABLE, "rowData"),
                  Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data"),
                  State(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def refresh(_n, theme, filters):
        content, risky, rows = view.panels(filters, theme)
        return (*[content[b] for b in bodies], risky, rows)

    bind_csv_export(app, PARTNERS.RISK_CSV, PARTNERS.RISK_GRID)
    bind_csv_export(app, PARTNERS.TABLE_CSV, PARTNERS.TABLE)

    return view
