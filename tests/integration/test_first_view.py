"""The first view: `/_dash-layout` brings the requested page already drawn (filters from the page's
URL in the Referer, theme from the cookie), through a real server process and a real Valkey."""
import random
import re
import time

import pytest
import requests

from callbacks.shell import THEME_COOKIE
from layouts.ids import CAPACITY, EXEC, OPS, SHELL
from services.store.embedded import EmbeddedValkey
from tests.conftest import ServerProcess, free_port, server_env
from tests.reference import random_events

pytestmark = pytest.mark.integration

PARTNERS = ["acme-bank", "zenith-pay", "orbit-wallet"]
PAGES_LOCATION, PAGES_CONTENT = "_pages_location", "_pages_content"


def components(node):
    """Every component (dict with 'type' and 'props') in a layout JSON tree."""
    if isinstance(node, list):
        for item in node:
            yield from components(item)
    elif isinstance(node, dict):
        if "props" in node and "type" in node:
            yield node
            for value in node["props"].values():
                yield from components(value)


def by_id(layout, component_id):
    found = [c for c in components(layout) if c["props"].get("id") == component_id]
    assert len(found) == 1, f"{component_id}: {len(found)} components"
    return found[0]["props"]


def first_view(server, page: str | None, **headers):
    extra = {"Referer": server.url + page} if page is not None else {}
    response = requests.get(server.url + "/_dash-layout", headers={**extra, **headers}, timeout=60)
    assert response.status_code == 200, response.text[:500]
    # drawn for this page and theme: no cache may hand it to another visitor
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Vary"] == "Referer, Cookie"
    return response.json()


def figures_in(props):
    return [c["props"]["figure"] for c in components(props.get("children")) if c["type"] == "Graph"]


@pytest.fixture
def loaded(live_server, redis_client):
    now = time.time()
    events = random_events(random.Random(31), 400, now - 5 * 86400, now - 120, PARTNERS)
    response = requests.post(live_server.url + "/api/v1/events", json={"events": events}, timeout=60)
    assert response.status_code == 202
    return live_server


def test_operations_arrive_drawn_for_the_filters_in_the_url(loaded):
    layout = first_view(loaded, "/operations?range=7d&partner=acme-bank,zenith-pay&refresh=off")
    assert by_id(layout, SHELL.FILTERS)["data"] == {"range": "7d", "from": None, "to": None,
                                                   "partners": ["acme-bank", "zenith-pay"], "refresh": "off"}
    # the Locations already hold the address: they stay quiet and the router does not draw again
    for location in (SHELL.URL, PAGES_LOCATION):
        props = by_id(layout, location)
        assert (props["pathname"], props["search"]) == ("/operations", "?range=7d&partner=acme-bank,zenith-pay&refresh=off")
    assert by_id(layout, SHELL.RANGE)["value"] == "7d"
    assert by_id(layout, SHELL.PARTNERS)["value"] == ["acme-bank", "zenith-pay"]
    assert by_id(layout, SHELL.TICK)["disabled"] is True  # refresh off

    summary = requests.get(loaded.url + "/api/v1/summary", timeout=30,
                           params=[("from", str(time.time() - 7 * 86400)), ("to", str(time.time())),
                                   ("partner", "acme-bank"), ("partner", "zenith-pay")]).json()
    kpis = [c["props"] for c in components(by_id(layout, OPS.KPIS)["children"]) if "data-kpi" in c["props"]]
    shown = {p["data-kpi"]: p["children"] for p in kpis}
    assert shown["builds_total"] == f"{summary['builds_total']:,}"
    # the sixth tile is the probe record's uptime (a share with 3 decimals, 100 % or — without a probe)
    assert "builds_started" not in shown and re.fullmatch(r"—|100 %|\d{1,2}\.\d{3} %", shown["uptime"])
    for body in (OPS.SUCCESS_GAUGE, OPS.BUILD_TIME_GAUGE, OPS.BUILD_RATE, OPS.HEATMAP, OPS.STAGES):
        assert len(figures_in(by_id(layout, body))) == 1, body
    assert by_id(layout, OPS.ASSET_GRID)["rowData"], "asset rows arrive with the grid"
    for body in (OPS.CPU, OPS.MEMORY, OPS.DISK, OPS.HTTP_LATENCY, OPS.HTTP_ERRORS):
        assert by_id(layout, body).get("children"), f"{body} drawn (a chart or its 'no samples' state)"


def test_capacity_page_arrives_drawn(loaded):
    layout = first_view(loaded, "/capacity?range=7d&refresh=off")
    assert by_id(layout, PAGES_LOCATION)["pathname"] == "/capacity"
    for body in (CAPACITY.INGEST, CAPACITY.BUILDS):
        assert len(figures_in(by_id(layout, body))) == 1, body  # the loaded builds, through the page's scope
    for body in (CAPACITY.SUMMARY, CAPACITY.CPU, CAPACITY.NETWORK, CAPACITY.AVAILABILITY, CAPACITY.LATENCY):
        assert by_id(layout, body).get("children"), f"{body} drawn (a chart or its empty state)"
    findings = [c["props"]["data-finding"] for c in components(by_id(layout, CAPACITY.SUMMARY)["children"])
                if "data-finding" in c["props"]]
    assert "throughput" in findings
    assert by_id(layout, CAPACITY.EXPORT)["href"].startswith("/api/v1/export/system.csv?from=")


