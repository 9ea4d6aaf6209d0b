"""The dashboards in a real browser against a real store."""
from __future__ import annotations
from services.scope import system_scope

import csv
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from app.factory import background
from layouts.ids import PANEL_IDS, SHELL
from tests.conftest import wait_until
from layouts.capacity_figures import format_availability
from services.queries.dashboard import DashboardData
from services.queries.system import system_summary

pytestmark = pytest.mark.browser


def _yesterday() -> tuple[str, float, float]:
    day = (datetime.now(timezone.utc) - timedelta(days=1)).date()
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    return day.isoformat(), start, start + 86400


def _choose_partner(dash_duo, label: str) -> None:
    """Open the partner multi-select and click the option with this label (as a person would)."""
    dash_duo.find_element(f"#{SHELL.PARTNERS}").click()
    dash_duo.wait_for_element(".dash-dropdown-option", timeout=10)
    option = next(o for o in dash_duo.find_elements(".dash-dropdown-option") if o.text == label)
    option.click()
    dash_duo.wait_for_contains_text(f"#{SHELL.PARTNERS}", label.split(" (")[0], timeout=10)


def _kpi(dash_duo, name: str) -> str:
    """A KPI's text; found again if a refresh replaced the element between finding and reading."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(5):
        try:
            return dash_duo.find_element(f'[data-kpi="{name}"]').text
        except StaleElementReferenceException:
            continue
    return dash_duo.find_element(f'[data-kpi="{name}"]').text


def test_operations_renders_all_twelve_panels(dash_duo, dashboard):
    workers = background(dashboard).start()  # collector + HTTP statistics, as `serve` runs them
    try:
        _operations_renders_all_twelve_panels(dash_duo, dashboard)
    finally:
        workers.stop()


def _operations_renders_all_twelve_panels(dash_duo, dashboard):
    dash_duo.start_server(dashboard)
    wait_until(lambda: dashboard.server.extensions["lulupay"].store.client.get("{lp}:metrics:snapshot"),
               message="a collector sample")
    dash_duo.wait_for_page(dash_duo.server_url + "/operations?refresh=5s")
    for panel in PANEL_IDS:
        dash_duo.wait_for_element(f'[data-panel="{panel}"]', timeout=15)
    dash_duo.wait_for_element('[data-panel="build-rate"] .js-plotly-plot', timeout=20)
    dash_duo.wait_for_element('[data-panel="duration-heatmap"] .js-plotly-plot', timeout=20)
    dash_duo.wait_for_element('[data-panel="stage-durations"] .js-plotly-plot', timeout=20)
    dash_duo.wait_for_element('[data-panel="success-rate-gauge"] .js-plotly-plot', timeout=20)
    dash_duo.wait_for_element('[data-panel="asset-table"] .ag-row', timeout=20)
    for panel in ("cpu-gauge", "memory-gauge", "disk-gauge"):
        dash_duo.wait_for_element(f'[data-panel="{panel}"] .js-plotly-plot', timeout=20)
        # the page refreshes every 5 s: read the text through a wait that re-finds a replaced element
        dash_duo.wait_for_contains_text(f'[data-panel="{panel}"] [data-detail]', "samples", timeout=20)
    # the page's own requests are flushed to the store within one interval; the next refresh shows them
    dash_duo.wait_for_element('[data-panel="http-latency"] [data-source="store"]', timeout=40)
    dash_duo.wait_for_element('[data-panel="http-errors"] .js-plotly-plot', timeout=20)
    # the collector's leader probes /readyz where the app serves (127.0.0.1:8050 by default, dash_duo's
    # port): the Uptime tile shows the share that answered, and how many did not
    assert dashboard.server.extensions["lulupay"].settings.probe_target == "http://127.0.0.1:8050/readyz"
    wait_until(lambda: re.fullmatch(r"\d{1,3}(\.\d{3})? %", _kpi(dash_duo, "uptime")), timeout=40, message="uptime")
    assert re.fullmatch(r"\d+ of [\d,]+ probes down", dash_duo.find_element(
        '[data-kpi="uptime"] + .kpi-detail').text)
    assert dash_duo.get_logs() == [], "browser console errors"


def test_panel_numbers_equal_the_summary_api(dash_duo, dashboard, seeded):
    day, start, end = _yesterday()
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(f"{dash_duo.server_url}/operations?range=custom&from={day}&to={day}")
    summary = seeded.queries.summary(system_scope(start, end))
    dash_duo.wait_for_text_to_equal('[data-kpi="builds_total"]', f"{summary['builds_total']:,}", timeout=20)
    assert _kpi(dash_duo, "success_rate") == f"{summary['success_rate'] * 100:.1f} %"
    assert _kpi(dash_duo, "active_partners") == f"{summary['active_partners']:,}"
    uptime = system_summary(seeded.store, start, end, time.time())["availability"]
    assert _kpi(dash_duo, "uptime") == format_availability(uptime)
    assert not dash_duo.find_elements('[data-kpi="builds_started"]')  # the slot Uptime took


def test_partner_filter_updates_url_and_panels_and_the_link_restores_it(dash_duo, dashboard, seeded):
    day, start, end = _yesterday()
    partner = seeded.queries.partners(system_scope())[0]
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(f"{dash_duo.server_url}/operations?range=custom&from={day}&to={day}")
    everyone = seeded.queries.summary(system_scope(start, end))
    dash_duo.wait_for_text_to_equal('[data-kpi="builds_total"]', f"{everyone['builds_total']:,}", timeout=20)

    _choose_partner(dash_duo, f"{partner['name']} ({partner['partner_id']})")
    one = seeded.queries.summary(system_scope(start, end, [partner["partner_id"]]))
    dash_duo.wait_for_text_to_equal('[data-kpi="builds_total"]', f"{one['builds_total']:,}", timeout=20)
    query = parse_qs(urlparse(dash_duo.driver.current_url).query)
    assert query["partner"] == [partner["partner_id"]] and query["range"] == ["custom"]

    link = dash_duo.driver.current_url
    dash_duo.driver.back()  # the previous filters come back
    dash_duo.wait_for_text_to_equal('[data-kpi="builds_total"]', f"{everyone['builds_total']:,}", timeout=20)

    dash_duo.driver.get(link)  # a copied link reopens the same view
    dash_duo.wait_for_text_to_equal('[data-kpi="builds_total"]', f"{one['builds_total']:,}", timeout=20)
    assert partner["partner_id"] in dash_duo.find_element(f"#{SHELL.PARTNERS}").text


def test_asset_table_csv_matches_the_grid(dash_duo, dashboard, seeded):
    day, start, end = _yesterday()
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(f"{dash_duo.server_url}/operations?range=custom&from={day}&to={day}")
    dash_duo.wait_for_element('[data-panel="asset-table"] .ag-row', timeout=20)
    button = dash_duo.find_element("#ops-asset-csv")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", button)
    target = Path(dash_duo.download_path) / "assets.csv"
    wait_until(lambda: target.exists() and target.stat().st_size > 0, message="the CSV download")
    with target.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    expected = DashboardData(seeded.queries).asset_table(system_scope(start, end))
    assert len(rows) == len(expected) > 0
    by_key = {(r["Type"], r["Format"], r["Density"]): r for r in rows}
    for row in expected:
        got = by_key[(row["asset_type"], row["format"], row["density"])]
        assert int(got["Processed"]) == row["processed"]
        assert int(got["Saved"]) == row["bytes_saved"]
        assert float(got["Compression"]) == pytest.approx(row["compression_ratio"])


def test_executive_page_renders_kpis_trends_and_health(dash_duo, dashboard, seeded):
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(dash_duo.server_url + "/?range=24h")
    dash_duo.wait_for_element('[data-kpi="builds_per_day"]', timeout=20)
    dash_duo.wait_for_element('[data-kpi="uptime"]', timeout=20)
    dash_duo.wait_for_element('[data-panel="exec-trends"] .js-plotly-plot', timeout=20)
    dash_duo.wait_for_element('[data-panel="exec-revenue"] .js-plotly-plot', timeout=20)
    assert "reachable" in dash_duo.find_element('[data-health="Store"]').text
    assert dash_duo.get_logs() == [], "browser console errors"


def test_outage_banner_appears_and_clears_when_the_store_returns(dash_duo, tmp_path):
    from app.factory import create_app
    from app.settings import Settings
    from services.store.embedded import EmbeddedValkey
    from services.container import build_services
    from tests.conftest import free_port

    port = free_port()
    store = EmbeddedValkey(tmp_path / "v1", port=port, persist=True).start()
    try:
        settings = Settings(_env_file=None, redis_url=store.url)
        dash_duo.start_server(create_app(settings, build_services(settings)))
        dash_duo.wait_for_page(dash_duo.server_url + "/operations?refresh=5s")
        dash_duo.wait_for_element('[data-panel="kpi-overview"] [data-kpi="builds_total"]', timeout=20)
        assert not dash_duo.find_elements("#outage-alert")

        store.stop()
        dash_duo.wait_for_element("#outage-alert", timeout=30)
        dash_duo.wait_for_element('[data-panel="kpi-overview"] .panel-error', timeout=30)
        assert dash_duo.find_elements('[data-panel="build-rate"]'), "the rest of the page keeps running"

        store = EmbeddedValkey(tmp_path / "v2", port=port, persist=True).start()
        dash_duo.wait_for_element('[data-panel="kpi-overview"] [data-kpi="builds_total"]', timeout=30)
        dash_duo.wait_for_no_elements("#outage-alert", timeout=30)
    finally:
        store.stop()


def _callback_requests(dash_duo) -> int:
    return dash_duo.driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('_dash-update-component')).length")


def _font_colour(dash_duo, panel: str) -> str:
    return dash_duo.driver.execute_script(
        f"const gd = document.querySelector('[data-panel=\"{panel}\"] .js-plotly-plot');"
        "return gd && gd._fullLayout ? gd._fullLayout.font.color : null;")


def test_first_view_arrives_drawn_without_a_callback_round_and_keeps_the_theme(dash_duo, dashboard, seeded):
    dash_duo.start_server(dashboard)
    url = dash_duo.server_url + "/operations?range=7d&refresh=off"
    dash_duo.wait_for_page(url)
    dash_duo.wait_for_element('[data-panel="build-rate"] .js-plotly-plot .main-svg', timeout=20)
    dash_duo.wait_for_element('[data-panel="asset-table"] .ag-row', timeout=20)
    assert _callback_requests(dash_duo) == 0, "the panels came with the layout"
    light = _font_colour(dash_duo, "build-rate")

    # the switch redraws the panels dark and is remembered (localStorage, and a cookie for the server)
    dash_duo.driver.execute_script(f"document.getElementById('{SHELL.THEME_SWITCH}').click()")
    wait_until(lambda: dash_duo.driver.execute_script(
        "return document.documentElement.getAttribute('data-bs-theme')") == "dark", message="dark page")
    wait_until(lambda: _font_colour(dash_duo, "build-rate") not in (None, light), message="dark figures")
    dark = _font_colour(dash_duo, "build-rate")
    assert dash_duo.driver.get_cookie("lulupay_theme")["value"] == "dark"

    dash_duo.driver.get(url)  # a new load: drawn dark by the server, still without a callback
    dash_duo.wait_for_element('[data-panel="build-rate"] .js-plotly-plot .main-svg', timeout=20)
    wait_until(lambda: _font_colour(dash_duo, "build-rate") == dark, message="dark first view")
    assert dash_duo.find_element(f"#{SHELL.THEME_SWITCH}").is_selected()
    assert _callback_requests(dash_duo) == 0
    assert dash_duo.get_logs() == [], "browser console errors"


def test_charts_follow_their_panel_when_the_window_changes(dash_duo, dashboard, seeded):
    """dcc.Graph's resize calls short-cut when the size is unchanged (tools/plotly-bundle/footer.js)
    — and a real change still resizes the chart."""
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(dash_duo.server_url + "/operations?range=7d&refresh=off")
    dash_duo.wait_for_element('[data-panel="build-rate"] .js-plotly-plot .main-svg', timeout=20)

    def widths():
        return dash_duo.driver.execute_script(
            "const gd = document.querySelector('[data-panel=\"build-rate\"] .js-plotly-plot');"
            "return [Math.round(gd._fullLayout.width), Math.round(parseFloat(getComputedStyle(gd).width))];")

    wait_until(lambda: abs(widths()[0] - widths()[1]) <= 1, message="the chart fills its panel")
    before = widths()[0]
    size = dash_duo.driver.get_window_size()
    dash_duo.driver.set_window_size(size["width"] - 300, size["height"])
    try:
        # (narrower window: the panel is narrower, or wider where the grid stacks the panels)
        wait_until(lambda: abs(widths()[1] - before) > 100 and abs(widths()[0] - widths()[1]) <= 1,
                   message="the chart follows its panel's new width")
    finally:
        dash_duo.driver.set_window_size(size["width"], size["height"])
