"""The build intelligence page in a real browser against a real store."""
from __future__ import annotations

import time

import pytest

from layouts.ids import BUILDS, BUILDS_PANEL_IDS
from services.scope import system_scope
from tests.conftest import wait_until

pytestmark = pytest.mark.browser


def _cells(dash_duo, grid: str, column: str) -> list[str]:
    """The texts of a column's cells in the rows the grid shows (read in one script, so a grid
    redrawing its rows meanwhile cannot leave a stale element behind)."""
    return dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(c => c.textContent);",
        f'#{grid} .ag-center-cols-container .ag-row [col-id="{column}"]')


def test_builds_page_shows_every_panel_and_a_signature_click_filters_the_builds(dash_duo, dashboard, seeded):
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(dash_duo.server_url + "/builds?range=7d")
    for panel in BUILDS_PANEL_IDS:
        dash_duo.wait_for_element(f'[data-panel="{panel}"]', timeout=15)
    for panel in ("success-trend", "volume-trend", "duration-percentiles", "stage-bottlenecks", "stage-trend"):
        dash_duo.wait_for_element(f'[data-panel="{panel}"] .js-plotly-plot', timeout=20)
    dash_duo.wait_for_contains_text('[data-finding="bottleneck"]', "drives slow builds", timeout=20)
    dash_duo.wait_for_element(f'#{BUILDS.SIGNATURE_GRID} .ag-row', timeout=20)
    dash_duo.wait_for_element(f'#{BUILDS.GRID} .ag-row [col-id="build_id"]', timeout=20)

    now = time.time()
    failures = seeded.intelligence.failures(system_scope(now - 7 * 86400, now))
    top = failures["signatures"][0]
    # the signature grid is sorted by count: its first row is the top signature
    wait_until(lambda: _cells(dash_duo, BUILDS.SIGNATURE_GRID, "signature")[:1] == [top["signature"]],
               message="the top signature first in the grid")
    row = dash_duo.find_element(f'#{BUILDS.SIGNATURE_GRID} .ag-center-cols-container .ag-row[row-index="0"] '
                                '[col-id="pattern"]')
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", row)
    wait_until(lambda: (cells := _cells(dash_duo, BUILDS.GRID, "error_signature"))
               and set(cells) == {top["signature"]}, message="the builds table filtered to the signature")
    shown = len(_cells(dash_duo, BUILDS.GRID, "build_id"))
    assert shown == min(top["count"], shown) and shown > 0
    assert dash_duo.get_logs() == [], "browser console errors"


def test_builds_page_export_link_carries_the_period_and_partners(dash_duo, dashboard, seeded):
    dash_duo.start_server(dashboard)
    partner = seeded.queries.partners(system_scope(0, 1))[0]["partner_id"]
    dash_duo.wait_for_page(f"{dash_duo.server_url}/builds?range=24h&partner={partner}")
    link = dash_duo.wait_for_element(f"#{BUILDS.EXPORT}", timeout=15).get_attribute("href")
    assert "/api/v1/export/builds.csv?" in link and f"partner={partner}" in link and "from=" in link
