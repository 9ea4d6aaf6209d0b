"""The app shell: navigation, the global filter bar, the outage banner and the shared stores."""
from __future__ import annotations

from datetime import date
from urllib.parse import parse_qs, urlencode

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from layouts.ids import SHELL

__all__ = ["shell", "RANGES", "REFRESH_CHOICES", "PAGES", "parse_filters", "filters_query", "DEFAULT_FILTERS"]

# preset → seconds (None = custom dates)
RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400,
          "custom": None}
RANGE_LABELS = {"1h": "Last 1 hour", "6h": "Last 6 hours", "24h": "Last 24 hours", "7d": "Last 7 days",
                "30d": "Last 30 days", "90d": "Last 90 days", "custom": "Custom dates"}
REFRESH_CHOICES = {"off": None, "5s": 5_000, "30s": 30_000, "1m": 60_000}
REFRESH_LABELS = {"off": "Refresh off", "5s": "Every 5 s", "30s": "Every 30 s", "1m": "Every minute"}
PAGES = (("Executive", "/"), ("Operations", "/operations"), ("Live", "/live"))
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


def _filter_bar():
    return dbc.Row([
        dbc.Col(dcc.Dropdown(id=SHELL.RANGE, options=[{"label": v, "value": k} for k, v in RANGE_LABELS.items()],
                             value=DEFAULT_FILTERS["range"], clearable=False, searchable=False), xs=12, md=2),
        dbc.Col(dcc.DatePickerRange(id=SHELL.DATES, display_format="YYYY-MM-DD", clearable=False,
                                    minimum_nights=0, className="w-100"), xs=12, md=3, id=SHELL.DATES_COL,
                style={"display": "none"}),
        dbc.Col(dcc.Dropdown(id=SHELL.PARTNERS, multi=True, searchable=True, placeholder="All partners",
                             options=[]), xs=12, md=True),
        dbc.Col(dcc.Dropdown(id=SHELL.REFRESH, options=[{"label": v, "value": k} for k, v in REFRESH_LABELS.items()],
                             value=DEFAULT_FILTERS["refresh"], clearable=False, searchable=False), xs=6, md=2,
                className="refresh-col"),
        dbc.Col(html.Div([
            html.Div(id=SHELL.UPDATED, className="small text-body-secondary"),
            html.Div([dbc.Badge("store", id=SHELL.BADGE_STORE, color="secondary", className="me-1"),
                      dbc.Badge("Prometheus", id=SHELL.BADGE_PROMETHEUS, color="secondary", className="me-1"),
                      dbc.Badge("live: offline", id=SHELL.BADGE_LIVE, color="secondary",
                                title="Live channel (/ws): not connected yet")]),
        ], className="text-md-end"), xs=6, md=2),
    ], className="g-2 align-items-center filter-bar py-2")


def shell():
    """The layout around every page."""
    return html.Div([
        dcc.Location(id=SHELL.URL, refresh="callback-nav"),
        dcc.Store(id=SHELL.FILTERS, data=DEFAULT_FILTERS),
        dcc.Store(id=SHELL.THEME, storage_type="local", data="light"),
        dcc.Interval(id=SHELL.TICK, interval=30_000),
        dcc.Store(id=SHELL.RT_INBOX),
        dcc.Store(id=SHELL.RT_SUBSCRIPTION),
        html.Div(id=SHELL.TOASTS, className="toast-stack"),
        dbc.Navbar(dbc.Container([
            dbc.NavbarBrand([html.I(className="bi bi-graph-up-arrow me-2"), "LuluPay Analytics"], href="/"),
            dbc.Nav(id=SHELL.NAV, navbar=True, className="me-auto"),
            dbc.Switch(id=SHELL.THEME_SWITCH, label="Dark", value=False, className="text-light mb-0"),
        ], fluid=True), color="dark", dark=True, className="mb-2"),
        dbc.Container([
            _filter_bar(),
            html.Div(id=SHELL.BANNER),
            dash.page_container,
        ], fluid=True, className="pb-4"),
    ])
