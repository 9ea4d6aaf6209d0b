"""Shell callbacks: URL ⇄ filters, refresh interval, partner options, theme, badges, outage banner."""
from __future__ import annotations

from datetime import datetime, timezone

import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, html, no_update

from layouts.ids import SHELL
from layouts.shell import PAGES, REFRESH_CHOICES, filters_query, parse_filters
from services.store import StoreUnavailable

__all__ = ["register", "range_is_settled"]


def register(app, services) -> None:
    """Bind the shell callbacks."""

    @app.callback(
        Output(SHELL.URL, "search"), Output(SHELL.FILTERS, "data"),
        Output(SHELL.RANGE, "value"), Output(SHELL.DATES, "start_date"), Output(SHELL.DATES, "end_date"),
        Output(SHELL.PARTNERS, "value"), Output(SHELL.REFRESH, "value"), Output(SHELL.PARTNERS, "options"),
        Input(SHELL.URL, "search"), Input(SHELL.RANGE, "value"), Input(SHELL.DATES, "start_date"),
        Input(SHELL.DATES, "end_date"), Input(SHELL.PARTNERS, "value"), Input(SHELL.REFRESH, "value"),
    )
    def sync_filters(search, rng, start_date, end_date, partners, refresh):
        """The URL is the source of truth: controls follow it (first load, back button) and a
        change of a control writes the URL (so the link reopens the same view)."""
        if ctx.triggered_id in (None, SHELL.URL):
            f = parse_filters(search)
            # Options first: a multi-select drops values it has no option for.
            return no_update, f, f["range"], f["from"], f["to"], f["partners"], f["refresh"], partner_options(f["partners"])
        f = {"range": rng, "from": start_date if rng == "custom" else None,
             "to": end_date if rng == "custom" else None, "partners": sorted(partners or []), "refresh": refresh}
        if rng == "custom" and not (start_date and end_date):
            today = datetime.now(timezone.utc).date().isoformat()
            f["from"] = f["to"] = today
        f = parse_filters(filters_query(f))
        return (filters_query(f), f, no_update, f["from"] or no_update, f["to"] or no_update, no_update, no_update,
                no_update)

    @app.callback(Output(SHELL.TICK, "interval"), Output(SHELL.TICK, "disabled"), Output(SHELL.DATES_COL, "style"),
                  Input(SHELL.FILTERS, "data"))
    def set_refresh(filters):
        interval = REFRESH_CHOICES.get(filters.get("refresh"))
        dates = {} if filters.get("range") == "custom" else {"display": "none"}
        return (interval or 3_600_000), interval is None or range_is_settled(filters, services.clock()), dates

    @app.callback(Output(SHELL.NAV, "children"), Input(SHELL.URL, "pathname"), Input(SHELL.URL, "search"))
    def nav(pathname, search):
        """Links keep the current filters."""
        return [dbc.NavItem(dbc.NavLink(name, href=path + (search or ""), active=(pathname or "/") == path))
                for name, path in PAGES]

    def partner_options(selected: list[str]) -> list[dict]:
        """Searchable options 'Name (id)'; selected ids stay listed even when unknown or unreachable."""
        try:
            names = services.queries.partner_names(services.visible_partners())
        except StoreUnavailable:
            names = {}
        options = [{"label": f"{name} ({pid})", "value": pid} for pid, name in names.items()]
        return options + [{"label": pid, "value": pid} for pid in selected or [] if pid not in names]

    @app.callback(Output(SHELL.UPDATED, "children"), Output(SHELL.BANNER, "children"),
                  Output(SHELL.BADGE_STORE, "color"), Output(SHELL.BADGE_PROMETHEUS, "color"),
                  Output(SHELL.BADGE_PROMETHEUS, "title"),
                  Input(SHELL.TICK, "n_intervals"), Input(SHELL.FILTERS, "data"))
    def status(_n, _filters):
        stamp = datetime.now(timezone.utc).strftime("updated %H:%M:%S UTC")
        store_ok = services.store.ping()
        banner = None if store_ok else dbc.Alert(
            [html_icon("bi-exclamation-octagon"), "The store is unreachable. Panels show their last state and "
             "recover by themselves when it returns; ingest answers 503 meanwhile."],
            color="danger", className="outage-banner py-2", id="outage-alert")
        prometheus = services.settings.prometheus_url
        return (stamp, banner, "success" if store_ok else "danger",
                "info" if prometheus else "secondary",
                f"Prometheus: {prometheus}" if prometheus else "Prometheus: not configured")

    _register_realtime(app)

    app.clientside_callback(
        """function(dark, _ts, stored) {
            const fromSwitch = (dash_clientside.callback_context.triggered || [])
                .some(t => t.prop_id === 'theme-switch.value');
            const theme = fromSwitch ? (dark ? 'dark' : 'light') : (stored || 'light');
            document.documentElement.setAttribute('data-bs-theme', theme);
            document.body.setAttribute('data-ag-theme-mode', theme);  // AG Grid's own dark scheme
            return [theme, theme === 'dark'];
        }""",
        Output(SHELL.THEME, "data"), Output(SHELL.THEME_SWITCH, "value"),
        Input(SHELL.THEME_SWITCH, "value"), Input(SHELL.THEME, "modified_timestamp"), State(SHELL.THEME, "data"),
    )


def _register_realtime(app) -> None:
    """The socket follows the partner filter; alerts become toasts on every page."""
    app.clientside_callback(
        """function(filters) {
            const partners = (filters && filters.partners) || [];
            if (window.lulupayRealtime) { window.lulupayRealtime.setPartners(partners); }
            return partners;
        }""",
        Output(SHELL.RT_SUBSCRIPTION, "data"), Input(SHELL.FILTERS, "data"),
    )
    app.clientside_callback(
        "function(inbox, current) { return window.lulupayLive.toasts(inbox, current); }",
        Output(SHELL.TOASTS, "children"), Input(SHELL.RT_INBOX, "data"), State(SHELL.TOASTS, "children"),
        prevent_initial_call=True,
    )


def range_is_settled(filters: dict, now: float) -> bool:
    """True for a custom range that ended before yesterday (UTC): its figures can only change by
    late events, so auto-refresh stops re-querying it (a reload or filter change still does)."""
    if filters.get("range") != "custom" or not filters.get("to"):
        return False
    last_day = datetime.fromisoformat(filters["to"][:10]).replace(tzinfo=timezone.utc)
    return (now - last_day.timestamp()) > 2 * 86400


def html_icon(name: str):
    """A Bootstrap icon before a text."""
    return html.I(className=f"bi {name} me-2")
