"""The Partners page in a real browser: every panel drawn from the demo history, the table equal
to the partner service's figures and its CSV equal to the table; honest empty states on an empty
store."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
import redis

from app.factory import create_app
from app.settings import Settings
from layouts.ids import PARTNERS, PARTNERS_PANEL_IDS, SHELL
from services.container import build_services
from services.scope import system_scope
from tests.conftest import wait_until

pytestmark = pytest.mark.browser


def _cells(dash_duo, grid: str, column: str) -> dict[str, str]:
    """row index → text of a column's cells in the rows the grid shows (pinned columns sit in
    their own container: rows are matched by their index)."""
    pairs = dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(c => [c.closest('.ag-row').getAttribute('row-index'), c.textContent]);",
        f'#{grid} .ag-row [col-id="{column}"]')
    return dict(pairs)


def test_partners_page_draws_every_panel_and_the_table_and_csv_hold_the_services_figures(dash_duo, dashboard,
                                                                                         seeded, tmp_path):
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(dash_duo.server_url + "/partners?range=7d&refresh=off")
    for panel in PARTNERS_PANEL_IDS:
        dash_duo.wait_for_element(f'[data-panel="{panel}"]', timeout=15)
    for panel in ("tier-mix", "subscription-changes", "quota-use", "usage-heatmap"):
        dash_duo.wait_for_element(f'[data-panel="{panel}"] .js-plotly-plot', timeout=20)
    dash_duo.wait_for_contains_text('[data-finding="partners"]', "40 partners", timeout=20)
    now = time.time()
    expected = {r["partner_id"]: r for r in seeded.partners.table(system_scope(now - 7 * 86400, now))}
    wait_until(lambda: len(_cells(dash_duo, PARTNERS.TABLE, "partner_id")) >= 10, message="table rows")
    ids, builds = _cells(dash_duo, PARTNERS.TABLE, "partner_id"), _cells(dash_duo, PARTNERS.TABLE, "builds")
    shown = {ids[i]: builds[i] for i in ids if i in builds}
    assert len(shown) >= 10
    for pid, builds in shown.items():
        assert int(builds.replace(",", "")) == pytest.approx(expected[pid]["builds"], abs=2), pid  # live seconds apart
    button = dash_duo.find_element(f"#{PARTNERS.TABLE_CSV}")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", button)
    target = Path(dash_duo.download_path) / "partners.csv"
    wait_until(lambda: target.exists() and target.stat().st_size > 0, message="the CSV download")
    with target.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["Partner"] for r in rows) == sorted(expected)  # every row, not only those drawn
    by_id = {r["Partner"]: r for r in rows}
    for pid, row in expected.items():
        assert int(by_id[pid]["Builds"]) == pytest.approx(row["builds"], abs=2)
        assert by_id[pid]["Tier"] == row["tier"] and by_id[pid]["Churn risk"] == row["churn_level"]
    assert dash_duo.get_logs() == [], "browser console errors"


def test_partners_page_on_an_empty_store_says_so(dash_duo, valkey_url, tmp_path):
    empty_url = valkey_url.rstrip("/") + "/3"
    redis.Redis.from_url(empty_url).flushdb()
    settings = Settings(_env_file=None, redis_url=empty_url, data_dir=tmp_path / "data", collector_enabled=False,
                        forecaster_enabled=False)
    dash_duo.start_server(create_app(settings, build_services(settings)))
    dash_duo.wait_for_page(dash_duo.server_url + "/partners?range=24h&refresh=off")
    dash_duo.wait_for_contains_text(f"#{PARTNERS.SUMMARY}", "No partners to show", timeout=20)
    for body in (PARTNERS.TIER_MIX, PARTNERS.QUOTA, PARTNERS.USAGE):
        dash_duo.wait_for_contains_text(f"#{body}", "No partners to show", timeout=10)
    assert not dash_duo.find_elements(".panel-error")
    assert dash_duo.get_logs() == [], "browser console errors"


def test_one_partner_view_draws_every_panel_with_the_services_figures_and_its_csv(dash_duo, dashboard, seeded):
    from layouts.ids import PARTNER, PARTNER_PANEL_IDS

    now = time.time()
    fleet = system_scope(now - 7 * 86400, now)
    rows = seeded.partners.table(fleet)
    pid = rows[0]["partner_id"]  # the partner with the most builds
    profile = seeded.partners.profile(fleet, pid, rows)
    # (reading them builds the days' facts the page's table reads; the page lists ready days only)
    from callbacks.partner_view import FAILED_ROWS

    expected = seeded.intelligence.builds(fleet.narrowed([pid]), filters={"status": "failed"}, end_row=FAILED_ROWS)
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(dash_duo.server_url + f"/partners/{pid}?range=7d&refresh=off")
    for panel in PARTNER_PANEL_IDS:
        dash_duo.wait_for_element(f'[data-panel="{panel}"]', timeout=15)
    for panel in ("partner-vs-fleet", "quota-burn-down", "partner-usage"):
        dash_duo.wait_for_element(f'[data-panel="{panel}"] .js-plotly-plot', timeout=20)
    builds = dash_duo.find_element('[data-kpi="partner-builds"]').text
    assert int(builds.replace(",", "")) == pytest.approx(profile["partner"]["builds"], abs=2)
    standing = profile["standing"]["builds"]
    assert f"of {standing['of']}" in dash_duo.find_element('[data-kpi="partner-builds"] + .kpi-detail').text
    assert dash_duo.find_element('[data-churn]').get_attribute("data-churn") == profile["partner"]["churn_level"]
    # the nav marks Partners as the current page
    assert dash_duo.find_element(f"#{SHELL.NAV} .nav-link.active").text == "Partners"
    # the recent failed builds and their CSV: every row the grid holds, with a signature each
    wait_until(lambda: dash_duo.driver.execute_script(
        f"return document.querySelectorAll('#{PARTNER.FAILED_GRID} .ag-row').length") > 0, message="failed builds")
    button = dash_duo.find_element(f"#{PARTNER.FAILED_CSV}")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", button)
    target = Path(dash_duo.download_path) / "partner-failed-builds.csv"
    wait_until(lambda: target.exists() and target.stat().st_size > 0, message="the CSV download")
    with target.open(encoding="utf-8-sig") as f:
        failed = list(csv.DictReader(f))
    assert len(failed) == min(FAILED_ROWS, expected["total"]) and all(r["Signature"] for r in failed)
    assert {r["Build"] for r in failed} == {r["build_id"] for r in expected["rows"]}
    assert dash_duo.get_logs() == [], "browser console errors"


def test_selecting_exactly_one_partner_on_the_fleet_page_opens_its_view(dash_duo, dashboard, seeded):
    pid = seeded.queries.partners(system_scope())[1]["partner_id"]
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(dash_duo.server_url + f"/partners?partner={pid}&refresh=off")
    dash_duo.wait_for_element(f'[data-partner-name="{pid}"]', timeout=20)
    # the link back to the fleet drops the partner selection and shows the fleet again
    link = dash_duo.find_element("#partner-fleet-link")
    assert "partner=" not in link.get_attribute("href")
    link.click()
    dash_duo.wait_for_element('[data-panel="top-partners"]', timeout=20)
    # a partner id in the table opens that partner's view
    cell = dash_duo.wait_for_element(f'#{PARTNERS.TABLE} [data-partner-link]', timeout=20)
    chosen = cell.get_attribute("data-partner-link")
    dash_duo.driver.execute_script("arguments[0].click();", cell)
    dash_duo.wait_for_element(f'[data-partner-name="{chosen}"]', timeout=20)
    assert dash_duo.get_logs() == [], "browser console errors"


def test_one_partner_view_on_an_empty_store_says_the_partner_is_not_there(dash_duo, valkey_url, tmp_path):
    empty_url = valkey_url.rstrip("/") + "/3"
    redis.Redis.from_url(empty_url).flushdb()
    settings = Settings(_env_file=None, redis_url=empty_url, data_dir=tmp_path / "data", collector_enabled=False,
                        forecaster_enabled=False)
    dash_duo.start_server(create_app(settings, build_services(settings)))
    dash_duo.wait_for_page(dash_duo.server_url + "/partners/ivory-remit?refresh=off")
    dash_duo.wait_for_contains_text('[data-panel="partner-missing"]', "No such partner", timeout=20)
    assert not dash_duo.find_elements(".panel-error")
    assert dash_duo.get_logs() == [], "browser console errors"
