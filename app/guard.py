"""Honest HTTP at the edge: security headers on every response, bounded URLs, unknown pages as 404,
and Dash callback requests checked like API input before Dash parses them (a malformed one is a
400 naming what is wrong, never a 500).

Each server-side callback's inputs and state are checked against `PROP_RULES`: a rule per
(component id, property) the app's callbacks take. A callback taking a property without a rule is
refused (fail closed) — tests/integration/test_access.py enumerates the registered callbacks, so a
new one without rules fails there first.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import flask
import orjson
from flask import Flask, request

from layouts.alert_text import DURATIONS
from services.alerting.history import ALERT_STATES, SEVERITIES
from services.queries.buildlog import BUILD_COLUMNS
from services.scope import MAX_PARTNERS_PER_REQUEST
from services.timerange import RANGES
from services.vocabulary import is_partner_id

__all__ = ["install", "install_url_bound", "content_security_policy", "PROP_RULES", "check_callback_request", "CallbackRequestError"]

log = logging.getLogger(__name__)

DASH_UPDATE = "/_dash-update-component"
MAX_CALLBACK_BODY_BYTES = 2 * 1024 * 1024
DASH_CATCH_ALL = "/<path:path>"


class CallbackRequestError(ValueError):
    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def content_security_policy(frame_ancestors: str, script_hashes: list[str]) -> str:
    """The pages' Content-Security-Policy: scripts only from this origin (plus the hashes of
    Dash's own inline scripts), no plugins, no framing unless configured, forms and sockets to
    this origin only. Styles allow inline: Plotly and Dash's components set style attributes."""
    scripts = " ".join(["'self'", *script_hashes])  # Dash gives them quoted
    return "; ".join([
        "default-src 'self'",
        f"script-src {scripts}",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",  # same-origin fetches and the /ws socket
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        f"frame-ancestors {frame_ancestors}",
    ])


