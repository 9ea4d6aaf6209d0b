"""Live page: builds in progress stage by stage, recently finished builds, the event feed — all fed by
the live channel (/ws) without any page refresh."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from layouts.ids import LIVE
from layouts.panels import panel

__all__ = ["layout", "FEED_STREAMS"]

FEED_STREAMS = (("builds", "Builds"), ("metrics", "Metrics"), ("alerts", "Alerts"), ("partners", "Partners"))


def layout(state: dict | None = None):
    """The page; `state` = running builds loaded from the store once (callbacks/live.py), then kept
    current by the channel."""
    return html.Div([
        dcc.Store(id=LIVE.STATE, data=state),
        html.Div([html.H4("Live", className="mt-2 mb-0"),
                  html.Span(id=LIVE.COUNT, className="text-body-secondary ms-3")],
                 className="d-flex align-items-baseline"),
        dbc.Row([
            dbc.Col(panel("live-running", "Builds in progress",
                          "Every running build of the selected partners, stage by stage, as its events arrive "
                          "(loaded from the store when the page opens).", LIVE.RUNNING, min_height=320),
                    xl=7, className="mb-3"),
            dbc.Col(panel("live-recent", "Recently finished", "Builds that finished while this page is open, newest first.",
                          LIVE.RECENT, min_height=320), xl=5, className="mb-3"),
        ]),
        dbc.Row(dbc.Col(panel("live-feed", "Event feed",
                              "Every message of the live channel for the selected partners; choose the streams.",
                              LIVE.FEED + "-body", min_height=200, body=[
                                  dbc.Checklist(id=LIVE.FEED_STREAMS, inline=True, className="mb-2",
                                                options=[{"label": label, "value": value} for value, label in FEED_STREAMS],
                                                value=[value for value, _ in FEED_STREAMS]),
                                  html.Div(id=LIVE.FEED, className="live-feed"),
                              ]), className="mb-3")),
    ])
