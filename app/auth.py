"""Who is asking: sessions (flask-login), personal API tokens, OpenID Connect (Authlib), the login
form (CSRF-protected, rate-limited failed logins), and the gate that every request passes.

The gate (`before_request`) gives every request a `Principal` in `flask.g.principal` or refuses
it: pages → 302 to /login?next=…, the API and Dash's endpoints → 401 JSON, /ws → 401 before the
upgrade. Only the routes in `PUBLIC_PATHS` / `PUBLIC_PREFIXES` (and /metrics and ingest, which
check their own tokens) are served without one. `current_principal()` is how code asks; without a
principal it raises, so a read can never fall back to "everyone".
"""
from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import flask
from flask import Flask, g, redirect, render_template_string, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from limits.storage import RedisStorage

from services.scope import OPEN_ACCESS, Principal, ScopeError
from services.store import StoreUnavailable
from services.vocabulary import ROLES, is_partner_id

__all__ = ["install", "current_principal", "PUBLIC_PATHS", "PUBLIC_PREFIXES", "safe_next"]

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login", "/login/oidc", "/login/oidc/callback", "/openapi.json",
                          "/favicon.ico", "/_favicon.ico"})
PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/")
# Routes that check their own credentials: ingest tokens, the metrics token.
SELF_CHECKED = frozenset({"/api/v1/events", "/metrics"})
JSON_PREFIXES = ("/api/", "/_dash-", "/_reload-hash")
CSRF_EXEMPT = frozenset({"/api/v1/events", "/_dash-update-component"})


class _StoreLimits(RedisStorage):
    """The limiter's counters on the store's own client, whichever it is (one server, the sentinels'
    master, a cluster: limits' own Redis storage takes a connection pool, which a cluster client has
    not), so with its TLS, socket deadlines, breaker and credentials. The counters' keys carry the
    deployment's hash tag (install's key_prefix). The storage URI only names this class."""

    STORAGE_SCHEME = ["lulupay+store"]

    def __init__(self, uri: str, *, client, **options):
        self._client = client
        super().__init__("redis://", **options)  # the redis.Redis it makes of that is never used

    def get_connection(self, readonly: bool = False):
        return self._client


def current_principal() -> Principal:
    """The principal of the current request (set by the gate); raises ScopeError 401 without one."""
    principal = g.get("principal") if flask.has_request_context() else None
    if principal is None:
        raise ScopeError(401, "sign in first", "Authorization")
    return principal


