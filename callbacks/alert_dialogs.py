"""The /alerts page's actions: the Acknowledge and Silence buttons of an alert open their dialog
(the silence prefilled with the alert's labels), New silence opens an empty one, Expire ends a
silence; what the dialogs confirm goes through services/alerting/actions.py like the API, as the
signed-in principal. Each action's outcome lands in the ALERTS.RESULT store: it closes the dialog
(or shows why not) and redraws the panels."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from app.auth import current_principal
from layouts.alert_text import DURATIONS, alert_matcher_lines, parse_matchers, time_text
from layouts.ids import ALERTS
from services.alerting.actions import ActionError, acknowledge_alert, alert_visible, create_silence, expire_silence
from services.scope import scope_for
from services.store import StoreUnavailable

__all__ = ["register", "AlertActions"]

_STORE_DOWN = "The store is unreachable; try again in a moment."


def _grid_action(data: object, actions: tuple[str, ...]) -> tuple[str, str] | None:
    """(action, row id) of a grid button's cellRendererData, or None."""
    if not isinstance(data, dict) or data.get("value") not in actions or not isinstance(data.get("rowId"), str):
        return None
    return data["value"], data["rowId"]


class AlertActions:
    """What the dialogs open with and what their buttons do, for the signed-in principal."""

    def __init__(self, services):
        self.services = services
        self.store = services.alert_store
        self.clock = services.clock

    def visible_alert(self, alert_id: str):
        """The alert if the principal may see it, else None."""
        alert = self.store.alert(alert_id)
        if alert is None or not alert_visible(scope_for(current_principal()), alert.partner_id):
            return None
        return alert

    def new_silence_lines(self) -> str:
        """An empty form, except a partner manager's own partner line (which they must keep)."""
        principal = current_principal()
        if principal.sees_every_partner or not principal.partners:
            return ""
        return f'partner_id="{sorted(principal.partners)[0]}"'

    def acknowledge(self, alert_id, comment) -> tuple[bool, str]:
        if not isinstance(alert_id, str):
            return False, "Choose an alert to acknowledge."
        row = acknowledge_alert(self.services, current_principal(), alert_id, comment or "", self.clock())
        who = f" ({row['partner_id']})" if row["partner_id"] else ""
        return True, f"Acknowledged {row['rule']}{who}."

    def silence(self, lines, duration, comment) -> tuple[bool, str]:
        try:
            matchers = parse_matchers(lines)
        except ValueError as exc:
            return False, str(exc)
        if duration not in DURATIONS:
            return False, "Choose a duration."
        now = self.clock()
        row = create_silence(self.store, current_principal(), {
            "matchers": matchers, "ends_at": now + DURATIONS[duration][0], "comment": comment or ""}, now)
        return True, f"Silence created until {time_text(row['ends_at'])} UTC."

    def expire(self, silence_id) -> tuple[bool, str]:
        expire_silence(self.store, current_principal(), silence_id, self.clock())
        return True, "Silence expired."

    def run(self, action: str, *args) -> tuple[bool, str]:
        """(ok, message) of one action; refusals and an unreachable store are messages, never errors."""
        try:
            return getattr(self, action)(*args)
        except ActionError as exc:
            return False, exc.message
        except StoreUnavailable:
            return False, _STORE_DOWN


def _feedback(ok: bool, message: str):
    return html.Div(dbc.Alert(message, color="success" if ok else "danger", dismissable=True, className="py-2",
                              duration=8000 if ok else None), **{"data-feedback": "ok" if ok else "error"})


