"""Alerts page callbacks: filters → the alert engine's state (services/alerting/actions.py and
overview.py, scoped to the viewer and the page's partners) → the active alerts, history, rules,
silences and deliveries. The dialogs and what their buttons do: callbacks/alert_dialogs.py."""
from __future__ import annotations

from collections import deque

import dash_bootstrap_components as dbc
from dash import Input, Output, State, html

from callbacks import alert_dialogs
from callbacks.filters import filters_scope
from callbacks.tables import bind_csv_export, export_href
from layouts import alerts as alerts_layout
from layouts.alert_text import (SEVERITY_COLOURS, age_text, condition_text, matchers_text, rule_scope_text,
                                time_text, value_text)
from layouts.alerts import HISTORY_SEVERITIES, HISTORY_STATES, grid_style
from layouts.ids import ALERTS, SHELL
from layouts.panels import empty_state, error_state
from services.alerting.actions import alert_rows, visible_silences
from services.alerting.overview import delivery_view, rule_rows
from services.alerting.store import rule_key
from services.store import StoreUnavailable

__all__ = ["register", "AlertsPanels", "NO_ALERTS", "NO_RULES_FILE", "MAX_HISTORY_ROWS"]

NO_ALERTS = "No alert is firing"
NO_RULES_FILE = "No rules file loaded (LULUPAY_ALERT_RULES=off)"
MAX_HISTORY_ROWS = 2000  # newest first; the Full export has every one
_GRIDS = ("active", "silences", "delivery", "queue")
REFRESHED = (ALERTS.ACTIVE_NOTE, "active.rows", ALERTS.RULES, ALERTS.SILENCES_NOTE, "silences.rows",
             ALERTS.DELIVERY_NOTE, "delivery.rows", ALERTS.QUEUE_NOTE, "queue.rows")