# -- callback inputs -------------------------------------------------------------------------
def _none_or(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: v is None or check(v)


def _text(limit: int) -> Callable[[object], bool]:
    return _none_or(lambda v: isinstance(v, str) and len(v) <= limit)


def _count(v: object) -> bool:
    return v is None or (type(v) is int and 0 <= v < 2**53)


def _partner_values(v: object) -> bool:
    if v is None or (isinstance(v, str) and len(v) <= 64):
        return True
    return (isinstance(v, list) and len(v) <= MAX_PARTNERS_PER_REQUEST
            and all(isinstance(p, str) and len(p) <= 64 for p in v))


def _filters(v: object) -> bool:
    from callbacks.filters import check_filters
    from services.scope import ScopeError
    try:
        check_filters(v)
    except ScopeError:
        return False
    return True


_GRID_COLUMNS = BUILD_COLUMNS  # the builds grid's columns are the build log's


def _grid_filter_model(v: object) -> bool:
    """An AG Grid filter model of the builds table: text filters on its columns."""
    return isinstance(v, dict) and len(v) <= len(_GRID_COLUMNS) and all(
        column in _GRID_COLUMNS and isinstance(spec, dict) and len(spec) <= 8
        and spec.get("filterType") == "text" and spec.get("type") == "equals"
        and _text(500)(spec.get("filter")) for column, spec in v.items())


def _grid_request(v: object) -> bool:
    """An AG Grid infinite-model rows request of the builds table (at most 1,000 rows)."""
    if not isinstance(v, dict) or not set(v) <= {"startRow", "endRow", "sortModel", "filterModel", "context", "api"}:
        return False
    if v.get("api") not in (None, {}) or v.get("context") not in (None, {}):  # the grid sends them empty
        return False
    start, end = v.get("startRow"), v.get("endRow")
    if not (_count(start) and _count(end) and start is not None and end is not None and 0 <= end - start <= 1000):
        return False
    sort = v.get("sortModel") or []
    if not isinstance(sort, list) or len(sort) > 4 or not all(
            isinstance(s, dict) and s.get("colId") in _GRID_COLUMNS and s.get("sort") in ("asc", "desc") for s in sort):
        return False
    return v.get("filterModel") is None or _grid_filter_model(v.get("filterModel"))


def _grid_button(actions: tuple[str, ...]) -> Callable[[object], bool]:
    """A grid's cellRendererData from one of its row buttons (assets/grid-functions.js)."""
    keys = {"value", "colId", "rowIndex", "rowId", "timestamp"}
    return lambda v: v is None or (
        isinstance(v, dict) and set(v) <= keys and v.get("value") in actions and _text(64)(v.get("rowId"))
        and _text(64)(v.get("colId")) and _count(v.get("rowIndex"))
        and (v.get("timestamp") is None or (type(v["timestamp"]) in (int, float) and 0 <= v["timestamp"] < 2**53)))


def _action_result(v: object) -> bool:
    """The /alerts page's last action outcome (callbacks/alert_dialogs.py writes it)."""
    return v is None or (isinstance(v, dict) and set(v) <= {"seq", "action", "ok", "message"}
                         and _count(v.get("seq")) and v.get("action") in (None, "acknowledge", "silence", "expire")
                         and isinstance(v.get("ok", False), bool) and _text(2000)(v.get("message")))


def _one_of(*values: str) -> Callable[[object], bool]:
    return lambda v: v is None or (isinstance(v, str) and v in values)


# (component id, property) → does this value look like what the page itself sends?
PROP_RULES: dict[tuple[str, str], Callable[[object], bool]] = {
    ("url", "search"): _text(8192),
    ("url", "pathname"): _none_or(lambda v: isinstance(v, str) and v.startswith("/") and len(v) <= 2048),
    ("_pages_location", "search"): _text(8192),
    # always a path: Dash Pages' router fails on none once a page has a path template
    ("_pages_location", "pathname"): lambda v: isinstance(v, str) and v.startswith("/") and len(v) <= 2048,
    ("filter-range", "value"): _none_or(lambda v: isinstance(v, str) and v in RANGES),
    ("filter-dates", "start_date"): _text(40),
    ("filter-dates", "end_date"): _text(40),
    ("filter-partners", "value"): _partner_values,
    ("filter-refresh", "value"): _text(16),
    ("filters", "data"): _filters,
    ("refresh-tick", "n_intervals"): _count,
    ("theme", "data"): _none_or(lambda v: isinstance(v, str) and v in ("light", "dark")),
    ("ops-asset-csv", "n_clicks"): _count,
    ("builds-forecast-poll", "n_intervals"): _count,
    ("builds-signature-csv", "n_clicks"): _count,
    ("builds-grid-csv", "n_clicks"): _count,
    ("partners-risk-csv", "n_clicks"): _count,
    ("partners-table-csv", "n_clicks"): _count,
    ("assets-table-csv", "n_clicks"): _count,
    ("capacity-sla-csv", "n_clicks"): _count,
    ("partner-id", "data"): _none_or(lambda v: isinstance(v, str) and is_partner_id(v)),
    ("partner-signature-csv", "n_clicks"): _count,
    ("partner-failed-csv", "n_clicks"): _count,
    ("partner-asset-csv", "n_clicks"): _count,
    ("partner-history-csv", "n_clicks"): _count,
    ("builds-grid", "getRowsRequest"): lambda v: v is None or _grid_request(v),
    ("builds-grid", "filterModel"): lambda v: v is None or _grid_filter_model(v),
    ("builds-signature-grid", "cellClicked"): lambda v: v is None or (
        isinstance(v, dict) and len(v) <= 12 and _text(64)(v.get("rowId"))),
    ("alerts-ping", "data"): _count,
    ("alerts-active-grid", "cellRendererData"): _grid_button(("ack", "silence")),
    ("alerts-silences-grid", "cellRendererData"): _grid_button(("expire",)),
    ("alerts-new-silence", "n_clicks"): _count,
    ("alerts-ack-cancel", "n_clicks"): _count,
    ("alerts-ack-confirm", "n_clicks"): _count,
    ("alerts-silence-cancel", "n_clicks"): _count,
    ("alerts-silence-create", "n_clicks"): _count,
    ("alerts-history-csv", "n_clicks"): _count,
    ("alerts-result", "data"): _action_result,
    ("alerts-ack-target", "data"): _text(64),
    ("alerts-ack-comment", "value"): _text(1024),
    ("alerts-silence-matchers", "value"): _text(16384),
    ("alerts-silence-duration", "value"): _one_of(*DURATIONS),
    ("alerts-silence-comment", "value"): _text(1024),
    ("alerts-history-state", "value"): _one_of(*ALERT_STATES),
    ("alerts-history-severity", "value"): _one_of(*SEVERITIES),
    ("alerts-history-rule", "value"): _text(128),
}


def _callback_args(entry: dict, kind: str) -> list[tuple[str, str]]:
    out = []
    for dep in entry.get(kind, []):
        dep_id = dep.get("id")
        out.append((dep_id if isinstance(dep_id, str) else orjson.dumps(dep_id).decode(), dep.get("property")))
    return out


def _output_spec(output: str):
    """(id, property) of a callback's output, or a list of them for a multi-output callback (Dash
    writes those as `..a.children...b.data..`)."""
    if output.startswith("..") and output.endswith(".."):
        return [tuple(part.rsplit(".", 1)) for part in output[2:-2].split("...")]
    return tuple(output.rsplit(".", 1))


def check_callback_request(body: bytes, callback_map: dict) -> None:
    """Raise CallbackRequestError unless `body` is a well-formed request of a registered callback
    whose every input and state value passes its rule."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise CallbackRequestError("body: not JSON", "body") from None
    if not isinstance(doc, dict):
        raise CallbackRequestError("body: must be a JSON object", "body")
    output = doc.get("output")
    if not isinstance(output, str) or output not in callback_map or "callback" not in callback_map[output]:
        raise CallbackRequestError("output: not a registered callback", "output")
    if flask.has_request_context():
        flask.g.callback_output = output  # the metrics middleware labels the request by it
    entry = callback_map[output]
    expected_outputs = _output_spec(output)
    given_outputs = doc.get("outputs")
    if isinstance(expected_outputs, list):
        ok = (isinstance(given_outputs, list) and len(given_outputs) == len(expected_outputs)
              and all(isinstance(g, dict) and (g.get("id"), g.get("property")) == e
                      for g, e in zip(given_outputs, expected_outputs)))
    else:
        ok = isinstance(given_outputs, dict) and (given_outputs.get("id"), given_outputs.get("property")) == expected_outputs
    if not ok:
        raise CallbackRequestError("outputs: not the callback's outputs", "outputs")
    changed = doc.get("changedPropIds", [])
    own_inputs = {f"{dep_id}.{prop}" for dep_id, prop in _callback_args(entry, "inputs")}
    if not isinstance(changed, list) or not all(isinstance(c, str) and c in own_inputs for c in changed):
        raise CallbackRequestError("changedPropIds: must name inputs of this callback", "changedPropIds")
    for kind in ("inputs", "state"):
        given = doc.get(kind, [])
        expected = _callback_args(entry, kind)
        if not isinstance(given, list) or len(given) != len(expected):
            raise CallbackRequestError(f"{kind}: must list the callback's {len(expected)} {kind}", kind)
        for position, (item, (dep_id, prop)) in enumerate(zip(given, expected)):
            if not isinstance(item, dict):
                raise CallbackRequestError(f"{kind}[{position}]: must be an object", kind)
            item_id = item.get("id")
            item_id = item_id if isinstance(item_id, str) else orjson.dumps(item_id).decode()
            if item_id != dep_id or item.get("property") != prop:
                raise CallbackRequestError(f"{kind}[{position}]: expected {dep_id}.{prop}", kind)
            rule = PROP_RULES.get((dep_id, prop))
            if rule is None or not rule(item.get("value")):
                raise CallbackRequestError(f"{kind}[{position}]: a bad value for {dep_id}.{prop}", f"{dep_id}.{prop}")


def install_url_bound(server: Flask, settings) -> None:
    """414 for a URL over LULUPAY_MAX_URL_BYTES — first, before the gate echoes it into a redirect."""

    @server.before_request
    def bounded_url():
        if len(request.full_path.encode()) > settings.max_url_bytes:
            return _json(414, f"URL longer than {settings.max_url_bytes} bytes", "url")
        return None


def install(server: Flask, dash_app, settings) -> None:
    """The edge checks and headers on `server` (call after the auth gate is installed, so an
    anonymous request is refused before its body is looked at)."""
    page_paths: set[str] = set()
    page_templates: list[list[str]] = []  # segments of templated paths ("<name>" = one variable segment)

    def is_page(path: str) -> bool:
        if path in page_paths or path.rstrip("/") in page_paths:
            return True
        segments = path.rstrip("/").split("/")
        # the only path variables are partner ids (/partners/<partner_id>): anything else is no page
        return any(len(t) == len(segments) and all(
            is_partner_id(s) if p.startswith("<") else p == s for p, s in zip(t, segments)) for t in page_templates)

    @server.before_request
    def known_pages_and_callbacks():
        rule = request.url_rule.rule if request.url_rule is not None else None
        if rule == DASH_CATCH_ALL:
            if not page_paths:
                import dash
                for page in dash.page_registry.values():
                    if page.get("path_template"):
                        page_templates.append(dash_app.get_relative_path(page["path_template"]).split("/"))
                    page_paths.add(dash_app.get_relative_path(page["path"]))
            if not is_page(request.path):
                response = flask.make_response(dash_app.index(), 404)
                response.headers["Cache-Control"] = "no-store"
                return response
            return None
        if request.path == DASH_UPDATE and request.method == "POST":
            if request.mimetype != "application/json":
                return _json(400, "a callback request is JSON (Content-Type: application/json)", "Content-Type")
            if request.content_length is not None and request.content_length > MAX_CALLBACK_BODY_BYTES:
                return _json(413, "callback request too large", "body")
            body = request.get_data(cache=True)
            if len(body) > MAX_CALLBACK_BODY_BYTES:
                return _json(413, "callback request too large", "body")
            try:
                check_callback_request(body, dash_app.callback_map)
            except CallbackRequestError as exc:
                log.debug("callback request refused: %s (%s)", exc, body[:300].decode("utf-8", "replace"))
                return _json(400, str(exc), exc.field)
        return None

    from dash.exceptions import DependencyException

    @server.errorhandler(DependencyException)
    def unknown_component_file(_exc):
        # Dash raises (a 500) for a component file it does not serve: a 404 is the truth
        return _json(404, "no such component file", "path")

    # browsers ask for /favicon.ico on pages that name no icon (the sign-in page, JSON): Dash's own
    server.add_url_rule("/favicon.ico", "favicon", lambda: flask.redirect(dash_app.get_relative_path("/_favicon.ico")))

    policy: list[str] = []

    def current_policy() -> str:
        """The policy with the hashes of every inline script Dash writes. Dash registers the last of
        them (Dash Pages' title callback) in its own first-request hook, which a request refused by
        the gate never reaches: the policy is kept only once that has run."""
        if policy:
            return policy[0]
        value = content_security_policy(settings.frame_ancestors, dash_app.csp_hashes())
        if all(getattr(dash_app, "_got_first_request", {"unknown": True}).values()):
            policy.append(value)
        return value

    @server.after_request
    def security_headers(response):
        headers = response.headers
        headers["Content-Security-Policy"] = current_policy()
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        if settings.frame_ancestors.strip() == "'none'":
            headers["X-Frame-Options"] = "DENY"
        return response


def _json(status: int, message: str, field: str):
    response = flask.jsonify({"error": message, "field": field})
    response.status_code = status
    return response