def register(app, services) -> AlertActions:
    """Bind the dialogs' callbacks."""
    actions = AlertActions(services)
    closed = (no_update,) * 5

    @app.callback(Output(ALERTS.ACK_MODAL, "is_open"), Output(ALERTS.ACK_TARGET, "data"),
                  Output(ALERTS.ACK_TITLE, "children"), Output(ALERTS.ACK_COMMENT, "value"),
                  Output(ALERTS.ACK_ERROR, "children"), Output(ALERTS.SILENCE_MODAL, "is_open"),
                  Output(ALERTS.SILENCE_MATCHERS, "value"), Output(ALERTS.SILENCE_COMMENT, "value"),
                  Output(ALERTS.SILENCE_ERROR, "children"),
                  Input(ALERTS.ACTIVE_GRID, "cellRendererData"), Input(ALERTS.NEW_SILENCE, "n_clicks"),
                  Input(ALERTS.ACK_CANCEL, "n_clicks"), Input(ALERTS.SILENCE_CANCEL, "n_clicks"),
                  Input(ALERTS.RESULT, "data"), prevent_initial_call=True)
    def dialogs(cell, new_clicks, _ack_cancel, _silence_cancel, result):
        trigger = ctx.triggered_id
        if trigger == ALERTS.ACTIVE_GRID:
            picked = _grid_action(cell, ("ack", "silence"))
            try:
                alert = actions.visible_alert(picked[1]) if picked else None
            except StoreUnavailable:
                alert = None
            if alert is None:
                raise PreventUpdate
            if picked[0] == "ack":
                title = f"Acknowledge {alert.rule}" + (f" ({alert.partner_id})" if alert.partner_id else "")
                return (True, alert.id, title, "", None, *closed[:4])
            return (*closed, True, alert_matcher_lines(alert.current_labels), "", None)
        if trigger == ALERTS.NEW_SILENCE and new_clicks:
            return (*closed, True, actions.new_silence_lines(), "", None)
        if trigger == ALERTS.ACK_CANCEL:
            return (False, *closed[:4], *closed[:4])
        if trigger == ALERTS.SILENCE_CANCEL:
            return (*closed, False, no_update, no_update, no_update)
        if trigger == ALERTS.RESULT and isinstance(result, dict):
            ok, message = bool(result.get("ok")), result.get("message")
            if result.get("action") == "acknowledge":
                return (False if ok else no_update, no_update, no_update, no_update, None if ok else message,
                        *closed[:4])
            if result.get("action") == "silence":
                return (*closed, False if ok else no_update, no_update, no_update, None if ok else message)
        raise PreventUpdate

    @app.callback(Output(ALERTS.RESULT, "data"), Output(ALERTS.FEEDBACK, "children"),
                  Input(ALERTS.ACK_CONFIRM, "n_clicks"), Input(ALERTS.SILENCE_CREATE, "n_clicks"),
                  Input(ALERTS.SILENCES_GRID, "cellRendererData"),
                  State(ALERTS.ACK_TARGET, "data"), State(ALERTS.ACK_COMMENT, "value"),
                  State(ALERTS.SILENCE_MATCHERS, "value"), State(ALERTS.SILENCE_DURATION, "value"),
                  State(ALERTS.SILENCE_COMMENT, "value"), State(ALERTS.RESULT, "data"), prevent_initial_call=True)
    def act(ack_clicks, create_clicks, cell, target, ack_comment, lines, duration, comment, previous):
        trigger = ctx.triggered_id
        if trigger == ALERTS.ACK_CONFIRM and ack_clicks:
            action, (ok, message) = "acknowledge", actions.run("acknowledge", target, ack_comment)
        elif trigger == ALERTS.SILENCE_CREATE and create_clicks:
            action, (ok, message) = "silence", actions.run("silence", lines, duration, comment)
        elif trigger == ALERTS.SILENCES_GRID and (picked := _grid_action(cell, ("expire",))):
            action, (ok, message) = "expire", actions.run("expire", picked[1])
        else:
            raise PreventUpdate
        seq = (previous.get("seq") if isinstance(previous, dict) and isinstance(previous.get("seq"), int) else 0) + 1
        result = {"seq": seq, "action": action, "ok": ok, "message": message}
        # a refused acknowledgement or silence is said in its dialog; an expiry's outcome up here
        shown = _feedback(ok, message) if ok or action == "expire" else no_update
        return result, shown

    return actions
