"""The app factory: Flask server + Dash app, services bound once, pages and callbacks registered."""
from __future__ import annotations

import logging

import dash
import dash_bootstrap_components as dbc
from flask import Flask

from app.api import api, json_response
from app.openapi import openapi_document
from app.settings import Settings
from services.runtime import Services, build_services

__all__ = ["create_app"]

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

    from layouts import overview as overview_layout
    from callbacks import overview as overview_callbacks

    app = dash.Dash(
        __name__, server=server, use_pages=True, pages_folder="", title="LuluPay Analytics",
        assets_folder=str(_assets_folder()), serve_locally=True, suppress_callback_exceptions=True,
        external_stylesheets=[],
    )
    dash.register_page("overview", path="/", name="Overview", layout=overview_layout.layout)
    app.layout = dbc.Container([
        dbc.NavbarSimple(brand="LuluPay Analytics", color="dark", dark=True, className="mb-3"),
        dash.page_container,
    ], fluid=True)
    overview_callbacks.register(app, services)
    return app


def _assets_folder():
    from pathlib import Path
    return Path(__file__).resolve().parent.parent / "assets"
