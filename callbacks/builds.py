"""Build intelligence page callbacks: filters → one service call per panel group → figures and rows.

Forecasts are never fitted here: a panel shows the cached forecast, or the history alone with
"being computed" while the background forecaster works, and the page polls until it arrives."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from callbacks.filters import filters_scope
from callbacks.tables import bind_csv_export, export_href
from callbacks.operations import GRAPH_CONFIG
from layouts import builds as builds_layout
from layouts import series_figures as figs
from layouts.ids import BUILDS, SHELL
from layouts.panels import empty_state, error_state
from services.analytics.forecast import describe_backtest
from services.queries.intelligence import GRID_FILTERS
from services.queries.reader import TooMuchWork
from services.scope import Scope
from services.store import StoreUnavailable

log = logging.getLogger(__name__)

__all__ = ["register", "BuildsPanels", "step_for", "signature_rows", "grid_query", "GRID_MAX_ROWS"]

GRID_MAX_ROWS = 1000  # rows one grid request may ask for
NO_BUILDS = "No builds in this period"
_HOURLY_UP_TO_S = 3 * 86400  # periods up to 3 days are drawn (and forecast) per hour, longer ones per day


def step_for(scope: Scope) -> str:
    """'1h' for periods up to 3 days, else '1d'."""
    return "1h" if scope.end - scope.start <= _HOURLY_UP_TO_S else "1d"


def _when(ts: float | None) -> str:
    return "—" if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _when_s(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def signature_rows(failures: dict) -> list[dict]:
    """The signature grid's rows (plain function): the API's signatures with display columns."""
    rows = []
    for s in failures["signatures"]:
        rows.append({**{k: s[k] for k in ("signature", "pattern", "example", "count", "share", "first_seen",
                                          "last_seen", "new")},
                     "trend": figs.sparkline(s.get("trend")), "partner_count": len(s["partners"]),
                     "partner_list": ", ".join(s["partners"]), "stage_list": ", ".join(s["stages"]),
                     "category_list": ", ".join(s["categories"]), "first_seen_text": _when(s["first_seen"]),
                     "last_seen_text": _when(s["last_seen"]), "new_text": "new" if s["new"] else ""})
    return rows


def grid_query(request: dict | None) -> dict:
    """The builds service query of an AG Grid infinite-model request (checked by app/guard.py)."""
    request = request or {}
    start = int(request.get("startRow") or 0)
    end = min(int(request.get("endRow") or start + builds_layout.GRID_BLOCK_ROWS), start + GRID_MAX_ROWS)
    sort = ("finished_at", True)
    for item in request.get("sortModel") or []:
        if item.get("colId") in ("finished_at", "duration_s") and item.get("sort") in ("asc", "desc"):
            sort = (item["colId"], item["sort"] == "desc")
            break
    filters = {}
    for column, spec in (request.get("filterModel") or {}).items():
        value = spec.get("filter") if isinstance(spec, dict) else None
        if column not in GRID_FILTERS or not isinstance(value, str) or not value:
            continue
        filters[column] = value
    return {"filters": filters, "sort": sort, "start_row": start, "end_row": end}


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f} %"


class BuildsPanels:
    """What every /builds panel shows for a filter set and a theme (first view and redraws)."""

    def __init__(self, services):
        self.boards = services.dashboards
        self.clock = services.clock
        self.target_s = services.settings.build_time_target_s

    def scope(self, filters) -> Scope:
        return filters_scope(filters, self.clock())

    # -- trends with forecasts ---------------------------------------------------------------------
    def _forecast(self, scope: Scope, metric: str, step: str):
        """The cached forecast when the period reaches now (None otherwise or while computing) and
        whether one is still being computed."""
        step_s = 3600 if step == "1h" else 86400
        if scope.end < self.clock() - step_s:
            return None, False
        horizon = 48 if step == "1h" else 14
        result = self.boards.forecast(scope, metric, step, horizon)
        return result, result is None

    def trend(self, scope: Scope, metric: str, theme: str):
        """(panel body, forecast, still computing) of one metric's trend."""
        step = step_for(scope)
        step_s = 3600 if step == "1h" else 86400
        series = self.boards.series(scope, metric, step_s)
        history = [p for p in series["points"] if p[0] < self.clock() // step_s * step_s]  # complete steps
        if not any(v is not None for _, v in history):
            return empty_state(NO_BUILDS), None, False
        anomalies = self.boards.anomalies(scope, metric, step)["anomalies"]
        forecast, computing = self._forecast(scope, metric, step)
        if forecast is not None and forecast.get("points"):
            caption = forecast.get("summary") or describe_backtest(forecast["backtest"], step)
            model = forecast["model"].replace("_", " ")
            words = f"Forecast: {model}; {caption}."
        elif forecast is not None:
            words = forecast.get("note") or "No forecast for this series."
        elif computing:
            words = "The forecast is being computed in the background; it appears here when ready."
        else:
            words = "The forecast is shown when the period reaches now."
        body = [dcc.Graph(figure=figs.forecast_figure(history, forecast, anomalies, metric, theme, step_s),
                          config=GRAPH_CONFIG),
                html.Div(words, className="small text-body-secondary", **{"data-forecast": metric})]
        return body, forecast, computing

    def trends(self, filters, theme):
        """(success-rate panel, volume panel, poll disabled?)."""
        scope = self.scope(filters)
        try:
            success, _, c1 = self.trend(scope, "success_rate", theme)
            volume, _, c2 = self.trend(scope, "builds", theme)
        except StoreUnavailable:
            return error_state(), error_state(), True
        except TooMuchWork as exc:
            message = error_state(str(exc))
            return message, message, True
        return success, volume, not (c1 or c2)

    # -- percentiles, bottlenecks ----------------------------------------------------------------
    def percentiles(self, scope: Scope, theme: str):
        data = self.boards.duration_percentiles(scope)
        if not any(v is not None for v in data["types"]["all"]["p50"]):
            return empty_state("No completed builds in this period")
        return dcc.Graph(figure=figs.percentiles_figure(data, self.target_s, theme), config=GRAPH_CONFIG)

    def bottlenecks(self, scope: Scope, theme: str):
        """(bottleneck panel, stage trend panel, the sentence)."""
        data = self.boards.bottlenecks(scope)
        if not any(s["runs"] for s in data["stages"]):
            empty = empty_state("No build stages in this period")
            return empty, empty, None
        pending = data.get("days_pending") or 0
        note = html.Div(f"Stage timings of {pending} older day{'s' if pending > 1 else ''} are still being prepared "
                        "in the background; the slowest builds are looked for in the days ready.",
                        className="small text-body-secondary") if pending else None
        bars = [html.Div(data["sentence"], className="mb-1 fw-semibold small", **{"data-bottleneck": "sentence"}),
                note, dcc.Graph(figure=figs.bottleneck_figure(data["stages"], theme), config=GRAPH_CONFIG)]
        return bars, dcc.Graph(figure=figs.stage_trend_figure(data["trend"], theme), config=GRAPH_CONFIG), data["sentence"]

    def durations(self, filters, theme):
        """(percentiles, bottlenecks, stage trend, the summary's bottleneck line)."""
        scope = self.scope(filters)
        try:
            percentiles = self.percentiles(scope, theme)
            bars, trend, sentence = self.bottlenecks(scope, theme)
        except StoreUnavailable:
            return error_state(), error_state(), error_state(), None
        except TooMuchWork as exc:
            message = error_state(str(exc))
            return message, message, message, None
        line = html.Ul(html.Li(sentence, className="mb-1", **{"data-finding": "bottleneck"}),
                       className="mb-0") if sentence else None
        return percentiles, bars, trend, line

    # -- anomalies and signatures ------------------------------------------------------------------
    def anomaly_list(self, scope: Scope) -> list[dict]:
        """Every metric's anomalies of the period, strongest first."""
        step = step_for(scope)
        found = []
        for metric in ("success_rate", "builds", "duration_p95"):
            found += self.boards.anomalies(scope, metric, step)["anomalies"]
        return sorted(found, key=lambda a: -abs(a["score"]))

    def anomalies(self, scope: Scope):
        found = self.anomaly_list(scope)
        if not found:
            return empty_state("No anomalies in this period",
                               "Every step was inside its expected band (the weekly and daily rhythm included).")
        items = []
        for a in found[:12]:
            sentence = (a.get("cause") or {}).get("sentence") or ""
            badge = dbc.Badge(a["direction"], color="danger" if a["direction"] == "low" and a["metric"] == "success_rate"
                              or a["direction"] == "high" and a["metric"] == "duration_p95" else "warning",
                              className="me-2")
            items.append(html.Li([badge, html.Span(sentence)], className="mb-2 small",
                                 **{"data-anomaly": a["metric"], "data-ts": str(a["ts"])}))
        more = len(found) - len(items)
        return [html.Ul(items, className="list-unstyled mb-0"),
                html.Div(f"and {more} more" if more > 0 else None, className="small text-body-secondary")]

    def signatures(self, scope: Scope):
        """(grid rows, message above the grid, failures)."""
        failures = self.boards.failures(scope)
        rows = signature_rows(failures)
        return rows, (None if rows else empty_state("No failed builds with an error message in this period")), failures

    def summary(self, scope: Scope, success_forecast: dict | None, failures: dict,
                anomalies: list[dict], summary: dict):
        """The page's findings in words."""
        if summary["builds_total"] == 0:
            return empty_state(NO_BUILDS)
        lines = []
        text = f"Success rate {_pct(summary['success_rate'])} over {summary['builds_total']:,} builds"
        if success_forecast and success_forecast.get("points"):
            points = success_forecast["points"]
            mean = sum(p["mean"] for p in points) / len(points)
            text += (f"; the forecast for the next {len(points)} {'hours' if success_forecast['step_s'] == 3600 else 'days'}"
                     f" is {_pct(mean)} on average (95 % band {_pct(min(p['lower_95'] for p in points))}–"
                     f"{_pct(max(p['upper_95'] for p in points))}) — {success_forecast.get('summary') or ''}")
        lines.append(("success", text + "."))
        top = failures["signatures"][:3]
        if top:
            parts = [f"'{s['pattern'][:70]}{'…' if len(s['pattern']) > 70 else ''}' ({s['count']:,} builds, "
                     f"{round(100 * s['share'])} %{', new' if s['new'] else ''})" for s in top]
            lines.append(("failures", f"Top failure signatures of {failures['failed_with_message']:,} failures with a "
                                      f"message: " + "; ".join(parts) + "."))
        strong = [a for a in anomalies if a["metric"] == "success_rate"][:3] or anomalies[:2]
        if strong:
            lines.append(("anomalies", "Anomalies: " + " · ".join((a.get("cause") or {}).get("sentence", "")
                                                                  for a in strong) + "."))
        else:
            lines.append(("anomalies", "No anomalies: every step inside its expected band."))
        return html.Ul([html.Li(text, className="mb-1", **{"data-finding": key}) for key, text in lines],
                       className="mb-0")

    def findings(self, filters, theme):
        """(summary, anomalies, signature rows, signature message)."""
        scope = self.scope(filters)
        try:
            rows, message, failures = self.signatures(scope)
            found = self.anomaly_list(scope)
            forecast, _ = self._forecast(scope, "success_rate", step_for(scope))
            summary = self.boards.summary(scope)
        except StoreUnavailable:
            return error_state(), error_state(), [], error_state()
        except TooMuchWork as exc:
            return error_state(str(exc)), error_state(str(exc)), [], None
        return (self.summary(scope, forecast, failures, found, summary), self.anomalies(scope), rows,
                message)

    # -- builds table ------------------------------------------------------------------------------
    def grid(self, filters, request):
        scope = self.scope(filters)
        query = grid_query(request)
        try:
            page = self.boards.builds(scope, **query)
        except StoreUnavailable:
            return {"rowData": [], "rowCount": 0}
        except ValueError:  # a filter or sort the table does not offer (the guard lets only its columns by)
            return {"rowData": [], "rowCount": 0}
        rows = [{**r, "finished_at": _when_s(r["finished_at"])} for r in page["rows"]]
        return {"rowData": rows, "rowCount": page["total"]}

    def export_href(self, filters) -> str:
        return export_href("builds", self.scope(filters))

    def page(self, filters: dict, theme: str):
        """The whole page with every panel drawn (the builds table fills itself from the server)."""
        success, volume, done = self.trends(filters, theme)
        percentiles, bars, trend, bottleneck = self.durations(filters, theme)
        summary, anomalies, rows, message = self.findings(filters, theme)
        return builds_layout.layout(content={
            BUILDS.SUMMARY: summary, BUILDS.SUMMARY_BOTTLENECK: bottleneck, BUILDS.SUCCESS: success,
            BUILDS.VOLUME: volume,
            BUILDS.PERCENTILES: percentiles, BUILDS.BOTTLENECKS: bars, BUILDS.STAGE_TREND: trend,
            BUILDS.ANOMALIES: anomalies, BUILDS.SIGNATURES: message}, signature_rows=rows,
            export_href=self.export_href(filters), poll=not done)


def register(app, services) -> BuildsPanels:
    """Bind the /builds callbacks (refresh tick, theme, forecast poll, grid rows, signature click)."""
    view = BuildsPanels(services)

    @app.callback(Output(BUILDS.SUCCESS, "children"), Output(BUILDS.VOLUME, "children"),
                  Output(BUILDS.FORECAST_POLL, "disabled"),
                  Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data"), Input(BUILDS.FORECAST_POLL, "n_intervals"),
                  State(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def trends(_n, theme, _poll, filters):
        return view.trends(filters, theme)

    @app.callback(Output(BUILDS.PERCENTILES, "children"), Output(BUILDS.BOTTLENECKS, "children"),
                  Output(BUILDS.STAGE_TREND, "children"), Output(BUILDS.SUMMARY_BOTTLENECK, "children"),
                  Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data"),
                  State(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def durations(_n, theme, filters):
        return view.durations(filters, theme)

    @app.callback(Output(BUILDS.SUMMARY, "children"), Output(BUILDS.ANOMALIES, "children"),
                  Output(BUILDS.SIGNATURE_GRID, "rowData"), Output(BUILDS.SIGNATURES, "children"),
                  Input(SHELL.TICK, "n_intervals"), Input(SHELL.THEME, "data"), Input(BUILDS.FORECAST_POLL, "n_intervals"),
                  State(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def findings(_n, theme, _poll, filters):
        return view.findings(filters, theme)

    @app.callback(Output(BUILDS.GRID, "getRowsResponse"), Input(BUILDS.GRID, "getRowsRequest"),
                  State(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def grid_rows(request, filters):
        return view.grid(filters, request)

    @app.callback(Output(BUILDS.GRID, "filterModel"), Input(BUILDS.SIGNATURE_GRID, "cellClicked"),
                  State(BUILDS.GRID, "filterModel"), prevent_initial_call=True)
    def signature_click(cell, model):
        """A click on a signature filters the builds table to its builds."""
        signature = (cell or {}).get("rowId")
        if not signature:
            return dash.no_update
        return {**(model or {}), "error_signature": {"filterType": "text", "type": "equals", "filter": signature}}

    bind_csv_export(app, BUILDS.SIGNATURE_CSV, BUILDS.SIGNATURE_GRID)
    bind_csv_export(app, BUILDS.GRID_CSV, BUILDS.GRID)

    return view
