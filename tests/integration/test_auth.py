"""Sign-in, sessions, tokens, rate limits, CSRF, production rules and security headers, against a
real server on a real store."""
from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest
import requests

from app.settings import Settings
from tests.conftest import ROOT, InProcessServer, server_env, sign_in

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


@pytest.fixture
def server(login_server):
    login_server.services.users.add("ada", "admin", [], PASSWORD)
    login_server.services.users.add("pat", "partner_manager", ["acme"], PASSWORD)
    return login_server


def _csrf(session: requests.Session, url: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', session.get(url + "/login", timeout=10).text).group(1)


def test_pages_redirect_to_login_and_back_after_signing_in(server):
    session = requests.Session()
    first = session.get(server.url + "/operations?range=7d", allow_redirects=False, timeout=10)
    assert first.status_code == 302 and first.headers["Location"] == "/login?next=%2Foperations%3Frange%3D7d"
    token = _csrf(session, server.url)
    answer = session.post(server.url + "/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token,
                                                       "next": "/operations?range=7d"}, allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["Location"] == "/operations?range=7d"
    cookie = next(c for c in answer.raw.headers.getlist("Set-Cookie") if c.startswith("lulupay_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # Secure in production
    assert session.get(server.url + "/operations", allow_redirects=False, timeout=10).status_code == 200
    assert session.get(server.url + "/api/v1/summary", timeout=10).status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_next_only_goes_to_paths_on_this_site(server, target):
    session = requests.Session()
    token = _csrf(session, server.url)
    answer = session.post(server.url + "/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token,
                                                       "next": target}, allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"


def test_wrong_password_and_unknown_user_get_the_same_answer(server):
    answers = []
    for name in ("ada", "nobody-by-this-name"):
        session = requests.Session()
        token = _csrf(session, server.url)
        answers.append(session.post(server.url + "/login", data={"username": name, "password": "wrong password!",
                                                                  "csrf_token": token}, allow_redirects=False))
    assert [a.status_code for a in answers] == [401, 401]
    messages = [re.search(r'id="login-error">([^<]+)<', a.text).group(1) for a in answers]
    assert messages[0] == messages[1] == "Wrong user name or password."


def test_failed_logins_are_limited_per_user_name(server):
    session = requests.Session()
    token = _csrf(session, server.url)
    statuses = [session.post(server.url + "/login", data={"username": "ada", "password": f"wrong-{i}-password",
                                                          "csrf_token": token}, allow_redirects=False).status_code
                for i in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    # the right password is refused too while the limit holds
    refused = session.post(server.url + "/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token},
                           allow_redirects=False)
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
    # another user name from the same address still has its own budget... until the address's runs out
    other = session.post(server.url + "/login", data={"username": "pat", "password": PASSWORD, "csrf_token": token},
                         allow_redirects=False)
    assert other.status_code == 429  # the address made 11 failed attempts within the minute


def test_successful_logins_do_not_count_against_the_limit(server):
    for _ in range(12):
        sign_in(server.url, "ada", PASSWORD)


def test_form_posts_need_the_csrf_token(server):
    session = requests.Session()
    session.get(server.url + "/login", timeout=10)
    answer = session.post(server.url + "/login", data={"username": "ada", "password": PASSWORD}, allow_redirects=False)
    assert answer.status_code == 400 and "did not come from this site" in answer.text
    signed = sign_in(server.url, "ada", PASSWORD)
    assert signed.post(server.url + "/logout", allow_redirects=False).status_code == 400
    assert signed.get(server.url + "/api/v1/summary", timeout=10).status_code == 200  # still signed in


def test_logout_ends_the_session(server):
    session = sign_in(server.url, "ada", PASSWORD)
    page = session.get(server.url + "/_dash-layout", headers={"Referer": server.url + "/operations"}, timeout=20)
    token = re.search(r'"name":"csrf_token"[^}]*"value":"([^"]+)"|"value":"([^"]+)"[^}]*"name":"csrf_token"', page.text)
    token = next(t for t in token.groups() if t)
    answer = session.post(server.url + "/logout", data={"csrf_token": token}, allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert session.get(server.url + "/api/v1/summary", timeout=10).status_code == 401


def test_a_new_password_ends_every_session(server):
    session = sign_in(server.url, "pat", PASSWORD)
    assert session.get(server.url + "/api/v1/summary", timeout=10).status_code == 200
    server.services.users.set_password("pat", "another long password")
    assert session.get(server.url + "/api/v1/summary", timeout=10).status_code == 401
    sign_in(server.url, "pat", "another long password")


def test_tokens_are_stored_hashed_and_shown_once(server, redis_client):
    token = server.services.users.new_token("ada")
    assert token.startswith("lpt_") and len(token) > 40
    dump = b"".join(v for k in redis_client.scan_iter(match="*auth*") for v in
                    (redis_client.hvals(k) if redis_client.type(k) == b"hash" else redis_client.smembers(k)))
    assert token.encode() not in dump and PASSWORD.encode() not in dump and b"$argon2" in dump
    assert requests.get(server.url + "/api/v1/summary", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert requests.get(server.url + "/api/v1/summary", headers={"Authorization": "Bearer lpt_forged"}).status_code == 401
    # personal tokens are for the API, not the pages
    assert requests.get(server.url + "/operations", headers={"Authorization": f"Bearer {token}"},
                        allow_redirects=False).status_code == 302


def test_security_headers_on_pages_and_api(server):
    for path in ("/login", "/healthz", "/api/v1/summary"):
        headers = requests.get(server.url + path, timeout=10).headers
        policy = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        assert re.search(r"script-src 'self'( 'sha256-[^']+')+;", policy), policy
        assert "unsafe-eval" not in policy and "script-src 'self' 'unsafe-inline'" not in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["X-Frame-Options"] == "DENY"


def test_frame_ancestors_can_allow_a_wall_screen(login_settings, redis_client):
    server = InProcessServer(login_settings.model_copy(update={"frame_ancestors": "'self' https://wall.example"}))
    try:
        headers = requests.get(server.url + "/login", timeout=10).headers
        assert "frame-ancestors 'self' https://wall.example" in headers["Content-Security-Policy"]
        assert "X-Frame-Options" not in headers
    finally:
        server.stop()


def test_metrics_token_guards_metrics(login_settings, redis_client):
    server = InProcessServer(login_settings.model_copy(update={"metrics_token": "scrape-secret-123"}))
    try:
        assert requests.get(server.url + "/metrics", timeout=10).status_code == 401
        ok = requests.get(server.url + "/metrics", headers={"Authorization": "Bearer scrape-secret-123"}, timeout=10)
        assert ok.status_code == 200 and "lulupay_builds_total" in ok.text
    finally:
        server.stop()


def test_production_refuses_open_access_and_defaults_to_login(valkey_url):
    base = dict(_env_file=None, redis_url=valkey_url, env="production", secret_key=secrets.token_urlsafe(32), ingest_tokens=secrets.token_urlsafe(32))
    with pytest.raises(ValueError, match="LULUPAY_AUTH=open"):
        Settings(**base, auth="open")
    assert Settings(**base).auth_mode == "login"
    assert Settings(_env_file=None, redis_url=valkey_url).auth_mode == "open"


def test_production_shows_the_login_page_first_with_secure_cookies(valkey_url, redis_client, tmp_path):
    settings = Settings(_env_file=None, redis_url=valkey_url, env="production", secret_key=secrets.token_urlsafe(32),
                        ingest_tokens=secrets.token_urlsafe(32), data_dir=tmp_path, collector_enabled=False)
    server = InProcessServer(settings)
    try:
        server.services.users.add("ada", "admin", [], PASSWORD)
        first = requests.get(server.url + "/", allow_redirects=False, timeout=10)
        assert first.status_code == 302 and first.headers["Location"].startswith("/login")
        # the session cookie (it already carries the form's CSRF secret) is Secure: over plain
        # HTTP a browser would not send it back, so production runs behind TLS
        form = requests.get(server.url + "/login", timeout=10)
        cookie = next(c for c in form.raw.headers.getlist("Set-Cookie") if c.startswith("lulupay_session="))
        assert form.status_code == 200 and "Secure" in cookie and "HttpOnly" in cookie
    finally:
        server.stop()


def test_open_access_says_so_on_every_page(settings, redis_client):
    server = InProcessServer(settings)
    try:
        for page in ("/", "/operations", "/live"):
            layout = requests.get(server.url + "/_dash-layout", headers={"Referer": server.url + page}, timeout=20)
            assert "Open access: no sign-in" in layout.text, page
        assert requests.get(server.url + "/login", allow_redirects=False).status_code == 302
    finally:
        server.stop()


def test_users_commands(valkey_url, redis_client, tmp_path):
    env = server_env(REDIS_URL=valkey_url, LULUPAY_DATA_DIR=str(tmp_path))

    def cli(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "app", "users", *args], cwd=ROOT, env=env, input=stdin,
                              capture_output=True, text=True, timeout=60)

    added = cli("add", "pat", "--role", "partner_manager", "--partner", "acme", "--partner", "zenith",
                stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "pat\tpartner_manager\tacme,zenith" in cli("list").stdout
    assert cli("add", "pat", "--role", "staff", stdin=PASSWORD + "\n").returncode != 0  # taken
    assert "at least one --partner" in cli("add", "pm2", "--role", "partner_manager", stdin=PASSWORD + "\n").stderr
    assert "10 to" in cli("add", "short", "--role", "staff", stdin="short\n").stderr
    token = cli("token", "pat").stdout.strip()
    assert token.startswith("lpt_")
    assert "revoked 1 token(s)" in cli("revoke-tokens", "pat").stdout
    assert cli("set-password", "pat", stdin="a brand new password\n").returncode == 0
    assert cli("remove", "pat").returncode == 0 and "pat" not in cli("list").stdout


def test_a_removed_user_added_again_does_not_get_old_sessions_back(server):
    session = sign_in(server.url, "pat", PASSWORD)
    assert server.services.users.remove("pat")
    assert session.get(server.url + "/api/v1/summary", timeout=10).status_code == 401
    server.services.users.add("pat", "partner_manager", ["acme"], PASSWORD)
    assert session.get(server.url + "/api/v1/summary", timeout=10).status_code == 401


def test_behind_a_trusted_proxy_the_limit_counts_the_client_address(login_settings, redis_client):
    server = InProcessServer(login_settings.model_copy(update={"trusted_proxies": 1}))
    try:
        server.services.users.add("ada", "admin", [], PASSWORD)
        session = requests.Session()
        token = _csrf(session, server.url)

        def attempt(client_address: str, name: str) -> int:
            return session.post(server.url + "/login", headers={"X-Forwarded-For": client_address},
                                data={"username": name, "password": "wrong password!", "csrf_token": token},
                                allow_redirects=False).status_code

        assert [attempt("203.0.113.7", f"user{i}") for i in range(11)][-1] == 429  # one address, many names
        assert attempt("203.0.113.8", "someone-else") == 401  # another client behind the same proxy
    finally:
        server.stop()


def test_the_policy_allows_every_inline_script_of_the_page_even_after_a_refused_first_request(server):
    import base64
    import hashlib

    # the very first request of this server is refused by the gate (before Dash sets itself up)
    assert requests.get(server.url + "/operations", allow_redirects=False, timeout=10).status_code == 302
    session = sign_in(server.url, "ada", PASSWORD)
    page = session.get(server.url + "/operations", timeout=20)
    policy = page.headers["Content-Security-Policy"]
    html = re.sub(r"<!--.*?-->", "", page.text, flags=re.S)  # an IE conditional comment never runs
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", html, re.S)
    assert inline, "the page has inline scripts (Dash's renderer and clientside callbacks)"
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy, script[:80]


def test_a_bearer_header_does_not_skip_the_csrf_check_of_a_form(server):
    session = requests.Session()
    session.get(server.url + "/login", timeout=10)
    answer = session.post(server.url + "/login", headers={"Authorization": "Bearer anything"},
                          data={"username": "ada", "password": PASSWORD}, allow_redirects=False)
    assert answer.status_code == 400


def test_an_overlong_url_is_414_before_the_sign_in_redirect(server):
    answer = requests.get(server.url + "/operations?x=" + "a" * 9000, allow_redirects=False, timeout=10)
    assert answer.status_code == 414