def safe_next(value: str | None) -> str:
    """`next` when it is a path on this site (no scheme, no host, no '//' or backslash tricks), else '/'."""
    if not value or not isinstance(value, str) or len(value) > 2048:
        return "/"
    if not value.startswith("/") or value.startswith("//") or "\\" in value or any(ord(c) < 32 for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


class _SessionUser(UserMixin):
    """flask-login's view of a signed-in principal. The id carries how to check it is still
    valid: `u|<name>|<session epoch>` (a new password ends every session) or `o|<name>` (OIDC:
    the principal lives in the signed session)."""

    def __init__(self, user_id: str, principal: Principal):
        self.id = user_id
        self.principal = principal


def install(server: Flask, services) -> Limiter:
    """Sessions, tokens, login/logout, OIDC and the gate on `server`; returns the rate limiter."""
    settings = services.settings
    users = services.users
    open_access = settings.auth_mode == "open"
    server.config.update(
        SESSION_COOKIE_NAME="lulupay_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.env == "production",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        WTF_CSRF_TIME_LIMIT=None,  # valid for the session's life: a login form left open still works
        WTF_CSRF_SSL_STRICT=False,  # the Referer check; the token and SameSite cookies do the work
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by the gate, after the caller is known (see `gate`)
    )
    csrf = CSRFProtect(server)
    manager = LoginManager(server)
    manager.session_protection = "basic"

    @manager.user_loader
    def load_user(user_id: str):
        kind, _, rest = user_id.partition("|")
        try:
            if kind == "u":
                name, _, epoch = rest.rpartition("|")
                user = users.get(name)
                if user is None or str(user.session_epoch) != epoch:
                    return None
                return _SessionUser(user_id, user.principal("session"))
            if kind == "o":
                claims = session.get("oidc_principal") or {}
                if claims.get("name") != rest:
                    return None
                return _SessionUser(user_id, Principal(rest, claims["role"], frozenset(claims["partners"]), via="oidc"))
        except StoreUnavailable:
            raise
        except (KeyError, TypeError, ValueError):
            return None
        return None

    limiter = Limiter(get_remote_address, app=server, storage_uri=f"{_StoreLimits.STORAGE_SCHEME[0]}://",
                      storage_options={"client": services.store.client},
                      key_prefix=services.store.keys.rate_limits(), strategy="fixed-window",
                      swallow_errors=True, headers_enabled=False)

    def _principal_from_token() -> Principal | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        user = users.user_for_token(token.strip())
        if user is None:
            raise ScopeError(401, "invalid or revoked API token (personal tokens come from `users token`; "
                                  "ingest tokens give no read access)", "Authorization")
        return user.principal("token")

    def _check_csrf() -> None:
        """Every state-changing request that rides on cookies (a form post: sign-in, sign-out; the
        alerts API's POST/DELETE, with `X-CSRFToken`) carries the CSRF token. Not checked: requests
        of a personal-token principal (no ambient credentials: they return before this), ingest,
        and Dash's callback endpoint (the guard takes only application/json, which a cross-site
        form cannot send and a cross-site script cannot send without a CORS preflight this app
        never grants; and the session cookie is SameSite=Lax) — the /alerts page's actions ride on it."""
        if request.method in ("GET", "HEAD", "OPTIONS") or request.path in CSRF_EXEMPT:
            return
        csrf.protect()

    @server.before_request
    def gate():
        path = request.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or path in SELF_CHECKED:
            _check_csrf()
            return None
        if open_access:
            g.principal = OPEN_ACCESS
            _check_csrf()
            return None
        try:
            if path.startswith("/api/") and (principal := _principal_from_token()) is not None:
                g.principal = principal
                return None
            if current_user.is_authenticated:
                g.principal = current_user.principal
                _check_csrf()
                return None
        except ScopeError as exc:
            return _json_error(exc.status, exc.message, exc.field)
        except StoreUnavailable:
            if path.startswith(JSON_PREFIXES) or path == "/ws":
                return _json_error(503, "the store is unreachable; retry later", None, {"Retry-After": "5"})
            return _login_page(safe_next(request.full_path), status=503, oidc=settings.oidc_enabled,
                               error="The store is unreachable, so sessions cannot be checked; retry in a moment.")
        if path.startswith(JSON_PREFIXES) or path == "/ws":
            return _json_error(401, "sign in first (a session from /login, or Authorization: Bearer <personal API "
                                    "token>)", "Authorization")
        target = request.full_path if request.query_string else path
        return redirect("/login?" + urlencode({"next": target}))

    failed_login = lambda response: response.status_code != 302  # noqa: E731 — only failures count

    def _login_user_key() -> str:
        name = request.form.get("username", "")
        return "user:" + (name.strip().lower()[:64] if isinstance(name, str) else "")

    @server.route("/login", methods=["GET", "POST"])
    @limiter.limit(settings.login_rate_limit, key_func=_login_user_key, methods=["POST"], deduct_when=failed_login,
                   scope="login-user")
    @limiter.limit(settings.login_rate_limit, methods=["POST"], deduct_when=failed_login, scope="login-address")
    def login():
        """The sign-in form; POST signs in and redirects to `next` (paths on this site only)."""
        target = safe_next(request.values.get("next"))
        if open_access:
            return redirect(target)
        if request.method == "GET":
            return _login_page(target, oidc=settings.oidc_enabled)
        try:
            user = users.authenticate(request.form.get("username"), request.form.get("password"))
        except StoreUnavailable:
            return _login_page(target, error="The store is unreachable; try again in a moment.",
                               oidc=settings.oidc_enabled, status=503)
        if user is None:
            return _login_page(target, error="Wrong user name or password.", oidc=settings.oidc_enabled, status=401)
        _sign_in(f"u|{user.name}|{user.session_epoch}", user.principal("session"))
        return redirect(target)

    @server.post("/logout")
    def logout():
        """End the session (a form post with the CSRF token)."""
        logout_user()
        session.clear()
        return redirect("/login")

    @server.errorhandler(CSRFError)
    def _csrf_failed(exc: CSRFError):
        if request.path.startswith(JSON_PREFIXES):
            return _json_error(400, f"CSRF check failed: {exc.description}", "csrf_token")
        return _login_page("/", error="The form expired or did not come from this site; please sign in again.",
                           oidc=settings.oidc_enabled, status=400)

    @server.errorhandler(429)
    def _too_many(exc):
        if request.path == "/login":
            return _login_page(safe_next(request.values.get("next")), status=429, oidc=settings.oidc_enabled,
                               error="Too many failed sign-ins; wait a minute and try again.")
        return _json_error(429, "too many requests", None)

    if settings.oidc_enabled:
        _install_oidc(server, settings)
    return limiter


def _sign_in(user_id: str, principal: Principal) -> None:
    session.clear()  # a fresh session: nothing from before sign-in survives (session fixation)
    session.permanent = True
    login_user(_SessionUser(user_id, principal))


def _json_error(status: int, message: str, field: str | None, headers: dict | None = None):
    body = {"error": message}
    if field:
        body["field"] = field
    response = flask.jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _install_oidc(server: Flask, settings) -> None:
    """Sign-in with an OpenID Connect provider (Authlib). Claims → access: the role from
    `LULUPAY_OIDC_ROLE_CLAIM` (admin, staff or partner_manager; else `LULUPAY_OIDC_DEFAULT_ROLE`,
    else refused), the partners of a partner manager from `LULUPAY_OIDC_PARTNERS_CLAIM` (a list of
    partner ids, or one id); the name from preferred_username, email or sub."""
    from authlib.integrations.flask_client import OAuth, OAuthError

    oauth = OAuth(server)
    oauth.register("oidc", server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
                   client_id=settings.oidc_client_id, client_secret=settings.oidc_client_secret,
                   client_kwargs={"scope": settings.oidc_scopes, "default_timeout": 10})

    @server.get("/login/oidc")
    def login_oidc():
        session["oidc_next"] = safe_next(request.args.get("next"))
        return oauth.oidc.authorize_redirect(flask.url_for("login_oidc_callback", _external=True))

    @server.get("/login/oidc/callback")
    def login_oidc_callback():
        try:
            token = oauth.oidc.authorize_access_token()
        except OAuthError as exc:
            return _login_page("/", error=f"Single sign-on failed: {exc.error}", oidc=True, status=400)
        claims = dict(token.get("userinfo") or {})
        try:
            principal = oidc_principal(claims, settings)
        except ValueError as exc:
            return _login_page("/", error=f"Single sign-on refused: {exc}", oidc=True, status=403)
        target = session.pop("oidc_next", "/")
        _sign_in(f"o|{principal.name}", principal)
        session["oidc_principal"] = {"name": principal.name, "role": principal.role,
                                     "partners": sorted(principal.partners)}
        return redirect(safe_next(target))


def oidc_principal(claims: dict, settings) -> Principal:
    """The principal of an OIDC user's claims (ValueError says why a user is refused)."""
    name = claims.get("preferred_username") or claims.get("email") or claims.get("sub")
    if not isinstance(name, str) or not name or len(name) > 200:
        raise ValueError("the token names no user")
    role = claims.get(settings.oidc_role_claim, settings.oidc_default_role)
    if role not in ROLES:
        raise ValueError(f"no role: the {settings.oidc_role_claim!r} claim must be one of {', '.join(ROLES)}")
    partners = claims.get(settings.oidc_partners_claim) or []
    if isinstance(partners, str):
        partners = [partners]
    if not isinstance(partners, list) or not all(is_partner_id(p) for p in partners):
        raise ValueError(f"the {settings.oidc_partners_claim!r} claim must be a list of partner ids")
    if role == "partner_manager" and not partners:
        raise ValueError(f"a partner manager needs partners in the {settings.oidc_partners_claim!r} claim")
    return Principal(name, role, frozenset(partners) if role == "partner_manager" else frozenset(), via="oidc")


_LOGIN_PAGE = """<!doctype html>
<html lang="en" data-bs-theme="light"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · LuluPay Analytics</title>
<link rel="stylesheet" href="/assets/vendor/bootstrap.min.css">
<link rel="stylesheet" href="/assets/vendor/bootstrap-icons.min.css">
<link rel="stylesheet" href="/assets/app.css">
<link rel="icon" href="/_favicon.ico">
</head><body class="login-page">
<main class="login-card card shadow-sm">
  <div class="card-body p-4">
    <h1 class="h4 mb-1"><i class="bi bi-graph-up-arrow me-2"></i>LuluPay Analytics</h1>
    <p class="text-body-secondary small mb-3">Sign in to see the dashboards.</p>
    {% if error %}<div class="alert alert-danger py-2" role="alert" id="login-error">{{ error }}</div>{% endif %}
    <form method="post" action="/login" id="login-form">
      <input type="hidden" name="csrf_token" value="{{ csrf }}">
      <input type="hidden" name="next" value="{{ target }}">
      <div class="mb-2"><label class="form-label" for="username">User name</label>
        <input class="form-control" id="username" name="username" autocomplete="username" required autofocus></div>
      <div class="mb-3"><label class="form-label" for="password">Password</label>
        <input class="form-control" id="password" name="password" type="password" autocomplete="current-password" required></div>
      <button class="btn btn-primary w-100" type="submit" id="login-submit">Sign in</button>
    </form>
    {% if oidc %}<a class="btn btn-outline-secondary w-100 mt-2" id="login-oidc"
       href="/login/oidc?next={{ target | urlencode }}">Sign in with single sign-on</a>{% endif %}
  </div>
</main></body></html>"""


def _login_page(target: str, *, error: str | None = None, oidc: bool = False, status: int = 200):
    html = render_template_string(_LOGIN_PAGE, error=error, target=target, oidc=oidc, csrf=generate_csrf())
    response = flask.make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    return response

