"""The /alerts page's two dialogs: acknowledge an alert (with a comment) and create a silence
(matchers, prefilled from an alert's labels; a duration; a comment)."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from layouts.alert_text import DURATIONS
from layouts.ids import ALERTS

__all__ = ["ack_dialog", "silence_dialog", "DEFAULT_DURATION", "COMMENT_CHARS", "MATCHERS_CHARS"]

DEFAULT_DURATION = "2h"
COMMENT_CHARS = 1024
MATCHERS_CHARS = 16384  # 32 matchers of a long value each: the edge's bound of the field (app/guard.py)


def ack_dialog():
    """Acknowledge: the alert in the title, an optional comment, Cancel / Acknowledge."""
    return dbc.Modal([
        dbc.ModalHeader(dbc.ModalTitle("Acknowledge", id=ALERTS.ACK_TITLE)),
        dbc.ModalBody([
            html.P("Acknowledging says someone is on it: the alert's escalation stops until it resolves. It "
                   "sends no notification.", className="small text-body-secondary"),
            dbc.Label("Comment (optional)", html_for=ALERTS.ACK_COMMENT),
            dbc.Textarea(id=ALERTS.ACK_COMMENT, maxLength=COMMENT_CHARS, rows=3,
                         placeholder="What is being done about it?"),
            html.Div(id=ALERTS.ACK_ERROR, className="text-danger small mt-2"),
        ]),
        dbc.ModalFooter([
            dbc.Button("Cancel", id=ALERTS.ACK_CANCEL, color="secondary", outline=True),
            dbc.Button("Acknowledge", id=ALERTS.ACK_CONFIRM, color="primary"),
        ]),
    ], id=ALERTS.ACK_MODAL, is_open=False)


def silence_dialog(partner_manager: bool = False):
    """New silence: matchers one per line, a duration from now, a comment, Cancel / Create."""
    hint = ("Your silence must keep the line partner_id=\"<one of your partners>\"." if partner_manager else
            "Remove a line to silence more (e.g. severity, for every severity of the rule).")
    return dbc.Modal([
        dbc.ModalHeader(dbc.ModalTitle("New silence")),
        dbc.ModalBody([
            dbc.Label("Matchers, one per line", html_for=ALERTS.SILENCE_MATCHERS),
            dbc.Textarea(id=ALERTS.SILENCE_MATCHERS, maxLength=MATCHERS_CHARS, rows=4, className="font-monospace",
                         placeholder='alertname="LuluPayBuildsSlow"\npartner_id="acme-bank"'),
            html.Div(['name="value" equals, name!="value" differs, name=~"regex" and name!~"regex" match the whole '
                      'value. ', hint], className="form-text mb-2"),
            dbc.Row([
                dbc.Col([dbc.Label("Duration", html_for=ALERTS.SILENCE_DURATION),
                         dbc.Select(id=ALERTS.SILENCE_DURATION, value=DEFAULT_DURATION,
                                    options=[{"label": label, "value": key} for key, (_, label) in DURATIONS.items()])],
                        md=4),
                dbc.Col([dbc.Label("Comment", html_for=ALERTS.SILENCE_COMMENT),
                         dbc.Input(id=ALERTS.SILENCE_COMMENT, maxLength=COMMENT_CHARS,
                                   placeholder="Why (a deploy, a known outage …)")], md=8),
            ], className="g-2"),
            html.Div(id=ALERTS.SILENCE_ERROR, className="text-danger small mt-2"),
        ]),
        dbc.ModalFooter([
            dbc.Button("Cancel", id=ALERTS.SILENCE_CANCEL, color="secondary", outline=True),
            dbc.Button("Create silence", id=ALERTS.SILENCE_CREATE, color="primary"),
        ]),
    ], id=ALERTS.SILENCE_MODAL, is_open=False, size="lg")
