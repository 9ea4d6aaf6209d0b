"""OpenID Connect sign-in end to end: the app (in process, login mode) against a local OpenID
provider (oidc-provider-mock, served by werkzeug on a free port), driven with one requests session
through the provider's authorization form and the app's callback."""
from __future__ import annotations

import threading
import time
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tests.conftest import InProcessServer

pytestmark = pytest.mark.integration


class MockProvider:
    """oidc-provider-mock on a free loopback port; `issuer` has no trailing slash."""

    def __init__(self):
        import oidc_provider_mock
        from werkzeug.serving import make_server

        self.app = oidc_provider_mock.app(require_nonce=True)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def set_claims(self, sub: str, claims: dict) -> None:
        answer = requests.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert answer.status_code == 204, (answer.status_code, answer.text[:300])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def provider():
    provider = MockProvider()
    yield provider
    provider.stop()


@pytest.fixture
def oidc_server(login_settings, provider, redis_client):
    """The app in login mode with OIDC pointed at the mock provider."""
    settings = login_settings.model_copy(update={"oidc_issuer": provider.issuer, "oidc_client_id": "lulupay-test",
                                                 "oidc_client_secret": "lulupay-test-secret"})
    assert settings.oidc_enabled
    server = InProcessServer(settings)
    yield server
    server.stop()


def oidc_sign_in(server, provider, sub: str, claims: dict, next_path: str | None = None):
    """Run the whole authorization-code flow for `sub` (claims preset at the provider); returns the
    session and the callback's answer (not followed)."""
    provider.set_claims(sub, claims)
    session = requests.Session()
    start = session.get(server.url + "/login/oidc", params={"next": next_path} if next_path is not None else None,
                        allow_redirects=False, timeout=10)
    assert start.status_code == 302, (start.status_code, start.text[:500])
    authorize_url = start.headers["Location"]
    assert authorize_url.startswith(provider.issuer + "/oauth2/authorize?"), authorize_url
    granted = session.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=10)
    assert granted.status_code == 302, (granted.status_code, granted.text[:500])
    callback_url = granted.headers["Location"]
    assert callback_url.startswith(server.url + "/login/oidc/callback?"), callback_url
    assert "code=" in callback_url and "state=" in callback_url
    callback = session.get(callback_url, allow_redirects=False, timeout=10)
    return session, callback


def landing(server, response) -> str:
    """The path (and query) a redirect of the app sends the browser to, on the app's own origin."""
    assert response.status_code == 302, (response.status_code, response.text[:500])
    target = urlsplit(urljoin(server.url + "/", response.headers["Location"]))
    assert f"{target.scheme}://{target.netloc}" == server.url, response.headers["Location"]
    return target.path + (f"?{target.query}" if target.query else "")


def ingest_two_partners(server) -> None:
    now = int(time.time())
    server.services.ingest.ingest_batch([
        {"id": f"pu-{pid}", "type": "partner.upserted", "ts": now, "partner_id": pid, "name": name,
         "tier": "pro", "monthly_build_quota": 100, "status": "active"}
        for pid, name in (("acme-bank", "Acme Bank"), ("zenith-pay", "Zenith Pay"))])


def test_partner_manager_sees_only_own_partner(oidc_server, provider):
    ingest_two_partners(oidc_server)
    session, callback = oidc_sign_in(oidc_server, provider, "olga-sub", {
        "preferred_username": "olga", "lulupay_role": "partner_manager", "lulupay_partners": ["acme-bank"]})
    assert landing(oidc_server, callback) == "/"

    partners = session.get(oidc_server.url + "/api/v1/partners", timeout=10)
    assert partners.status_code == 200, partners.text[:500]
    records = partners.json()["partners"]
    assert [p["partner_id"] for p in records] == ["acme-bank"]
    assert records[0]["name"] == "Acme Bank"

    own = session.get(oidc_server.url + "/api/v1/partners/acme-bank", timeout=10)
    assert own.status_code == 200 and own.json()["partner_id"] == "acme-bank"
    other = session.get(oidc_server.url + "/api/v1/partners/zenith-pay", timeout=10)
    assert other.status_code == 404, other.text[:500]

    summary = session.get(oidc_server.url + "/api/v1/summary", params={"partner": "zenith-pay"}, timeout=10)
    assert summary.status_code == 403, summary.text[:500]
    assert summary.json()["field"] == "partner"
    assert session.get(oidc_server.url + "/api/v1/summary", timeout=10).status_code == 200


def test_admin_sees_every_partner(oidc_server, provider):
    ingest_two_partners(oidc_server)
    session, callback = oidc_sign_in(oidc_server, provider, "ada-sub",
                                     {"preferred_username": "ada", "lulupay_role": "admin"})
    assert landing(oidc_server, callback) == "/"
    partners = session.get(oidc_server.url + "/api/v1/partners", timeout=10)
    assert partners.status_code == 200, partners.text[:500]
    assert sorted(p["partner_id"] for p in partners.json()["partners"]) == ["acme-bank", "zenith-pay"]
    other = session.get(oidc_server.url + "/api/v1/partners/zenith-pay", timeout=10)
    assert other.status_code == 200 and other.json()["partner_id"] == "zenith-pay"
    summary = session.get(oidc_server.url + "/api/v1/summary", params={"partner": "zenith-pay"}, timeout=10)
    assert summary.status_code == 200, summary.text[:500]


def test_token_without_role_is_refused(oidc_server, provider):
    session, callback = oidc_sign_in(oidc_server, provider, "nobody-sub",
                                     {"preferred_username": "nobody", "email": "nobody@example.com"})
    assert callback.status_code == 403, (callback.status_code, callback.text[:500])
    assert "Single sign-on refused" in callback.text and "lulupay_role" in callback.text
    assert 'id="login-form"' in callback.text
    after = session.get(oidc_server.url + "/api/v1/summary", timeout=10)
    assert after.status_code == 401, (after.status_code, after.text[:500])
    page = session.get(oidc_server.url + "/operations", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?")


def test_partner_manager_without_partners_is_refused(oidc_server, provider):
    session, callback = oidc_sign_in(oidc_server, provider, "pat-sub",
                                     {"preferred_username": "pat", "lulupay_role": "partner_manager"})
    assert callback.status_code == 403, (callback.status_code, callback.text[:500])
    assert "lulupay_partners" in callback.text
    assert session.get(oidc_server.url + "/api/v1/summary", timeout=10).status_code == 401


@pytest.mark.parametrize(("next_path", "expected"), [("/operations", "/operations"), ("//evil.example", "/")])
def test_next_parameter(oidc_server, provider, next_path, expected):
    session, callback = oidc_sign_in(oidc_server, provider, "stan-sub",
                                     {"preferred_username": "stan", "lulupay_role": "staff"}, next_path=next_path)
    assert landing(oidc_server, callback) == expected
    final = session.get(oidc_server.url + expected, allow_redirects=False, timeout=30)
    assert final.status_code == 200, (final.status_code, final.headers.get("Location"))
    assert session.get(oidc_server.url + "/api/v1/summary", timeout=10).status_code == 200