class AlertsPanels:
    """What every /alerts panel shows for a filter set (first view and redraws)."""

    def __init__(self, services):
        self.services = services
        self.store = services.alert_store
        self.clock = services.clock
        self._queue = None

    def queue(self):
        """The delivery queue, built once (only read here: its HTTP session is never used)."""
        if self._queue is None:
            self._queue = self.services.delivery()
        return self._queue

    def metric_of(self) -> dict[str, str]:
        """rule key (name|severity) → metric, of the rules in force."""
        rules = self.services.alert_rules
        return {rule_key(r.name, r.severity): r.metric for r in (rules.rules if rules else ())}

    def active(self, scope, now) -> tuple:
        """(note, rows) of the active alerts."""
        try:
            rows = alert_rows(self.store, scope, state="active", now=now)
        except StoreUnavailable:
            return error_state(), []
        if not rows:
            rules = self.services.alert_rules
            detail = (f"{NO_RULES_FILE}: nothing is evaluated." if rules is None else
                      f"{len(rules.rules)} rules are evaluated every "
                      f"{getattr(self.services.settings, 'alert_interval_s', 15):g} s; nothing is pending or firing.")
            return empty_state(NO_ALERTS, detail), []
        metrics = self.metric_of()
        out = []
        for r in rows:
            metric = metrics.get(rule_key(r["rule"], r["labels"].get("severity", r["severity"])))
            out.append({**r, "age_text": age_text(r["started_at"], now), "value_text": value_text(metric, r["value"]),
                        "threshold_text": value_text(metric, r["threshold"]),
                        "flags": " ".join(f for f in ("acknowledged" if r["acknowledged"] else "",
                                                      "silenced" if r["silenced"] else "") if f),
                        "actions": "acknowledged" if r["acknowledged"] else "open"})
        return None, out

    def rules(self, scope, now):
        """The rules in force as a table, or why there is none."""
        try:
            view = rule_rows(self.services.alert_rules, self.store, scope)
        except StoreUnavailable:
            return error_state()
        if not view["enabled"]:
            return empty_state(NO_RULES_FILE, "Set LULUPAY_ALERT_RULES to a rules file (docs/alerting.md) to "
                                              "have the app raise alerts.")
        if not view["rules"]:
            return empty_state("The rules file has no rules")
        restricted = scope.partners is not None
        head = html.Thead(html.Tr([html.Th(t) for t in ("Rule", "Condition", "About", "Last evaluated", "Value",
                                                        "Alerts")]))
        body = [html.Tr([
            html.Td([html.Span(r["name"], className="me-1"),
                     dbc.Badge(r["severity"], color=SEVERITY_COLOURS.get(r["severity"], "secondary"))]),
            html.Td(condition_text(r), className="small"), html.Td(rule_scope_text(r), className="small"),
            html.Td(self._evaluated(r, now), className="small"), html.Td(self._value(r, restricted), className="small"),
            html.Td(self._counts(r["alerts"]), className="small"),
        ], **{"data-rule": rule_key(r["name"], r["severity"])}) for r in view["rules"]]
        return dbc.Table([head, html.Tbody(body)], size="sm", hover=True, responsive=True, className="mb-0")

    @staticmethod
    def _evaluated(rule, now):
        ev = rule["evaluation"]
        if ev is None or ev["evaluated_at"] is None:
            return "not evaluated yet"
        text = f"{age_text(ev['evaluated_at'], now)} ago"
        return [text, html.Div(ev["error"], className="text-danger")] if ev["error"] else text

    @staticmethod
    def _value(rule, restricted: bool):
        ev = rule["evaluation"]
        values = (ev or {}).get("values") or []
        if not values:
            deployment = not (rule["per_partner"] or rule["partner"])
            return "deployment-wide: not shown" if restricted and deployment else "—"
        worst = values[0]
        text = value_text(rule["metric"], worst["value"])
        if rule["per_partner"]:
            text = f"{text} ({worst['partner_id']}) · {ev['conditions_true']} of {ev['values_total']} partners meet it"
        elif worst["condition"]:
            text += " · meets the condition"
        return text

    @staticmethod
    def _counts(counts: dict) -> str:
        parts = [f"{counts[s]} {s}" for s in ("firing", "pending") if counts.get(s)]
        return " · ".join(parts) or "—"

    def silences(self, scope, now) -> tuple:
        """(note, rows): silences in force, and those that ended in the period."""
        try:
            rows = visible_silences(self.store, scope.principal, now, partners=scope.partner_list())
        except StoreUnavailable:
            return error_state(), []
        rows = [r for r in rows if r["state"] != "expired" or r["ends_at"] >= scope.start]
        if not rows:
            return empty_state("No silence in force or ended in this period",
                               "New silence (or Silence on an alert) suppresses notifications for a while."), []
        return None, [{**r, "matchers_text": matchers_text(r["matchers"]), "ends_text": time_text(r["ends_at"]),
                       "actions": r["state"]} for r in rows]

    def delivery(self, scope) -> tuple:
        """(attempts note, attempt rows, queue note, queue rows) of the period."""
        try:
            view = delivery_view(self.queue(), scope, scope.start, scope.end)
        except StoreUnavailable:
            return error_state(), [], None, []
        rules = self.services.alert_rules
        attempts = [{"id": a.get("attempt_id"), "ts_text": time_text(a.get("ts")), "receiver": a.get("receiver"),
                     "status": a.get("status"), "outcome": a.get("outcome"), "http_status": a.get("http_status"),
                     "error": a.get("error") or ""} for a in view["attempts"]]
        queued = [{"id": p["id"], "due_text": time_text(p.get("due_at")), "receiver": p.get("receiver"),
                   "status": p.get("status"), "attempts": p.get("attempts"),
                   "last_error": ((p.get("last") or {}).get("error") or "")} for p in view["pending"]]
        stats = view["stats"]
        line = (html.Div(f"Since the store began: {stats['delivered']:,} delivered, {stats['retried']:,} attempts "
                         f"retried, {stats['rejected']:,} rejected, {stats['expired']:,} expired.",
                         className="small text-body-secondary mb-2", **{"data-delivery": "stats"}) if stats else None)
        if attempts:
            note = line
        elif rules is not None and not rules.receivers:
            note = [empty_state("No notification sent in this period",
                                "The rules file names no receiver: alerts are recorded, not sent."), line]
        else:
            note = [empty_state("No notification sent in this period"), line]
        return note, attempts, None if queued else html.Div("Nothing queued.", className="small text-body-secondary"), \
            queued

    def history(self, scope, state=None, severity=None, rule=None) -> tuple:
        """(note, rows, rule options) of the period's changes, newest first, filtered."""
        kept: deque = deque(maxlen=MAX_HISTORY_ROWS)
        total, rules = 0, set()
        try:
            for change in self.services.alerts.changes(scope):
                rules.add(change["rule"])
                if (state and change["state"] != state) or (severity and change["severity"] != severity) \
                        or (rule and change["rule"] != rule):
                    continue
                total += 1
                kept.append(change)
        except StoreUnavailable:
            return error_state(), [], []
        rows = [{"id": c["change_id"], "ts_text": time_text(c["ts"]), "rule": c["rule"], "state": c["state"],
                 "severity": c["severity"], "partner_id": c.get("partner_id"), "value": c.get("value"),
                 "threshold": c.get("threshold"), "summary": c.get("summary") or "",
                 "acknowledged": "yes" if c.get("acknowledged") else "no", "source": c.get("source") or ""}
                for c in reversed(kept)]
        options = [{"label": name, "value": name} for name in sorted(rules | ({rule} if rule else set()))]
        if not rows:
            filtered = state or severity or rule
            return empty_state("No change matches these filters" if filtered else
                               "No alert changed state in this period"), [], options
        note = None if total <= len(rows) else html.Div(
            f"Showing the newest {len(rows):,} of {total:,} changes; the Full export has every one.",
            className="small text-body-secondary mb-2")
        return note, rows, options

    def panels(self, filters) -> dict:
        """Every refreshed body and grid's rows, by REFRESHED key."""
        scope, now = filters_scope(filters, self.clock()), self.clock()
        active_note, active = self.active(scope, now)
        silence_note, silences = self.silences(scope, now)
        delivery_note, attempts, queue_note, queued = self.delivery(scope)
        return {ALERTS.ACTIVE_NOTE: active_note, "active.rows": active, ALERTS.RULES: self.rules(scope, now),
                ALERTS.SILENCES_NOTE: silence_note, "silences.rows": silences, ALERTS.DELIVERY_NOTE: delivery_note,
                "delivery.rows": attempts, ALERTS.QUEUE_NOTE: queue_note, "queue.rows": queued}

    def page(self, filters: dict, theme: str):
        """The whole page with every panel drawn (the first view; the grids follow the theme by CSS)."""
        scope = filters_scope(filters, self.clock())
        note, rows, options = self.history(scope)
        content = {**self.panels(filters), ALERTS.HISTORY_NOTE: note, "history.rows": rows, "rule_options": options}
        return alerts_layout.layout(content=content, export_href=export_href("alerts", scope),
                                    partner_manager=not scope.principal.sees_every_partner)


