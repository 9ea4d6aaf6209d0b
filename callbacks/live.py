"""Live page callbacks: the initial state from the store (server), then every update in the browser
(clientside: assets/live.js reduces channel messages and renders)."""
from __future__ import annotations

from dash import Input, Output, State

from callbacks.filters import resolve_partners
from layouts.ids import LIVE, SHELL
from services.store import StoreUnavailable

__all__ = ["register", "initial_state"]


def initial_state(services, partners: list[str] | None) -> dict:
    """Running builds of `partners` (None = all visible) and partner names, in the page's state shape."""
    running = {}
    for build in services.queries.running_builds(partners):
        running[build["build_id"]] = {"build_id": build["build_id"], "partner_id": build["partner_id"],
                                      "build_type": build["build_type"], "app_version": build["app_version"],
                                      "started_ts": build["started_ts"], "stages": build["stages"]}
    names = services.queries.partner_names(partners)
    return {"running": running, "recent": [], "feed": [], "names": names, "error": None}


def register(app, services) -> None:
    """Bind the Live page callbacks."""

    @app.callback(Output(LIVE.STATE, "data"), Input(SHELL.FILTERS, "data"))
    def load(filters):
        partners = resolve_partners(filters or {}, services.visible_partners())
        try:
            return initial_state(services, partners)
        except StoreUnavailable:
            return {"running": {}, "recent": [], "feed": [], "names": {},
                    "error": "The store is unreachable: builds already running are not shown."}

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
