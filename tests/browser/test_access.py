"""Signing in as a person would, in a real browser: a partner manager sees one partner, and a
partner name full of markup is shown as text everywhere."""
from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from app.factory import create_app
from layouts.ids import SHELL
from services.container import build_services
from services.scope import system_scope
from tests.conftest import wait_until

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
MARKUP = '<img src=x onerror="window.__pwned=1"><b id="evil">Evil</b> & Co'


@pytest.fixture
def login_dashboard(seeded):
    """The seeded store served in login mode, with a partner whose name is markup and two users."""
    settings = seeded.settings.model_copy(update={"auth": "login", "collector_enabled": False})
    services = build_services(settings)
    now = time.time()
    services.ingest.ingest_batch([
        {"id": "markup-p", "type": "partner.upserted", "ts": now - 60, "partner_id": "markup-co", "name": MARKUP,
         "tier": "pro", "monthly_build_quota": 100, "status": "active"},
        {"id": "markup-s", "type": "build.started", "ts": now - 30, "partner_id": "markup-co",
         "build_id": "markup-build", "build_type": "debug", "app_version": "<i>1.0</i>"}])
    partner = services.queries.partners(system_scope())[0]["partner_id"]
    for name in ("ada", "pat"):
        if services.users.get(name):
            services.users.remove(name)
    services.users.add("ada", "admin", [], PASSWORD)
    services.users.add("pat", "partner_manager", [partner], PASSWORD)
    return create_app(settings, services), services, partner


def _sign_in(dash_duo, name: str, target: str) -> None:
    dash_duo.driver.get(dash_duo.server.url + target)
    dash_duo.wait_for_element("#login-form", timeout=15)
    dash_duo.find_element("#username").send_keys(name)
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_element(f"#{SHELL.USER}", timeout=20)


def _options(dash_duo) -> list[str]:
    dash_duo.find_element(f"#{SHELL.PARTNERS}").click()
    dash_duo.wait_for_element(".dash-dropdown-option", timeout=10)
    labels = [o.text for o in dash_duo.find_elements(".dash-dropdown-option")]
    dash_duo.driver.switch_to.active_element.send_keys(Keys.ESCAPE)  # close the menu
    return labels


def test_partner_manager_sees_one_partner_and_only_its_numbers(dash_duo, login_dashboard):
    app, services, partner = login_dashboard
    dash_duo.start_server(app, navigate=False)
    _sign_in(dash_duo, "pat", "/operations?range=24h")
    assert "/operations" in dash_duo.driver.current_url
    dash_duo.wait_for_contains_text(f"#{SHELL.USER}", "pat", timeout=10)
    options = _options(dash_duo)
    assert len(options) == 1 and options[0].endswith(f"({partner})")
    end = time.time()
    mine = services.queries.summary(system_scope(end - 86400, end, [partner]))["builds_total"]
    everyone = services.queries.summary(system_scope(end - 86400, end))["builds_total"]
    assert mine < everyone
    wait_until(lambda: dash_duo.find_element('[data-kpi="builds_total"]').text.replace(",", "") == str(mine),
               timeout=20, message="the partner's own build count")
    # asking for another partner in the address shows nothing of it: the filter drops it, and the
    # page shows the manager's own partner
    dash_duo.driver.get(dash_duo.server.url + "/operations?partner=markup-co")
    dash_duo.wait_for_element('[data-kpi="builds_total"]', timeout=20)
    assert MARKUP not in dash_duo.driver.page_source and "markup-co" not in _options(dash_duo)[0]
    wait_until(lambda: dash_duo.find_element('[data-kpi="builds_total"]').text.replace(",", "") == str(mine),
               timeout=20, message="still the partner's own build count")


def test_markup_in_a_partner_name_is_shown_as_text(dash_duo, login_dashboard):
    app, _services, _partner = login_dashboard
    dash_duo.start_server(app, navigate=False)
    _sign_in(dash_duo, "ada", "/live?partner=markup-co")
    for page in ("/live?partner=markup-co", "/operations?partner=markup-co", "/?partner=markup-co"):
        dash_duo.driver.get(dash_duo.server.url + page)
        dash_duo.wait_for_element(f"#{SHELL.PARTNERS}", timeout=20)
        dash_duo.wait_for_contains_text(f"#{SHELL.PARTNERS}", "Evil</b> & Co", timeout=20)
        if page.startswith("/live"):
            dash_duo.wait_for_contains_text("#live-running", "Evil</b> & Co", timeout=20)
        assert dash_duo.driver.find_elements(By.ID, "evil") == [], f"markup rendered as HTML on {page}"
        assert dash_duo.driver.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
        assert dash_duo.driver.execute_script("return window.__pwned") is None


def test_one_partner_view_shows_a_managers_partner_and_nothing_of_another(dash_duo, login_dashboard):
    app, services, partner = login_dashboard
    dash_duo.start_server(app, navigate=False)
    _sign_in(dash_duo, "pat", f"/partners/{partner}?range=24h&refresh=off")
    dash_duo.wait_for_element(f'[data-partner-name="{partner}"]', timeout=20)
    # "the fleet" of a manager of one partner is that partner: its rank is 1 of 1
    dash_duo.wait_for_contains_text('[data-kpi="partner-builds"] + .kpi-detail', "#1 of 1", timeout=20)
    # another partner's view (one that exists) looks exactly like one that does not
    for other in ("markup-co", "no-such-partner"):
        dash_duo.driver.get(dash_duo.server.url + f"/partners/{other}")
        dash_duo.wait_for_element('[data-panel="partner-missing"]', timeout=20)
        assert "No such partner among the partners you may see" in dash_duo.find_element(
            '[data-panel="partner-missing"]').text
        assert MARKUP not in dash_duo.driver.page_source and other not in dash_duo.find_element("body").text
    # an admin sees the markup partner's view with its name as text
    dash_duo.driver.delete_all_cookies()
    _sign_in(dash_duo, "ada", "/partners/markup-co")
    dash_duo.wait_for_contains_text('[data-partner-name="markup-co"]', "Evil</b> & Co", timeout=20)
    assert dash_duo.driver.find_elements(By.ID, "evil") == []
    assert dash_duo.driver.execute_script("return window.__pwned") is None
