"""The Alerts page in a real browser: alert states written through AlertStore.save_alerts and their
history through AlertHistory.record (as the engine does), acknowledged and silenced from the page
(the store then says so), a silence expired; on an empty store every panel says honestly why it is
empty; and the banner of every page appears when a critical alert fires."""
from __future__ import annotations

import time

import pytest
import redis
from selenium.webdriver.support.ui import Select

from app.factory import create_app
from app.settings import Settings
from callbacks.alerts import NO_ALERTS, NO_RULES_FILE
from layouts.ids import ALERTS, ALERTS_PANEL_IDS, SHELL
from services.container import build_services
from services.realtime import publish
from services.scope import system_scope
from tests.alert_states import alert_state, seed
from tests.conftest import wait_until

pytestmark = pytest.mark.browser

PREFIX = "alerts-browser"
ACTIVE = f"#{ALERTS.ACTIVE_GRID}"


@pytest.fixture
def world(valkey_url, tmp_path):
    """Services under their own prefix with four alerts (two firing and one pending, one resolved)."""
    client = redis.Redis.from_url(valkey_url)
    for key in client.scan_iter(match="{" + PREFIX + "}*", count=1000):
        client.delete(key)
    settings = Settings(_env_file=None, redis_url=valkey_url, key_prefix=PREFIX, collector_enabled=False,
                        forecaster_enabled=False, data_dir=tmp_path / "data")
    services = build_services(settings)
    now = time.time()
    services.seeded = seed(services, [
        alert_state("LuluPayBuildSuccessRateLow", "critical", "firing", value=0.62, threshold=0.9,
                    started_at=now - 1800, summary="Build success rate 62 % (below 90 % over 5m)"),
        alert_state("LuluPayPartnerBuildSuccessRateLow", "warning", "firing", partner="acme-bank", value=0.81,
                    started_at=now - 600, summary="Partner acme-bank: build success rate 81 % over 30m"),
        alert_state("LuluPayBuildsSlow", "warning", "pending", value=712.0, threshold=600, started_at=now - 120,
                    summary="Build p95 duration 712 s (target 600 s)"),
        alert_state("LuluPayDiskFull", "warning", "resolved", value=93.0, threshold=90, started_at=now - 7200),
    ])
    return services


def _period():
    now = time.time()
    return system_scope(now - 86400, now + 60)


def _click(dash_duo, selector: str) -> None:
    element = dash_duo.wait_for_element(selector, timeout=15)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", element)


def test_alerts_page_acknowledges_silences_and_expires(dash_duo, world):
    dash_duo.start_server(create_app(world.settings, world))
    dash_duo.wait_for_page(f"{dash_duo.server_url}/alerts?refresh=off")
    for panel in ALERTS_PANEL_IDS:
        dash_duo.wait_for_element(f'[data-panel="{panel}"]', timeout=15)
    dash_duo.wait_for_element(f"{ACTIVE} .ag-row", timeout=20)
    rows = dash_duo.find_elements(f"{ACTIVE} .ag-center-cols-container .ag-row")
    assert [r.find_element("css selector", '[col-id="rule"]').text for r in sorted(
        rows, key=lambda r: int(r.get_attribute("row-index")))] == [
        "LuluPayBuildSuccessRateLow", "LuluPayPartnerBuildSuccessRateLow", "LuluPayBuildsSlow"]  # critical, oldest
    critical = dash_duo.find_element(f'{ACTIVE} .ag-row[row-index="0"]')
    assert "62 %" in critical.text and "90 %" in critical.text and "30 min" in critical.text
    assert "LuluPayDiskFull" not in dash_duo.find_element(ACTIVE).text  # resolved: history only
    dash_duo.wait_for_contains_text(f"#{ALERTS.HISTORY_GRID}", "LuluPayDiskFull", timeout=10)
    assert dash_duo.find_element('[data-rule="LuluPayBuildsSlow|warning"]').text.count("not evaluated yet") == 1
    assert "/api/v1/export/alerts.csv?from=" in dash_duo.find_element(f"#{ALERTS.EXPORT}").get_attribute("href")

    # acknowledge the critical alert, with a comment
    ids = {a.rule: a.id for a in world.seeded.values()}
    _click(dash_duo, f'[data-alert-action="ack"][data-row-id="{ids["LuluPayBuildSuccessRateLow"]}"]')
    dash_duo.wait_for_contains_text(f"#{ALERTS.ACK_TITLE}", "Acknowledge LuluPayBuildSuccessRateLow", timeout=10)
    dash_duo.find_element(f"#{ALERTS.ACK_COMMENT}").send_keys("rolling back")
    _click(dash_duo, f"#{ALERTS.ACK_CONFIRM}")
    dash_duo.wait_for_contains_text(f"#{ALERTS.FEEDBACK}", "Acknowledged LuluPayBuildSuccessRateLow", timeout=10)
    dash_duo.wait_for_contains_text(f'{ACTIVE} .ag-row[row-index="0"]', "acknowledged by open access", timeout=10)
    stored = world.alert_store.alert(ids["LuluPayBuildSuccessRateLow"])
    assert stored.acknowledged and stored.ack_by == "open access" and stored.ack_comment == "rolling back"
    dash_duo.wait_for_contains_text(f"#{ALERTS.HISTORY_GRID}", "yes", timeout=10)  # the acknowledgement's change
    assert [c["source"] for c in world.alerts.changes(_period()) if c["acknowledged"]] == ["ack"]

    # silence the partner's alert: the form holds its labels
    _click(dash_duo, f'[data-alert-action="silence"][data-row-id="{ids["LuluPayPartnerBuildSuccessRateLow"]}"]')
    matchers = dash_duo.wait_for_element(f"#{ALERTS.SILENCE_MATCHERS}", timeout=10)
    wait_until(lambda: matchers.get_attribute("value"), message="prefilled matchers")
    assert matchers.get_attribute("value").splitlines() == [
        'alertname="LuluPayPartnerBuildSuccessRateLow"', 'severity="warning"', 'partner_id="acme-bank"']
    Select(dash_duo.find_element(f"#{ALERTS.SILENCE_DURATION}")).select_by_value("4h")
    dash_duo.find_element(f"#{ALERTS.SILENCE_COMMENT}").send_keys("acme deploy")
    _click(dash_duo, f"#{ALERTS.SILENCE_CREATE}")
    dash_duo.wait_for_contains_text(f"#{ALERTS.FEEDBACK}", "Silence created until", timeout=10)
    [silence] = world.alert_store.silences()
    assert silence.comment == "acme deploy" and silence.author == "open access"
    assert round((silence.ends_at - silence.starts_at) / 3600) == 4
    assert {m.name: m.value for m in silence.matchers}["partner_id"] == "acme-bank"
    dash_duo.wait_for_contains_text(f"#{ALERTS.SILENCES_GRID}", "acme deploy", timeout=10)
    dash_duo.wait_for_element(f'{ACTIVE} [data-flag="silenced"]', timeout=10)

    # and end it
    _click(dash_duo, f'[data-alert-action="expire"][data-row-id="{silence.id}"]')
    dash_duo.wait_for_contains_text(f"#{ALERTS.FEEDBACK}", "Silence expired", timeout=10)
    wait_until(lambda: world.alert_store.silence(silence.id).state(time.time()) == "expired", message="expired")
    dash_duo.wait_for_no_elements(f'{ACTIVE} [data-flag="silenced"]', timeout=10)
    assert dash_duo.get_logs() == [], "browser console errors"


