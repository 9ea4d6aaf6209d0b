"""The app factory: Flask server + Dash app, services bound once, pages and callbacks registered."""
from __future__ import annotations

import logging

import dash
from flask import Flask

from app import observability, ws
from app.api import api, json_response
from app.openapi import openapi_document
from app.settings import Settings
from services.runtime import Services, build_services
from services.realtime import Hub
from services.sysrollups import HttpStats

__all__ = ["create_app", "background"]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, services: Services | None = None) -> dash.Dash:
    """Build the whole app. Defaults, then the environment (Settings()), then what the caller passes."""
    settings = settings or Settings()
    services = services or build_services(settings)

    server = Flask(__name__)
    server.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=settings.max_body_bytes + 65536)
    server.extensions["lulupay"] = services
    server.register_blueprint(api)
    spec = openapi_document()
    server.add_url_rule("/openapi.json", "openapi", lambda: json_response(spec))

    from callbacks import executive as executive_callbacks
    from callbacks import live as live_callbacks
    from callbacks import operations as operations_callbacks
    from callbacks import shell as shell_callbacks
    app = dash.Dash(
        __name__, server=server, use_pages=True, pages_folder="", title="LuluPay Analytics",
        assets_folder=str(_assets_folder()), serve_locally=True, suppress_callback_exceptions=True,
        external_stylesheets=[], update_title=None,
        # served but not put in the page: assets/plotly-preload.js loads it off the critical path
        assets_ignore=r"^plotly-lulupay\.min\.js$",
        routing_callback_inputs=shell_callbacks.ROUTING_INPUTS,
    )
    shell_callbacks.register(app, services)
    operations = operations_callbacks.register(app, services)
    executive = executive_callbacks.register(app, services)
    live = live_callbacks.register(app, services)
    # page path (relative to the app) → (title, draw(filters, theme)): the first view of a page is
    # drawn on the server, by the app's layout for a page load and by Dash Pages on navigation
    pages = {"": ("Executive · LuluPay Analytics", executive.page),
             "operations": ("Operations · LuluPay Analytics", operations.page),
             "live": ("Live · LuluPay Analytics", live.page)}
    for module, name, (title, draw) in (("executive", "Executive", pages[""]),
                                        ("operations", "Operations", pages["operations"]),
                                        ("live", "Live", pages["live"])):
        dash.register_page(module, path="/" + ("" if module == "executive" else module), name=name, title=title,
                           layout=shell_callbacks.page_layout(draw))
    app.layout = shell_callbacks.first_view(app, services, pages)
    http_stats = HttpStats(services.store, interval_s=settings.collector_interval_s, clock=services.clock)
    observability.install(server, app, services, http_stats)
    hub = Hub(services.store, queue_size=settings.ws_queue_size, idle_s=settings.ws_idle_s)
    ws.install(server, services, hub)
    server.extensions["lulupay_hub"] = hub
    server.extensions["lulupay_background"] = observability.Background(services, http_stats,
                                                                        services.partner_labels, hub)
    return app


def background(app: dash.Dash) -> "observability.Background":
    """The app's per-process background parts (collector, HTTP statistics flusher): `start()` them
    in the serving process after any fork, `stop()` them at shutdown."""
    return app.server.extensions["lulupay_background"]


def _assets_folder():
    from pathlib import Path
    return Path(__file__).resolve().parent.parent / "assets"
