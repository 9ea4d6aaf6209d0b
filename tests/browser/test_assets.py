"""The Assets page in a real browser: every panel drawn from the demo history, the summary and the
table equal to the asset service's figures, sizes in binary units, the CSV download equal to the
table; honest empty states on an empty store."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
import redis

from app.factory import create_app
from app.settings import Settings
from callbacks.assets import NO_ASSETS
from layouts.figures import format_bytes
from layouts.ids import ASSETS, ASSETS_PANEL_IDS, SHELL
from services.container import build_services
from services.scope import system_scope
from tests.conftest import wait_until

pytestmark = pytest.mark.browser

GRAPH_PANELS = ("asset-by-type", "asset-by-format", "asset-by-density", "asset-bytes-saved", "asset-format-trend",
                "asset-format-mix", "asset-processing-times", "asset-processing-trend")
INTS = ("Assets", "Original", "Output", "Saved")
FLOATS = {"Compression": "compression_ratio", "Quality": "quality_avg", "Avg time (s)": "duration_avg_s"}


def _cells(dash_duo, column: str) -> dict[str, str]:
    """row id → text of one column's cells in the rows the grid has drawn (pinned columns sit in
    their own container: rows are matched by their id)."""
    pairs = dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(c => [c.closest('.ag-row').getAttribute('row-id'), c.textContent]);",
        f'#{ASSETS.TABLE} .ag-row [col-id="{column}"]')
    return dict(pairs)


def test_assets_page_draws_every_panel_and_its_table_and_csv_hold_the_services_figures(dash_duo, dashboard,
                                                                                       seeded):
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(dash_duo.server_url + "/assets?range=7d&refresh=off")
    for panel in ASSETS_PANEL_IDS:
        dash_duo.wait_for_element(f'[data-panel="{panel}"]', timeout=15)
    for panel in GRAPH_PANELS:
        dash_duo.wait_for_element(f'[data-panel="{panel}"] .js-plotly-plot', timeout=20)
    assert {_font_colour(dash_duo, panel) for panel in GRAPH_PANELS} == {"#2a3f5f"}  # drawn light first
    now = time.time()
    data = seeded.assets.breakdown(system_scope(now - 7 * 86400, now))
    total = data["total"]
    assert total["assets"] > 100
    saved, original = format_bytes(total["saved_bytes"]), format_bytes(total["original_bytes"])
    if saved.split()[1] == original.split()[1]:
        saved = saved.split()[0]
    dash_duo.wait_for_contains_text('[data-finding="total"]', f"{total['assets']:,} assets: {saved} of {original} "
                                    f"saved ({total['compression_ratio'] * 100:.1f} %)", timeout=20)
    best = max(data["by_format"], key=lambda r: r["saved_bytes"])
    assert dash_duo.find_element('[data-finding="format"]').text.startswith(f"{best['value']} saves the most")
    assert not dash_duo.find_elements(".panel-error") and not dash_duo.find_elements(".panel-empty")
    assert dash_duo.find_element(f"#{SHELL.NAV} .nav-link.active").text == "Assets"

    expected = {f"{r['asset_type']}:{r['format']}:{r['density']}": r for r in data["combinations"]}
    wait_until(lambda: len(_cells(dash_duo, "asset_type")) >= 8, message="table rows")
    shown_saved, shown_ratio = _cells(dash_duo, "saved_bytes"), _cells(dash_duo, "compression_ratio")
    assert len(shown_saved) >= 8
    for row_id, text in shown_saved.items():  # sizes in binary units, as format_bytes writes them
        assert text == format_bytes(expected[row_id]["saved_bytes"]), row_id
        assert shown_ratio[row_id] == f"{expected[row_id]['compression_ratio'] * 100:.1f}%", row_id

    href = dash_duo.find_element(f"#{ASSETS.EXPORT}").get_attribute("href")
    assert "/api/v1/export/assets.csv?from=" in href and "&to=" in href
    button = dash_duo.find_element(f"#{ASSETS.TABLE_CSV}")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", button)
    target = Path(dash_duo.download_path) / "asset-combinations.csv"
    wait_until(lambda: target.exists() and target.stat().st_size > 0, message="the CSV download")
    with target.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["Type", "Format", "Density", "Assets", "Original", "Output", "Saved", "Compression",
                             "Quality", "Avg time (s)"]
    got = {f"{r['Type']}:{r['Format']}:{r['Density']}": r for r in rows}
    assert len(rows) == len(got) == len(expected)  # every row, not only those drawn
    for row_id, want in expected.items():
        line = got[row_id]
        for header, key in zip(INTS, ("assets", "original_bytes", "output_bytes", "saved_bytes")):
            assert int(line[header]) == want[key], (row_id, header)
        for header, key in FLOATS.items():
            assert float(line[header]) == pytest.approx(want[key], rel=1e-12), (row_id, header)
    counts = [int(r["Assets"]) for r in rows]
    assert counts == sorted(counts, reverse=True), "the CSV keeps the table's order (most assets first)"

    # the theme switch redraws every chart in the dark template
    dash_duo.driver.execute_script(f"document.getElementById('{SHELL.THEME_SWITCH}').click()")
    for panel in GRAPH_PANELS:
        wait_until(lambda: _font_colour(dash_duo, panel) == "#f2f5fa", message=f"{panel} drawn dark")
    assert dash_duo.get_logs() == [], "browser console errors"


def _font_colour(dash_duo, panel: str) -> str | None:
    return dash_duo.driver.execute_script(
        f"const gd = document.querySelector('[data-panel=\"{panel}\"] .js-plotly-plot');"
        "return gd && gd._fullLayout ? gd._fullLayout.font.color : null;")


def test_assets_page_on_an_empty_store_says_so(dash_duo, valkey_url, tmp_path):
    empty_url = valkey_url.rstrip("/") + "/5"
    redis.Redis.from_url(empty_url).flushdb()
    settings = Settings(_env_file=None, redis_url=empty_url, data_dir=tmp_path / "data", collector_enabled=False,
                        forecaster_enabled=False)
    dash_duo.start_server(create_app(settings, build_services(settings)))
    dash_duo.wait_for_page(dash_duo.server_url + "/assets?range=24h&refresh=off")
    for body in (ASSETS.SUMMARY, ASSETS.BY_TYPE, ASSETS.BY_FORMAT, ASSETS.BY_DENSITY, ASSETS.SAVED,
                 ASSETS.FORMAT_TREND, ASSETS.FORMAT_MIX, ASSETS.TIMES, ASSETS.TIME_TREND, ASSETS.TABLE_NOTE):
        dash_duo.wait_for_contains_text(f"#{body}", NO_ASSETS, timeout=20)
    assert not dash_duo.find_elements(".panel-error")
    assert not dash_duo.find_elements(f'#{ASSETS.TABLE} .ag-row')
    assert not dash_duo.find_elements(".js-plotly-plot")
    assert dash_duo.get_logs() == [], "browser console errors"
