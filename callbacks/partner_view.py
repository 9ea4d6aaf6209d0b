"""The one-partner view's callbacks: the partner id (from the path, or the one partner selected in
the global filter) and the filters → the partner services (through the query cache) → figures, grid
rows and sentences. The fleet it is compared with is every partner the viewer may see; a partner
outside it is shown as missing, whether it exists or not."""
from __future__ import annotations

from datetime import datetime, timezone

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from callbacks.builds import signature_rows
from callbacks.filters import check_filters, filters_scope
from callbacks.operations import GRAPH_CONFIG
from callbacks.partners import projection_text
from callbacks.tables import bind_csv_export, export_href
from layouts import partner_figures as figs
from layouts import partner_view as view_layout
from layouts.figures import format_duration
from layouts.ids import PARTNER, SHELL
from layouts.panels import empty_state, error_state, kpi_tile
from layouts.shell import filters_query
from services.queries.reader import TooMuchWork
from services.scope import Scope
from services.store import StoreUnavailable
from services.vocabulary import is_partner_id

__all__ = ["register", "PartnerView", "FAILED_ROWS"]

FAILED_ROWS = 25  # the recent failed builds listed (each day holding one reads that day's batches)
BODIES = (PARTNER.HEADER, PARTNER.KPIS, PARTNER.COMPARISON, PARTNER.BURN_DOWN, PARTNER.USAGE,
          PARTNER.SIGNATURE_NOTE, PARTNER.FAILED_NOTE, PARTNER.ASSET_NOTE)
GRIDS = (PARTNER.SIGNATURE_GRID, PARTNER.FAILED_GRID, PARTNER.ASSET_GRID, PARTNER.HISTORY_GRID)


def _when(ts: float | None, seconds: bool = False) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f} %"


def _standing(entry: dict, fmt) -> str:
    if entry["median"] is None:
        return "no fleet figure"
    rank = f" · #{entry['rank']} of {entry['of']}" if entry["rank"] is not None else ""
    return f"fleet median {fmt(entry['median'])}{rank}"


def _tone(entry: dict, higher_is_better: bool) -> str | None:
    if entry["value"] is None or entry["median"] is None or entry["value"] == entry["median"]:
        return None
    better = entry["value"] > entry["median"] if higher_is_better else entry["value"] < entry["median"]
    return "success" if better else "danger"


def failed_rows(page: dict, failures: dict) -> list[dict]:
    """The recent failed builds' rows with each build's signature pattern (plain function)."""
    patterns = {s["signature"]: s["pattern"] for s in failures["signatures"]}
    return [{**r, "finished_at": _when(r["finished_at"], seconds=True),
             "pattern": patterns.get(r["error_signature"]) or r.get("error_message") or "—"} for r in page["rows"]]


def history_rows(history: list[dict]) -> list[dict]:
    """The subscription history's rows (plain function)."""
    return [{"when": _when(h["ts"]), "change": h["change"], "tier": h["tier"], "status": h["status"],
             "monthly_build_quota": h.get("monthly_build_quota"), "name": h.get("name")} for h in history]


