"""The app shell: navigation, the global filter bar, the outage banner and the shared stores."""
from __future__ import annotations

from datetime import date
from urllib.parse import parse_qs, urlencode

import dash_bootstrap_components as dbc
from dash import dcc, html
from dash.dash import _ID_CONTENT, _ID_DUMMY, _ID_LOCATION, _ID_STORE  # Dash Pages' router ids

from layouts.ids import SHELL
from services.timerange import RANGES

__all__ = ["shell", "page_container", "RANGES", "REFRESH_CHOICES", "PAGES", "parse_filters", "filters_query", "DEFAULT_FILTERS"]

RANGE_LABELS = {"1h": "Last 1 hour", "6h": "Last 6 hours", "24h": "Last 24 hours", "7d": "Last 7 days",
                "30d": "Last 30 days", "90d": "Last 90 days", "custom": "Custom dates"}
REFRESH_CHOICES = {"off": None, "5s": 5_000, "30s": 30_000, "1m": 60_000}
REFRESH_LABELS = {"off": "Refresh off", "5s": "Every 5 s", "30s": "Every 30 s", "1m": "Every minute"}
PAGES = (("Executive", "/"), ("Operations", "/operations"), ("Builds", "/builds"), ("Partners", "/partners"),
         ("Assets", "/assets"), ("Capacity", "/capacity"), ("Alerts", "/alerts"), ("Live", "/live"))
DEFAULT_FILTERS = {"range": "24h", "from": None, "to": None, "partners": [], "refresh": "30s"}


def parse_filters(search: str | None) -> dict:
    """Filters from a URL query string (unknown or bad values fall back to the defaults)."""
    args = parse_qs((search or "").lstrip("?"))
    out = dict(DEFAULT_FILTERS)
    rng = args.get("range", [None])[0]
    if rng in RANGES:
        out["range"] = rng
    refresh = args.get("refresh", [None])[0]
    if refresh in REFRESH_CHOICES:
        out["refresh"] = refresh
    partners = [p for value in args.get("partner", []) for p in value.split(",") if p]
    out["partners"] = sorted(set(partners))
    if out["range"] == "custom":
        out["from"] = _iso_date(args.get("from", [None])[0])
        out["to"] = _iso_date(args.get("to", [None])[0])
        if not out["from"] or not out["to"]:
            out["range"], out["from"], out["to"] = DEFAULT_FILTERS["range"], None, None
    return out


def _iso_date(value: str | None) -> str | None:
    """YYYY-MM-DD of a date argument, or None when it is not a date."""
    try:
        return date.fromisoformat((value or "")[:10]).isoformat()
    except ValueError:
        return None


def filters_query(filters: dict) -> str:
    """The URL query string of a filter set (defaults omitted, so links stay short)."""
    pairs = []
    if filters.get("range") and filters["range"] != DEFAULT_FILTERS["range"]:
        pairs.append(("range", filters["range"]))
    if filters.get("range") == "custom":
        pairs += [("from", filters.get("from") or ""), ("to", filters.get("to") or "")]
    if filters.get("partners"):
        pairs.append(("partner", ",".join(sorted(filters["partners"]))))
    if filters.get("refresh") and filters["refresh"] != DEFAULT_FILTERS["refresh"]:
        pairs.append(("refresh", filters["refresh"]))
    return ("?" + urlencode(pairs, safe=",")) if pairs else ""


def _filter_bar(filters: dict, partner_options: list[dict], refresh_state: tuple, status: tuple,
                date_bounds: tuple[str, str] | None, user: dict | None = None):
    updated, _banner, store_colour, prometheus_colour, prometheus_title = status
    dates_style = refresh_state[2]
    return dbc.Row([
        dbc.Col(dcc.Dropdown(id=SHELL.RANGE, options=[{"label": v, "value": k} for k, v in RANGE_LABELS.items()],
                             value=filters["range"], clearable=False, searchable=False), xs=12, md=2),
        dbc.Col(dcc.DatePickerRange(id=SHELL.DATES, display_format="YYYY-MM-DD", clearable=False,
                                    start_date=filters["from"], end_date=filters["to"],
                                    # what the day rollups keep, up to today (the API's bound too)
                                    min_date_allowed=date_bounds[0] if date_bounds else None,
                                    max_date_allowed=date_bounds[1] if date_bounds else None,
                                    minimum_nights=0, className="w-100"), xs=12, md=3, id=SHELL.DATES_COL,
                style=dates_style),
        dbc.Col(dcc.Dropdown(id=SHELL.PARTNERS, multi=True, searchable=True,
                             placeholder="All your partners" if user and user.get("role") == "partner_manager"
                             else "All partners",
                             options=partner_options, value=filters["partners"]), xs=12, md=True),
        dbc.Col(dcc.Dropdown(id=SHELL.REFRESH, options=[{"label": v, "value": k} for k, v in REFRESH_LABELS.items()],
                             value=filters["refresh"], clearable=False, searchable=False), xs=6, md=2,
                className="refresh-col"),
        dbc.Col(html.Div([
            html.Div(updated, id=SHELL.UPDATED, className="small text-body-secondary"),
            html.Div([dbc.Badge("store", id=SHELL.BADGE_STORE, color=store_colour, className="me-1"),
                      dbc.Badge("Prometheus", id=SHELL.BADGE_PROMETHEUS, color=prometheus_colour,
                                title=prometheus_title, className="me-1"),
                      dbc.Badge("live: offline", id=SHELL.BADGE_LIVE, color="secondary",
                                title="Live channel (/ws): not connected yet")]),
        ], className="text-md-end"), xs=6, md=2),
    ], className="g-2 align-items-center filter-bar py-2")


