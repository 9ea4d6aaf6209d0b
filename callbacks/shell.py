"""Shell callbacks: URL ⇄ filters, refresh interval, partner options, theme, badges, outage banner."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlencode, urlsplit

import dash_bootstrap_components as dbc
import flask
from dash import Input, Output, State, ctx, dcc, html, no_update
from dash.dash import _ID_CONTENT, _ID_LOCATION  # Dash Pages' router ids
from dash.exceptions import UnsupportedRelativePath

from layouts.alert_text import banner_text
from layouts.ids import SHELL
from layouts import shell as shell_layout
from layouts.shell import DEFAULT_FILTERS, PAGES, REFRESH_CHOICES, filters_query, parse_filters
from app.auth import current_principal
from callbacks.filters import check_filters, date_bounds, visible_filters, visible_scope
from services.alerting.overview import firing_counts
from services.queries.promql import display_url
from services.store import StoreUnavailable
from services.vocabulary import is_partner_id

__all__ = ["register", "first_view", "page_layout", "match_page", "request_theme", "requested_location", "range_is_settled",
           "alert_banner", "install_view_guard", "THEME_COOKIE", "ROUTING_INPUTS"]

log = logging.getLogger(__name__)

THEME_COOKIE = "lulupay_theme"  # mirrors the remembered theme, so the server draws the first view in it
THEMES = ("light", "dark")


def request_theme() -> str:
    """The theme the current request's browser remembers (light when it says nothing)."""
    theme = flask.request.cookies.get(THEME_COOKIE) if flask.has_request_context() else None
    return theme if theme in THEMES else "light"


def requested_location(app) -> tuple[str, str] | None:
    """(pathname, search) of the page whose layout is being requested: the Referer of the
    renderer's `/_dash-layout` request (browsers send the full address to the same origin).
    None when there is none or it is another origin."""
    referrer = flask.request.referrer if flask.has_request_context() else None
    if not referrer:
        return None
    parts = urlsplit(referrer)
    if parts.netloc != flask.request.host:
        return None
    if parts.path in ("", "/") and not parts.query:
        # a bare origin may be a cut-down Referer (Referrer-Policy `origin`, or an address over 4 KB);
        # a Location preset to the wrong address never corrects itself, so the shell fills itself
        return None
    return parts.path, f"?{parts.query}" if parts.query else ""


def partner_options(services, selected: list[str]) -> list[dict]:
    """Searchable options 'Name (id)'; selected ids stay listed even when unknown or unreachable."""
    try:
        names = services.dashboards.partner_names(visible_scope())
    except StoreUnavailable:
        names = {}
    options = [{"label": f"{name} ({pid})", "value": pid} for pid, name in names.items()]
    # a selected id the principal may see stays listed even when it has no record yet
    principal = current_principal()
    return options + [{"label": pid, "value": pid} for pid in selected or []
                      if pid not in names and is_partner_id(pid) and principal.may_see(pid)]


def nav_links(pathname: str | None, search: str | None) -> list:
    """Links keep the current filters."""
    here = pathname or "/"
    return [dbc.NavItem(dbc.NavLink(name, href=path + (search or ""),
                                    active=here == path or (path != "/" and here.startswith(path + "/"))))
            for name, path in PAGES]


def refresh_state(filters: dict, now: float) -> tuple[int, bool, dict]:
    """(refresh tick interval, tick disabled, style of the custom-dates column) of a filter set."""
    interval = REFRESH_CHOICES.get(filters.get("refresh"))
    dates = {} if filters.get("range") == "custom" else {"display": "none"}
    return (interval or 3_600_000), interval is None or range_is_settled(filters, now), dates


def status_view(services) -> tuple:
    """(updated at, outage banner, store badge colour, Prometheus badge colour and title)."""
    stamp = datetime.now(timezone.utc).strftime("updated %H:%M:%S UTC")
    store_ok = services.dashboards.store_ok()
    banner = None if store_ok else dbc.Alert(
        [html_icon("bi-exclamation-octagon"), "The store is unreachable. Panels show their last state and "
         "recover by themselves when it returns; ingest answers 503 meanwhile."],
        color="danger", className="outage-banner py-2", id="outage-alert")
    prometheus = display_url(services.settings.prometheus_url)
    return (stamp, banner, "success" if store_ok else "danger",
            "info" if prometheus else "secondary",
            f"Prometheus: {prometheus}" if prometheus else "Prometheus: not configured")


def alert_banner(services):
    """Every page's "2 critical alerts firing" (those the viewer may see, one read of the alert
    states) linking to /alerts; None when none fires or the store is unreachable (the outage
    banner says so)."""
    try:
        counts = firing_counts(services.alert_store, visible_scope())
    except StoreUnavailable:
        return None
    if not counts["critical"]:
        return None
    return dbc.Alert([html_icon("bi-exclamation-octagon-fill"),
                      dcc.Link(banner_text(counts["critical"]), href="/alerts", className="alert-link",
                               id=SHELL.ALERT_LINK)],
                     color="danger", className="py-1 px-2 small mb-2")