def register(app, services) -> AlertsPanels:
    """Bind the /alerts callbacks: redraws on the refresh tick, an alerts message and an action;
    the history's filters and CSV; the dialogs (callbacks/alert_dialogs.py)."""
    view = AlertsPanels(services)
    grids = {"active": ALERTS.ACTIVE_GRID, "silences": ALERTS.SILENCES_GRID, "delivery": ALERTS.DELIVERY_GRID,
             "queue": ALERTS.QUEUE_GRID}
    outputs = [Output(grids[k.split(".")[0]], "rowData") if k.endswith(".rows") else Output(k, "children")
               for k in REFRESHED] + [Output(grids[g], "style") for g in _GRIDS]

    @app.callback(*outputs, Input(SHELL.TICK, "n_intervals"), Input(ALERTS.RESULT, "data"),
                  Input(SHELL.ALERTS_PING, "data"), State(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def refresh(_n, _result, _ping, filters):
        content = view.panels(filters)
        return (*[content[k] for k in REFRESHED], *[grid_style(content[f"{g}.rows"]) for g in _GRIDS])

    @app.callback(Output(ALERTS.HISTORY_NOTE, "children"), Output(ALERTS.HISTORY_GRID, "rowData"),
                  Output(ALERTS.HISTORY_GRID, "style"), Output(ALERTS.HISTORY_RULE, "options"),
                  Input(SHELL.TICK, "n_intervals"), Input(ALERTS.HISTORY_STATE, "value"),
                  Input(ALERTS.HISTORY_SEVERITY, "value"), Input(ALERTS.HISTORY_RULE, "value"),
                  Input(ALERTS.RESULT, "data"), State(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def history(_n, state, severity, rule, _result, filters):
        note, rows, options = view.history(filters_scope(filters, services.clock()),
                                           state if state in HISTORY_STATES else None,
                                           severity if severity in HISTORY_SEVERITIES else None, rule or None)
        return note, rows, grid_style(rows), options

    bind_csv_export(app, ALERTS.HISTORY_CSV, ALERTS.HISTORY_GRID)
    alert_dialogs.register(app, services)
    return view