def test_executive_page_arrives_drawn(loaded):
    layout = first_view(loaded, "/?range=24h")
    assert by_id(layout, PAGES_LOCATION)["pathname"] == "/"
    assert [c for c in components(by_id(layout, EXEC.KPIS)["children"]) if "data-kpi" in c["props"]]
    assert figures_in(by_id(layout, EXEC.TRENDS)) and figures_in(by_id(layout, EXEC.REVENUE))


def test_the_theme_cookie_draws_the_first_view_dark(loaded):
    light = first_view(loaded, "/operations?range=7d")
    dark = first_view(loaded, "/operations?range=7d", Cookie=f"{THEME_COOKIE}=dark")
    assert by_id(light, SHELL.THEME)["data"] == "light" and by_id(light, SHELL.THEME_SWITCH)["value"] is False
    assert by_id(dark, SHELL.THEME)["data"] == "dark" and by_id(dark, SHELL.THEME_SWITCH)["value"] is True
    colours = {name: figures_in(by_id(view, OPS.BUILD_RATE))[0]["layout"]["template"]["layout"]["font"]["color"]
               for name, view in (("light", light), ("dark", dark))}
    assert colours["light"] != colours["dark"]
    nonsense = first_view(loaded, "/operations", Cookie=f"{THEME_COOKIE}=purple")
    assert by_id(nonsense, SHELL.THEME)["data"] == "light"


@pytest.mark.parametrize("headers", [{}, {"Referer": "http://elsewhere.example/operations?range=7d"}],
                         ids=["no referer", "other origin"])
def test_without_a_usable_referer_the_shell_fills_itself(live_server, headers):
    response = requests.get(live_server.url + "/_dash-layout", headers=headers, timeout=30)
    assert response.status_code == 200
    layout = response.json()
    for location in (SHELL.URL, PAGES_LOCATION):  # no address: the Location takes the browser's
        assert by_id(layout, location).get("pathname") is None
    assert not by_id(layout, PAGES_CONTENT).get("children")


def test_an_unknown_page_is_left_to_the_router(live_server):
    layout = first_view(live_server, "/no-such-page?range=7d")
    assert by_id(layout, PAGES_LOCATION).get("pathname") is None
    assert not by_id(layout, PAGES_CONTENT).get("children")


def test_store_unreachable_the_first_view_shows_the_outage(tmp_path):
    store = EmbeddedValkey(tmp_path / "valkey", port=free_port(), persist=True).start()
    server = ServerProcess(server_env(REDIS_URL=store.url, LULUPAY_DATA_DIR=str(tmp_path / "srv")), free_port())
    try:
        store.stop()
        layout = first_view(server, "/operations?range=7d")
        assert by_id(layout, "outage-alert")
        assert by_id(layout, SHELL.BADGE_STORE)["color"] == "danger"
        errors = [c for c in components(by_id(layout, PAGES_CONTENT)["children"])
                  if "panel-error" in (c["props"].get("className") or "")]
        assert len(errors) >= 9, "each store panel shows its error state"
    finally:
        server.stop()
        store.stop()


def test_the_plotly_bundle_is_announced_and_cached_for_good_at_its_own_version_only(live_server):
    import re

    page = requests.get(live_server.url + "/operations", timeout=30).text
    bundle = re.search(r'<link rel="preload" as="script" id="plotly-bundle" href="([^"]+)">', page)
    assert bundle and re.fullmatch(r"/assets/vendor/plotly/plotly-lulupay\.min\.js\?v=[0-9a-f]{12}", bundle.group(1))
    response = requests.get(live_server.url + bundle.group(1), timeout=30)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # another version's URL (an old instance mid-deploy) or no version: never kept for good
    for url in ("/assets/vendor/plotly/plotly-lulupay.min.js?v=deadbeef0000",
                "/assets/vendor/plotly/plotly-lulupay.min.js", "/assets/live.js?m=1"):
        assert "immutable" not in requests.get(live_server.url + url, timeout=30).headers.get("Cache-Control", ""), url


def test_a_bare_origin_referer_gets_the_shell_that_fills_itself(live_server):
    """A Referer cut down to the origin (Referrer-Policy, or an address over 4 KB) may stand for any
    page: presetting '/' would never be corrected by the Location."""
    layout = first_view(live_server, "/")
    assert by_id(layout, PAGES_LOCATION).get("pathname") is None
    assert not by_id(layout, PAGES_CONTENT).get("children")


def test_the_layout_is_written_byte_for_byte_as_dashs_encoder_writes_it(loaded, settings, services):
    import numpy as np
    from dash import dcc, html
    from dash._utils import to_json

    from app.dash_json import dash_json as layout_json
    from app.factory import create_app

    app = create_app(settings, services)
    referer = {"Referer": "http://localhost/operations?range=7d&partner=acme-bank"}
    with app.server.test_request_context("/_dash-layout", headers=referer):
        layout = app.get_layout()
    assert layout_json(layout) == to_json(layout)
    odd = html.Div(["</script>", "\u2028 a/b > c", dcc.Graph(figure={"data": [{"y": np.array([1.5, np.nan])}]})],
                   title={"when": 1.0})
    assert layout_json(odd) == to_json(odd)