def user_view(services) -> dict:
    """Who the page is drawn for: name, role, whether access is open, and the CSRF token of the
    sign-out form."""
    from flask_wtf.csrf import generate_csrf

    principal = current_principal()
    return {"name": principal.name, "role": principal.role, "open": principal.via == "open",
            "csrf": generate_csrf()}


def first_view(app, services, pages: dict[str, tuple[str, Callable[[dict, str], object]]]):
    """The layout function of the app: the shell with the requested page already drawn for the
    filters in its URL and the remembered theme — everything a visitor sees arrives with the layout,
    in one renderer pass, and no callback runs before the first refresh tick.

    `pages`: page path relative to the app (e.g. "operations") → (title, draw(filters, theme)).
    Without a usable Referer (or for a path that is not a page), an empty shell: its Locations take
    the browser's address and the callbacks and Dash Pages' router fill it (one round later)."""

    def layout():
        if flask.g.get("principal") is None:
            # Dash checks the layout once at start-up, inside whatever request comes first (a
            # health check, say): nobody to draw for, so the bare shell, reading nothing
            return shell_layout.shell()
        theme = request_theme()
        location = requested_location(app)
        try:
            page = match_page(pages, app.strip_relative_path(location[0])) if location else None
        except UnsupportedRelativePath:  # a Referer outside the app's path prefix
            page = None
        if page is not None:
            title, page_draw, variables = page
            draw = (lambda f, t: page_draw(f, t, **variables)) if variables else page_draw
            filters = visible_filters(parse_filters(location[1]))
            try:
                return shell_layout.shell(
                    location=location, filters=filters, theme=theme, user=user_view(services),
                    date_bounds=date_bounds(services.clock()),
                    partner_options=partner_options(services, filters["partners"]), nav=nav_links(*location),
                    refresh_state=refresh_state(filters, services.clock()), status=status_view(services),
                    content=draw(filters, theme), title=title, alert_banner=alert_banner(services))
            except Exception:  # noqa: BLE001 — never a dead page: the empty shell's callbacks take over
                log.exception("first view of %s%s failed; serving the empty shell", *location)
        return shell_layout.shell(theme=theme, partner_options=partner_options(services, []), user=user_view(services),
                                  date_bounds=date_bounds(services.clock()),
                                  refresh_state=refresh_state(DEFAULT_FILTERS, services.clock()),
                                  status=status_view(services), alert_banner=alert_banner(services))

    return layout


def page_layout(draw: Callable[..., object], path_args: tuple[str, ...] = ()):
    """A Dash Pages layout function for navigation and filter changes: Dash Pages calls it with the
    URL's query arguments, the path template's variables (`path_args`, passed on to `draw` by
    name) and the page's theme (ROUTING_INPUTS), and it draws the page for them."""

    def layout(_theme: str | None = None, **query):
        variables = {name: query.pop(name, None) for name in path_args}
        search = urlencode({k: v for k, v in query.items() if isinstance(v, (str, list))}, doseq=True)
        return draw(visible_filters(parse_filters(search)), _theme if _theme in THEMES else request_theme(),
                    **{k: v if isinstance(v, str) else "" for k, v in variables.items()})

    return layout


def match_page(pages: dict, path: str) -> tuple[str, Callable[..., object], dict] | None:
    """(title, draw, path variables) of the page at `path` (relative to the app): an exact page, or
    a template such as `partners/<partner_id>` whose fixed segments match (one segment per variable)."""
    if path in pages:
        title, draw = pages[path]
        return title, draw, {}
    segments = path.split("/")
    for template, (title, draw) in pages.items():
        parts = template.split("/")
        if "<" not in template or len(parts) != len(segments):
            continue
        variables = {}
        for part, segment in zip(parts, segments):
            if part.startswith("<") and part.endswith(">"):
                variables[part[1:-1]] = segment
            elif part != segment:
                break
        else:
            return title, draw, variables
    return None


# Extra state Dash Pages' router passes to page layouts (Dash(routing_callback_inputs=...)).
ROUTING_INPUTS = {"_theme": State(SHELL.THEME, "data")}


# What a callback answer was computed for, and what Dash Pages' router draws into / listens to:
# assets/view-guard.js drops an answer computed for another view than the page's current one.
VIEW_GUARD_IDS = {"filters": SHELL.FILTERS, "theme": SHELL.THEME, "content": _ID_CONTENT, "location": _ID_LOCATION}
_DASH_RENDERER = "var renderer = new DashRenderer();"  # Dash's own, without hooks


def install_view_guard(app) -> None:
    """Pass every callback answer through assets/view-guard.js before the renderer applies it
    (Dash's `request_post` renderer hook): an answer in flight while the view changed — a refresh
    for the old filters landing on the page the router has just redrawn for new ones, the router's
    page drawn for the theme the visitor has just switched away from — is dropped (and the router
    asked again). Client-side, on the answer the renderer already has: no request, no round trip."""
    hook = ("function (payload, response) { if (window.lulupayViewGuard) { "
            f"window.lulupayViewGuard.answer(payload, response, {json.dumps(VIEW_GUARD_IDS)}); }} }}")
    renderer = f"var renderer = new DashRenderer({{request_post: {hook}}});"
    if app.renderer not in (_DASH_RENDERER, renderer):
        # renderer hooks given elsewhere (Dash(hooks=...)): they must call the guard too
        raise RuntimeError("the Dash renderer already has hooks; callbacks.shell.install_view_guard would drop them")
    app.renderer = renderer  # (in the page's CSP: Dash hashes app.renderer with its inline scripts)