class PartnerView:
    """What the one-partner view shows for a partner, a filter set and a theme."""

    def __init__(self, services):
        self.boards = services.dashboards
        self.clock = services.clock

    def scopes(self, filters, partner_id: str) -> tuple[Scope, Scope]:
        """(fleet, partner): every partner the viewer may see over the period, and the partner."""
        checked = check_filters(filters)
        fleet = filters_scope({**checked, "partners": []}, self.clock())
        return fleet, fleet.narrowed([partner_id])

    def panels(self, filters, theme: str, partner_id: str) -> tuple[dict, dict] | None:
        """(panel bodies by id, grid rows by id); None when the viewer may not see the partner."""
        if not is_partner_id(partner_id):
            return None
        fleet, one = self.scopes(filters, partner_id)
        if one.is_empty:
            return None
        try:
            profile = self.boards.partner_profile(fleet, partner_id)
            if profile is None:
                return None
            failures = self.boards.failures(one)
            failed = self.boards.recent_builds(one, filters={"status": "failed"}, limit=FAILED_ROWS)
            assets = self.boards.asset_table(one)
        except StoreUnavailable:
            return {b: error_state() for b in BODIES}, {g: [] for g in GRIDS}
        except TooMuchWork as exc:
            return {b: error_state(str(exc)) for b in BODIES}, {g: [] for g in GRIDS}
        row = profile["partner"]
        comparison = profile["comparison"]
        signatures = signature_rows(failures)
        content = {
            PARTNER.HEADER: self.header(row),
            PARTNER.KPIS: self.kpis(row, profile["standing"]),
            PARTNER.COMPARISON: dcc.Graph(figure=figs.comparison_figure(comparison, partner_id, theme),
                                          config=GRAPH_CONFIG)
            if any(comparison["builds"]) or any(q for q in comparison["fleet_builds"] if q and q[2])
            else empty_state("No builds in this period", "Neither this partner nor the fleet finished a build."),
            PARTNER.BURN_DOWN: dcc.Graph(figure=figs.burn_down_figure(profile["burn_down"], theme), config=GRAPH_CONFIG),
            PARTNER.USAGE: dcc.Graph(figure=figs.usage_heatmap_figure(profile["usage"], theme), config=GRAPH_CONFIG)
            if any(v for r in profile["usage"] for v in r) else empty_state("No builds in this period"),
            PARTNER.SIGNATURE_NOTE: None if signatures else empty_state(
                "No failed build with an error message in this period"),
            PARTNER.FAILED_NOTE: self.failed_note(failed),
            PARTNER.ASSET_NOTE: None if assets else empty_state("No asset processed for this partner in this period"),
        }
        grids = {PARTNER.SIGNATURE_GRID: signatures, PARTNER.FAILED_GRID: failed_rows(failed, failures),
                 PARTNER.ASSET_GRID: assets, PARTNER.HISTORY_GRID: history_rows(profile["history"])}
        return content, grids

    @staticmethod
    def failed_note(failed: dict):
        """Nothing above the failed builds, or why there are none or not all yet."""
        pending = failed.get("days_pending") or 0
        later = (f"{pending} day{'s' if pending != 1 else ''} of the period still being indexed: their builds "
                 "appear at a later refresh.") if pending else None
        if not failed["rows"]:
            return empty_state("No failed build in this period" if not pending else "No failed build indexed yet", later)
        return html.Div(later, className="small text-body-secondary mb-1") if later else None

    @staticmethod
    def header(row: dict):
        """The partner's record, churn risk and quota in words."""
        level_colour = {"high": "danger", "medium": "warning", "low": "success"}[row["churn_level"]]
        quota = (f"{row['quota_used']:,} of {row['monthly_build_quota']:,} builds this month — {projection_text(row)}"
                 if row["monthly_build_quota"] else f"{row['quota_used']:,} builds this month, no quota")
        return html.Div([
            html.Div([html.Span(row["name"], className="fs-5 fw-semibold me-2", **{"data-partner-name": row["partner_id"]}),
                      html.Span(row["partner_id"], className="text-body-secondary me-3"),
                      dbc.Badge(row["tier"], color="primary", className="me-1"),
                      dbc.Badge(row["status"], color="success" if row["status"] == "active" else "secondary",
                                className="me-1"),
                      html.Span(dbc.Badge(f"churn risk {row['churn_level']} ({row['churn_score']:.2f})",
                                          color=level_colour, className="me-1"), **{"data-churn": row["churn_level"]})]),
            html.Ul([html.Li(quota, **{"data-finding": "quota"}),
                     html.Li(f"Last build: {_when(row['last_build_at'])} UTC · {row['builds_last_7d']:,} builds in the "
                             f"last 7 days, {row['builds_previous_28d']:,} in the 28 days before",
                             **{"data-finding": "activity"}),
                     *[html.Li(reason, **{"data-finding": "churn"}) for reason in row["churn_reasons"]]],
                    className="mb-0 mt-2 small"),
        ])

    @staticmethod
    def kpis(row: dict, standing: dict):
        """Builds, success rate, average build time against the fleet; quota; churn risk."""
        b, s, d = standing["builds"], standing["success_rate"], standing["duration_avg_s"]
        return dbc.Row([
            dbc.Col(kpi_tile("Builds", f"{row['builds']:,}", "partner-builds", _standing(b, lambda v: f"{v:,.0f}"),
                             _tone(b, True)), xs=6, md=True),
            dbc.Col(kpi_tile("Success rate", _pct(row["success_rate"]), "partner-success-rate", _standing(s, _pct),
                             _tone(s, True)), xs=6, md=True),
            dbc.Col(kpi_tile("Average build time", format_duration(row["duration_avg_s"]), "partner-build-time",
                             _standing(d, format_duration), _tone(d, False)), xs=6, md=True),
            dbc.Col(kpi_tile("Quota used", _pct(row["quota_used_ratio"]) if row["monthly_build_quota"] else "no quota",
                             "partner-quota", projection_text(row),
                             "danger" if row["quota_exhausted"] else "warning"
                             if row["quota_projected_exhaustion_at"] else None), xs=6, md=True),
        ], className="g-3")

    def hrefs(self, filters, partner_id: str) -> tuple[str, str]:
        """(the fleet page with the same filters but no partner, the partner's builds export)."""
        checked = check_filters(filters)
        _, one = self.scopes(filters, partner_id)
        return "/partners" + filters_query({**checked, "partners": []}), export_href("builds", one)

    def page(self, filters: dict, theme: str, partner_id: str):
        """The whole view drawn (or the missing-partner view)."""
        drawn = self.panels(filters, theme, partner_id)
        if drawn is None:
            return view_layout.missing(self.hrefs(filters, "x")[0])
        content, grids = drawn
        fleet_href, builds_href = self.hrefs(filters, partner_id)
        return view_layout.layout(partner_id, content=content, grids=grids, fleet_href=fleet_href,
                                  export_href=builds_href)


def register(app, services) -> PartnerView:
    """Bind the one-partner view's callbacks (refresh tick, theme, CSV buttons)."""
    view = PartnerView(services)

    @app.callback(*[Output(b, "children") for b in BODIES], *[Output(g, "rowData") for g in GRIDS],
                  Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data"),
                  State(SHELL.FILTERS, "data"), State(PARTNER.ID, "data"), prevent_initial_call=True)
    def refresh(_n, theme, filters, partner_id):
        drawn = view.panels(filters, theme, partner_id) if partner_id else None
        if drawn is None:
            empty = empty_state("No such partner among the partners you may see")
            return (*[empty for _ in BODIES], *[[] for _ in GRIDS])
        content, grids = drawn
        return (*[content[b] for b in BODIES], *[grids[g] for g in GRIDS])

    for csv_id, grid_id in ((PARTNER.SIGNATURE_CSV, PARTNER.SIGNATURE_GRID), (PARTNER.FAILED_CSV, PARTNER.FAILED_GRID),
                            (PARTNER.ASSET_CSV, PARTNER.ASSET_GRID), (PARTNER.HISTORY_CSV, PARTNER.HISTORY_GRID)):
        bind_csv_export(app, csv_id, grid_id)
    return view