def page_container(location: tuple[str, str] | None, content=None, title: str | None = None):
    """dash.page_container (the ids Dash Pages' router works with), with the page already drawn.
    `location` = (pathname, search) the content was drawn for; the Location then matches the
    browser's and stays quiet, so the router does not draw the page again. Without it, the Location
    takes the browser's address when it mounts and the router draws the page (Dash's own way)."""
    pathname, search = location or (None, None)
    return html.Div([
        dcc.Location(id=_ID_LOCATION, refresh="callback-nav", pathname=pathname, search=search),
        html.Div(content, id=_ID_CONTENT, disable_n_clicks=True),
        dcc.Store(id=_ID_STORE, data={"title": title} if title else None),
        html.Div(id=_ID_DUMMY, disable_n_clicks=True),
    ])


def shell(*, location: tuple[str, str] | None = None, filters: dict | None = None, theme: str = "light",
          partner_options: list[dict] | None = None, nav: list | None = None, refresh_state: tuple | None = None,
          status: tuple | None = None, content=None, title: str | None = None,
          date_bounds: tuple[str, str] | None = None, user: dict | None = None, alert_banner=None):
    """The layout around every page, with the first view's values (callbacks/shell.py computes them
    for the request; the defaults are an empty shell that fills itself through callbacks)."""
    filters = filters or DEFAULT_FILTERS
    refresh_state = refresh_state or (30_000, False, {"display": "none"})
    status = status or (None, None, "secondary", "secondary", None)
    interval, disabled, _dates = refresh_state
    pathname, search = location or (None, None)  # None: the Location takes the browser's address
    return html.Div([
        dcc.Location(id=SHELL.URL, refresh="callback-nav", pathname=pathname, search=search),
        dcc.Store(id=SHELL.FILTERS, data=filters),
        dcc.Store(id=SHELL.THEME, storage_type="local", data=theme),
        dcc.Interval(id=SHELL.TICK, interval=interval, disabled=disabled),
        dcc.Store(id=SHELL.RT_INBOX),
        dcc.Store(id=SHELL.RT_SUBSCRIPTION),
        dcc.Store(id=SHELL.ALERTS_PING),
        html.Div(id=SHELL.TOASTS, className="toast-stack"),
        dbc.Navbar(dbc.Container([
            dbc.NavbarBrand([html.I(className="bi bi-graph-up-arrow me-2"), "LuluPay Analytics"], href="/"),
            dbc.Nav(nav, id=SHELL.NAV, navbar=True, className="me-auto"),
            dbc.Switch(id=SHELL.THEME_SWITCH, label="Dark", value=theme == "dark", className="text-light mb-0"),
            _user_menu(user),
        ], fluid=True), color="dark", dark=True, className="mb-2"),
        dbc.Container([
            _open_access_banner(user),
            _filter_bar(filters, partner_options or [], refresh_state, status, date_bounds, user),
            html.Div(status[1], id=SHELL.BANNER),
            html.Div(alert_banner, id=SHELL.ALERT_BANNER),
            page_container(location, content, title),
        ], fluid=True, className="pb-4"),
    ])


def _user_menu(user: dict | None):
    """Who is signed in, and the sign-out form (a POST with the CSRF token)."""
    if not user or user.get("open"):
        return None
    role = {"admin": "admin", "staff": "staff", "partner_manager": "partner manager"}.get(user["role"], user["role"])
    return html.Div([
        html.Span([html.I(className="bi bi-person-circle me-1"), user["name"],
                   html.Span(f" · {role}", className="text-white-50")], className="text-light small me-2",
                  id=SHELL.USER),
        html.Form([dcc.Input(type="hidden", name="csrf_token", value=user["csrf"]),
                   html.Button("Sign out", type="submit", className="btn btn-sm btn-outline-light", id=SHELL.LOGOUT)],
                  action="/logout", method="post", className="mb-0"),
    ], className="d-flex align-items-center ms-3")


def _open_access_banner(user: dict | None):
    """Every page says so when nobody has to sign in (LULUPAY_AUTH=open, development only)."""
    if not user or not user.get("open"):
        return None
    return dbc.Alert([html.I(className="bi bi-unlock me-2"),
                      "Open access: no sign-in, every visitor is an admin. For development only — production "
                      "runs with LULUPAY_AUTH=login."], color="warning", className="py-1 px-2 small mb-2",
                     id=SHELL.OPEN_BANNER)