def register(app, services) -> None:
    """Bind the shell callbacks. None of them runs for the first view (first_view draws it); they
    follow the URL (back button, a control changed) and the refresh tick."""
    install_view_guard(app)

    @app.callback(
        Output(SHELL.URL, "search"), Output(SHELL.FILTERS, "data"),
        Output(SHELL.RANGE, "value"), Output(SHELL.DATES, "start_date"), Output(SHELL.DATES, "end_date"),
        Output(SHELL.PARTNERS, "value"), Output(SHELL.REFRESH, "value"), Output(SHELL.PARTNERS, "options"),
        Input(SHELL.URL, "search"), Input(SHELL.RANGE, "value"), Input(SHELL.DATES, "start_date"),
        Input(SHELL.DATES, "end_date"), Input(SHELL.PARTNERS, "value"), Input(SHELL.REFRESH, "value"),
        State(SHELL.FILTERS, "data"), prevent_initial_call=True,
    )
    def sync_filters(search, rng, start_date, end_date, partners, refresh, current):
        """The URL is the source of truth: controls follow it (back button; a first view drawn
        without the URL) and a change of a control writes the URL (so the link reopens the same
        view, and Dash Pages draws the page for it)."""
        if ctx.triggered_id in (None, SHELL.URL):
            f = visible_filters(parse_filters(search))
            # Options first: a multi-select drops values it has no option for.
            return (no_update, no_update if f == current else f, f["range"], f["from"], f["to"], f["partners"],
                    f["refresh"], partner_options(services, f["partners"]))
        f = {"range": rng, "from": start_date if rng == "custom" else None,
             "to": end_date if rng == "custom" else None,
             "partners": sorted([partners] if isinstance(partners, str) else partners or []), "refresh": refresh}
        if rng == "custom" and not (start_date and end_date):
            today = datetime.now(timezone.utc).date().isoformat()
            f["from"] = f["to"] = today
        f = visible_filters(parse_filters(filters_query(f)))
        return (filters_query(f), no_update if f == current else f, no_update, f["from"] or no_update,
                f["to"] or no_update, no_update, no_update, no_update)

    @app.callback(Output(SHELL.TICK, "interval"), Output(SHELL.TICK, "disabled"), Output(SHELL.DATES_COL, "style"),
                  Input(SHELL.FILTERS, "data"), prevent_initial_call=True)
    def set_refresh(filters):
        return refresh_state(check_filters(filters), services.clock())

    @app.callback(Output(SHELL.NAV, "children"), Input(SHELL.URL, "pathname"), Input(SHELL.URL, "search"),
                  prevent_initial_call=True)
    def nav(pathname, search):
        return nav_links(pathname, search)

    @app.callback(Output(SHELL.UPDATED, "children"), Output(SHELL.BANNER, "children"),
                  Output(SHELL.BADGE_STORE, "color"), Output(SHELL.BADGE_PROMETHEUS, "color"),
                  Output(SHELL.BADGE_PROMETHEUS, "title"), Output(SHELL.ALERT_BANNER, "children"),
                  Input(SHELL.TICK, "n_intervals"), Input(SHELL.FILTERS, "data"), Input(SHELL.ALERTS_PING, "data"),
                  prevent_initial_call=True)
    def status(_n, _filters, _alerts):
        return (*status_view(services), alert_banner(services))

    _register_realtime(app)

    # The theme: the switch or the remembered value (localStorage) decides; the page's attributes
    # follow, and a cookie mirrors it for the server's first view. Unchanged values are not sent
    # back: that would redraw every panel for nothing.
    app.clientside_callback(
        """function(dark, _ts, stored) {
            const noUpdate = window.dash_clientside.no_update;
            const fromSwitch = (dash_clientside.callback_context.triggered || [])
                .some(t => t.prop_id === 'theme-switch.value');
            const theme = fromSwitch ? (dark ? 'dark' : 'light') : (stored || 'light');
            document.documentElement.setAttribute('data-bs-theme', theme);
            document.body.setAttribute('data-ag-theme-mode', theme);  // AG Grid's own dark scheme
            document.cookie = '%s=' + theme + '; path=/; max-age=31536000; SameSite=Lax';
            return [theme === stored ? noUpdate : theme, (theme === 'dark') === dark ? noUpdate : theme === 'dark'];
        }""" % THEME_COOKIE,
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
    app.clientside_callback(  # an alerts message redraws the alert banner (and the /alerts page) at once
        """function(inbox) {
            const alerts = ((inbox && inbox.messages) || []).some(m => m.stream === 'alerts');
            return alerts ? inbox.seq : window.dash_clientside.no_update;
        }""",
        Output(SHELL.ALERTS_PING, "data"), Input(SHELL.RT_INBOX, "data"), prevent_initial_call=True,
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
