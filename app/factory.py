"""The app factory: Flask server + Dash app, services bound once, pages and callbacks registered."""
from __future__ import annotations

import gc
import hashlib
import logging
import re
import time

import dash
import flask
from flask import Flask

from app import auth, guard, logs, observability, ws
from app.dash_json import dash_json, install_callback_encoder
from app.api import BLUEPRINTS, install_app_handlers, json_response
from app.openapi import openapi_document
from app.settings import Settings
from services.container import Background, Services, build_services

__all__ = ["create_app", "background", "server_background", "freeze_startup_objects", "warm_up"]

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
    _install_request_ids(server, settings)  # first: a refused request has its id and its log line too
    observability.install(server, services)  # every request is timed, refused ones too
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


def server_background(server: Flask | None) -> Background | None:
    """`background()` of the app whose Flask server gunicorn loaded (a worker's `wsgi`); None when the
    worker never loaded one."""
    extensions = getattr(server, "extensions", None) or {}
    return extensions.get("lulupay_background")


def _install_request_ids(server: Flask, settings: Settings) -> None:
    """Give every request an id — a sane incoming `X-Request-ID`, else a new one (app/logs.py) — put
    it in the response's `X-Request-ID` and, when request lines are on, log the request with it."""
    log_requests = logs.request_log_enabled(settings)

    @server.before_request
    def _identify_request():
        flask.g.request_id = logs.request_id_for(flask.request.headers.get(logs.REQUEST_ID_HEADER))
        flask.g.request_started = time.perf_counter()

    @server.after_request
    def _echo_and_log_request(response):
        request_id = flask.g.get("request_id")
        if request_id is None:
            return response
        response.headers[logs.REQUEST_ID_HEADER] = request_id
        if log_requests:
            logs.log_request(request_id=request_id, method=flask.request.method, path=flask.request.path,
                             route=_route_of_request(server), status=response.status_code,
                             duration_ms=(time.perf_counter() - flask.g.request_started) * 1000)
        return response


def _route_of_request(server: Flask) -> str:
    """The request's bounded route, as the HTTP metrics name it: the URL rule's template,
    `dash:<callback>` for a Dash callback, `unmatched` for a 404."""
    rule = flask.request.url_rule.rule if flask.request.url_rule is not None else None
    callback = None
    if rule == observability.DASH_CALLBACK_PATH:
        namer = server.extensions.get("lulupay_callback_name")
        callback = namer() if namer is not None else "unknown"
    return observability.route_label(rule, callback)


def warm_up(server: Flask) -> int:
    """Answer one request in this process before it serves (gunicorn's post_worker_init); its status.

    Dash sets itself up on a process's first request (it registers the component scripts it may
    serve, and the pages' router), marking that done *before* doing it: a second request arriving
    meanwhile — a browser loads some twenty scripts at once from a worker that just started — is
    served unprepared, React answers 404 and the page stays blank (seen in the browser tests). The
    request is in process, and neither the metrics nor the request statistics count it."""
    from app.observability import WARM_UP

    with server.test_client() as client:
        return client.get("/healthz", environ_overrides={WARM_UP: True}).status_code


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


# Fields of the page's `_dash-config` that name versions (Dash's, Python's, plotly's, Dash Design
# Kit's) and where Dash looks for a newer one: read only by Dash's dev tools, which are off.
_VERSION_CONFIG_FIELDS = ("dash_version", "python_version", "dash_version_url", "ddk_version", "plotly_version")
# `<name>.v<package version>m<mtime>.<ext>`: Dash's cache-busting fingerprint of a component script.
_FINGERPRINT = re.compile(r"\.v([\w-]+?)m(\d+)\.")


def _opaque_version(version: str) -> str:
    """A package version as a cache buster that does not spell it: the first 10 hex digits of its
    SHA-256 (it still changes when the package does)."""
    return hashlib.sha256(version.encode()).hexdigest()[:10]


class _Dash(dash.Dash):
    """Dash, with the layout (every page's first view, drawn panels included) serialised by
    dash_json, and no package or Python version in the page: the `_dash-config` version fields are
    dropped and the versions in script fingerprints and the favicon's URL are made opaque."""

    def _config(self):
        config = super()._config()
        for field in _VERSION_CONFIG_FIELDS:
            config.pop(field, None)
        config["disable_version_check"] = True
        return config

    def _collect_and_register_resources(self, resources, include_async=True, url_attr="src"):
        sources = super()._collect_and_register_resources(resources, include_async, url_attr)
        return [_without_version(source, url_attr) for source in sources]

    def interpolate_index(self, **kwargs):
        favicon = kwargs.get("favicon", "")
        kwargs["favicon"] = favicon.replace(f"?v={dash.__version__}", f"?v={_opaque_version(dash.__version__)}")
        return super().interpolate_index(**kwargs)

    def serve_layout(self):
        response = self.backend.make_response(dash_json(self.get_layout()), mimetype="application/json")
        # drawn for the page in the Referer and the theme in the cookie: never one visitor's for another
        response.headers["Cache-Control"] = "no-store"
        response.headers["Vary"] = "Referer, Cookie"
        return response


def _without_version(source, url_attr: str):
    """A script or stylesheet source (a URL, or a dict of tag attributes) with the package version of
    a Dash fingerprint made opaque; check_fingerprint (`v[\\w-]+m[0-9a-f]+`) still recognises it."""
    def opaque(url: str) -> str:
        if "/_dash-component-suites/" not in url:
            return url
        return _FINGERPRINT.sub(lambda m: f".v{_opaque_version(m.group(1))}m{m.group(2)}.", url, count=1)

    if isinstance(source, dict):
        return {**source, url_attr: opaque(source[url_attr])} if url_attr in source else source
    return opaque(source)


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
