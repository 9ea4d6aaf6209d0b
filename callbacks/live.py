"""Live page callbacks: the initial state from the store (server), then every update in the browser
(clientside: assets/live.js reduces channel messages and renders)."""
from __future__ import annotations

from dash import Input, Output, State

from callbacks.filters import filters_scope
from layouts import live as live_layout
from layouts.ids import LIVE, SHELL
from services.store import StoreUnavailable

__all__ = ["register", "initial_state", "LivePage"]


def initial_state(services, scope) -> dict:
    """Running builds and partner names of a scope, in the page's state shape."""
    running = {}
    for build in services.dashboards.running_builds(scope):
        running[build["build_id"]] = {"build_id": build["build_id"], "partner_id": build["partner_id"],
                                      "build_type": build["build_type"], "app_version": build["app_version"],
                                      "started_ts": build["started_ts"], "stages": build["stages"]}
    names = services.dashboards.partner_names(scope)
    return {"running": running, "recent": [], "feed": [], "names": names, "error": None}


class LivePage:
    """The Live page drawn with its running builds for a filter set (the channel keeps it current)."""

    def __init__(self, services):
        self.services = services

    def state(self, filters: dict) -> dict:
        scope = filters_scope(filters, self.services.clock())
        try:
            return initial_state(self.services, scope)
        except StoreUnavailable:
            return {"running": {}, "recent": [], "feed": [], "names": {},
                    "error": "The store is unreachable: builds already running are not shown."}

    def page(self, filters: dict, _theme: str):
        return live_layout.layout(state=self.state(filters))


def register(app, services) -> LivePage:
    """Bind the Live page callbacks (all in the browser: the page arrives with its state); returns
    the page object the layout draws with."""
    app.clientside_callback(
        "function(inbox, state) { return window.lulupayLive.reduce(inbox, state); }",
        Output(LIVE.STATE, "data", allow_duplicate=True), Input(SHELL.RT_INBOX, "data"), State(LIVE.STATE, "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        "function(state, streams) { return window.lulupayLive.render(state, streams); }",
        Output(LIVE.RUNNING, "children"), Output(LIVE.RECENT, "children"), Output(LIVE.FEED, "children"),
        Output(LIVE.COUNT, "children"),
        Input(LIVE.STATE, "data"), Input(LIVE.FEED_STREAMS, "value"),
    )

    return LivePage(services)
