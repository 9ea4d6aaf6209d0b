"""The app factory: Flask server + Dash app, services bound once, pages and callbacks registered."""
from __future__ import annotations

import gc
import hashlib
import logging

import dash
import flask
from flask import Flask

from app import auth, guard, observability, ws
from app.dash_json import dash_json, install_callback_encoder
from app.api import BLUEPRINTS, install_app_handlers, json_response
from app.openapi import openapi_document
from app.settings import Settings
from services.container import Background, Services, build_services

__all__ = ["create_app", "background"]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, services: Services | None = None) -> dash.Dash:
    """Build the whole app: config → extensions (metrics, auth gate, edge checks) → blueprints →
    Dash pages and callbacks. Defaults, then the environment (Settings()), then what the caller
    passes."""
    settings = settings or Settings()
    services = services or build_services(settings)

    server = Flask(__name__)
    server.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=settings.max_body_bytes + 65536)
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix
        hops = settings.trusted_proxies
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    server.extensions["lulupay"] = services
    observability.install(server, services)  # first: every request is timed, refused ones too
    guard.install_url_bound(server, settings)
    for blueprint in BLUEPRINTS:
        server.register_blueprint(blueprint)
    install_app_handlers(server)
    spec = openapi_document()
    server.add_url_rule("/openapi.json", "openapi", lambda: json_response(spec))
    auth.install(server, services)

    import callbacks
    from callbacks import shell as shell_callbacks
    install_callback_encoder()
    app = _Dash(
        __name__, server=server, use_pages=True, pages_folder="", title="LuluPay Analytics",
        assets_folder=str(_assets_folder()), serve_locally=True, suppress_callback_exceptions=True,
        external_stylesheets=[], update_title=None,
        # served but not put in the page: assets/plotly-preload.js loads it off the critical path
        assets_ignore=r"^plotly-lulupay\.min\.js$",
        routing_callback_inputs=shell_callbacks.ROUTING_INPUTS,
    )
    pages = callbacks.register(app, services)
    app.layout = shell_callbacks.first_view(app, services, pages)
    _serve_assets_for_keeps(app)
    guard.install(server, app, settings)
    observability.label_callbacks(server, app)
    ws.install(server, services)
    server.extensions["lulupay_background"] = Background(services)
    return app


def background(app: dash.Dash) -> Background:
    """The app's per-process background parts (collector, HTTP statistics flusher): `start()` them
    in the serving process after any fork, `stop()` them at shutdown."""
    return app.server.extensions["lulupay_background"]


def freeze_startup_objects() -> int:
    """Exempt everything built so far (modules, settings, the Dash app and its layouts — about
    180,000 objects) from the garbage collector's scans; the number frozen. Call once in a serving
    process, after the app is created and before it serves. Measured on the 90-day demo: a full
    collection, which Python runs every so often in the middle of some request, took 100 ms and now
    takes 6 ms — it was the cause of the odd slow callback (a p95 6× its p50). Those objects live as
    long as the process anyway."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class _Dash(dash.Dash):
    """Dash, with the layout (every page's first view, drawn panels included) serialised by
    dash_json."""

    def serve_layout(self):
        response = self.backend.make_response(dash_json(self.get_layout()), mimetype="application/json")
        # drawn for the page in the Referer and the theme in the cookie: never one visitor's for another
        response.headers["Cache-Control"] = "no-store"
        response.headers["Vary"] = "Referer, Cookie"
        return response


PLOTLY_BUNDLE = "vendor/plotly/plotly-lulupay.min.js"
_INDEX = dash.dash._default_index  # Dash's own page template, plus the bundle preload below


def _serve_assets_for_keeps(app: dash.Dash) -> None:
    """Versioned assets are cached for good by the browser, so a repeat visit (a wall screen's
    every reload) neither revalidates nor recompiles them: V8 keeps compiled code only for scripts
    it finds in the HTTP cache — with `no-cache` it compiled and re-cached the 1.2 MB plotly.js
    bundle (~40 ms producing the code cache alone) on every load.

    - Dash puts `?m=<mtime>` on every asset it links: such a URL names one version of the file.
    - Our plotly.js bundle (loaded by assets/plotly-preload.js, not linked by Dash) gets
      `?v=<content hash>`, announced by a `<link rel=preload>` in the page's head so its download
      starts with the other scripts."""
    bundle = _assets_folder() / PLOTLY_BUNDLE
    version = hashlib.sha256(bundle.read_bytes()).hexdigest()[:12]
    url = f"{app.get_asset_url(PLOTLY_BUNDLE)}?v={version}"
    app.index_string = _INDEX.replace(
        "{%css%}", '{%css%}\n        <link rel="preload" as="script" id="plotly-bundle" href="' + url + '">')

    bundle_path = app.get_asset_url(PLOTLY_BUNDLE)

    @app.server.after_request
    def cache_versioned_assets(response):
        # only the version this process serves: an old instance answering a new URL mid-deploy
        # must not have its file kept for a year under it
        if (response.status_code == 200 and flask.request.path == bundle_path
                and flask.request.args.get("v") == version):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def _assets_folder():
    from pathlib import Path
    return Path(__file__).resolve().parent.parent / "assets"