def test_empty_store_says_so_and_the_banner_follows_a_critical_alert(dash_duo, valkey_url, tmp_path):
    empty_url = valkey_url.rstrip("/") + "/5"
    redis.Redis.from_url(empty_url).flushdb()
    settings = Settings(_env_file=None, redis_url=empty_url, data_dir=tmp_path / "data", collector_enabled=False,
                        forecaster_enabled=False, alert_rules="off")
    services = build_services(settings)
    dash_duo.start_server(create_app(settings, services))
    dash_duo.wait_for_page(dash_duo.server_url + "/alerts?refresh=off")
    dash_duo.wait_for_contains_text(f"#{ALERTS.ACTIVE_NOTE}", NO_ALERTS, timeout=20)
    dash_duo.wait_for_contains_text(f"#{ALERTS.RULES}", NO_RULES_FILE, timeout=10)
    dash_duo.wait_for_contains_text(f"#{ALERTS.HISTORY_NOTE}", "No alert changed state in this period", timeout=10)
    dash_duo.wait_for_contains_text(f"#{ALERTS.SILENCES_NOTE}", "No silence", timeout=10)
    dash_duo.wait_for_contains_text(f"#{ALERTS.DELIVERY_NOTE}", "No notification sent in this period", timeout=10)
    assert not dash_duo.find_elements(".panel-error") and not dash_duo.find_elements(f"#{SHELL.ALERT_LINK}")

    # another page; then a critical alert fires (the engine writes its state and publishes it)
    dash_duo.driver.get(dash_duo.server_url + "/?refresh=off")
    dash_duo.wait_for_text_to_equal('[data-kpi="active_alerts"]', "0", timeout=20)
    dash_duo.wait_for_text_to_equal(f"#{SHELL.BADGE_LIVE}", "live: connected", timeout=30)
    alert = alert_state("LuluPayBuildSuccessRateLow", "critical", "firing", value=0.5, started_at=time.time() - 60,
                        summary="Build success rate 50 % (below 90 % over 5m)")
    seed(services, [alert])
    publish(services.store, "alerts", {"id": alert.id, "name": alert.rule, "severity": "critical", "state": "firing",
                                       "change": "firing", "summary": alert.summary})
    dash_duo.wait_for_text_to_equal(f"#{SHELL.ALERT_LINK}", "1 critical alert firing", timeout=20)
    _click(dash_duo, f"#{SHELL.ALERT_LINK}")
    dash_duo.wait_for_element(f'[data-alert-action="ack"][data-row-id="{alert.id}"]', timeout=20)
    assert dash_duo.driver.current_url.split("?")[0].endswith("/alerts")
    assert dash_duo.get_logs() == [], "browser console errors"
