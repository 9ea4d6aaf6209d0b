"""Answers that arrive late must not undo what the page has become since they were asked for: a
refresh answer for the old filters after the router redrew the page for new ones, the router's page
drawn for the theme the visitor has just switched away from (assets/view-guard.js).

The late answer is made late exactly, in the page: the test holds the browser's view of one callback
answer (the server has answered; the renderer does not see it yet) until it releases it. An answer
has been dealt with — applied or dropped — when its outputs no longer say `data-dash-is-loading`
(the renderer counts a callback as pending until its answer has been applied)."""
from __future__ import annotations

import pytest

from layouts.ids import OPS, SHELL
from tests.conftest import wait_until

pytestmark = pytest.mark.browser

PAGES_CONTENT = "_pages_content"  # Dash Pages' content: the router's output

# Hold the answer of the next callback request whose `output` names `arguments[0]`. Installed by
# the test, in the page, after it has loaded.
HOLD_NEXT = """
if (!window.__held) {
  window.__held = [];
  window.__holdNext = null;
  const fetch0 = window.fetch;
  window.fetch = function (url, options) {
    const answer = fetch0.apply(this, arguments);
    const body = options && typeof options.body === 'string' ? JSON.parse(options.body) : null;
    if (!String(url).includes('_dash-update-component') || !body || !window.__holdNext
        || !body.output.includes(window.__holdNext)) {
      return answer;
    }
    window.__holdNext = null;
    const entry = {body: body, consumed: false};
    window.__held.push(entry);
    return new Promise(function (resolve, reject) {
      entry.release = function () {
        answer.then(function (response) {
          const read = response.json.bind(response);
          response.json = function () { return read().then(function (data) { entry.consumed = true; return data; }); };
          resolve(response);
        }, reject);
      };
    });
  };
}
window.__holdNext = arguments[0];
"""

# The font colour of the template of every figure in the page's content, as the renderer holds it
# (what the page draws, whatever plotly.js has painted yet).
FIGURE_COLOURS = """
const colours = [];
(function walk(node) {
  if (Array.isArray(node)) { node.forEach(walk); return; }
  if (!node || typeof node !== 'object') { return; }
  if (node.type === 'Graph' && node.props && node.props.figure) {
    const t = (node.props.figure.layout || {}).template;
    colours.push(t && t.layout && t.layout.font ? t.layout.font.color : null);
  }
  if (node.props) { Object.values(node.props).forEach(walk); }
})(window.dash_component_api.getLayout(arguments[0]));
return colours;
"""
LIGHT, DARK = "#2a3f5f", "#f2f5fa"  # plotly_white's and plotly_dark's font colours


def _hold_next(dash_duo, output: str) -> None:
    dash_duo.driver.execute_script(HOLD_NEXT, output)


def _held(dash_duo) -> list[dict]:
    return dash_duo.driver.execute_script("return (window.__held || []).map(e => ({body: e.body, consumed: e.consumed}))")


def _release(dash_duo) -> None:
    dash_duo.driver.execute_script("window.__held[0].release()")


def _sent(body: dict, component_id: str):
    """The value of a component's property a held request was sent with."""
    return next(item["value"] for item in body["inputs"] + body.get("state", []) if item["id"] == component_id)


def _dropped(dash_duo) -> int:
    """How many answers assets/view-guard.js has dropped on this page."""
    return dash_duo.driver.execute_script("return window.lulupayViewGuard.dropped")


def _loading(dash_duo, element_id: str) -> bool:
    return dash_duo.driver.execute_script(
        "const e = document.getElementById(arguments[0]); return !e || e.hasAttribute('data-dash-is-loading')",
        element_id)


def _dealt_with(dash_duo, output_id: str) -> bool:
    """The held answer has reached the renderer and nothing is pending for `output_id` any more."""
    return _held(dash_duo)[0]["consumed"] and not _loading(dash_duo, output_id)


def _kpi(dash_duo, name: str) -> str | None:
    return dash_duo.driver.execute_script(
        "const e = document.querySelector(`[data-kpi=\"${arguments[0]}\"]`); return e && e.textContent", name)


def _figure_colours(dash_duo) -> list[str | None]:
    return dash_duo.driver.execute_script(FIGURE_COLOURS, PAGES_CONTENT)


def _painted_colour(dash_duo, panel: str) -> str | None:
    return dash_duo.driver.execute_script(
        "const gd = document.querySelector(`[data-panel=\"${arguments[0]}\"] .js-plotly-plot`);"
        "return gd && gd._fullLayout ? gd._fullLayout.font.color : null;", panel)


def _choose_range(dash_duo, label: str) -> None:
    """Pick a time range in the global bar, as a person does."""
    dash_duo.find_element(f"#{SHELL.RANGE}").click()
    dash_duo.wait_for_element(".dash-dropdown-option", timeout=10)
    next(o for o in dash_duo.find_elements(".dash-dropdown-option") if o.text == label).click()


def _open_operations(dash_duo, dashboard) -> str:
    """Operations for the last 24 hours, light, drawn; its builds KPI."""
    dash_duo.start_server(dashboard)
    dash_duo.wait_for_page(dash_duo.server_url + "/operations?refresh=off")
    dash_duo.wait_for_element('[data-panel="build-rate"] .js-plotly-plot', timeout=20)
    assert set(_figure_colours(dash_duo)) == {LIGHT} and _dropped(dash_duo) == 0
    return _kpi(dash_duo, "builds_total")


def test_a_refresh_answer_for_the_old_filters_does_not_overwrite_the_redrawn_page(dash_duo, dashboard, seeded):
    day = _open_operations(dash_duo, dashboard)

    # a refresh tick (what the interval sends; refresh is off, so no other tick interferes): the
    # overview's answer, for the last 24 hours, is held in flight
    _hold_next(dash_duo, f"{OPS.KPIS}.children")
    dash_duo.driver.execute_script(f"window.dash_clientside.set_props('{SHELL.TICK}', {{n_intervals: 1}})")
    wait_until(lambda: _held(dash_duo), message="the refresh request")
    assert _sent(_held(dash_duo)[0]["body"], SHELL.FILTERS)["range"] == "24h"

    # meanwhile the visitor picks 7 days: the URL follows and the router draws the page for them
    _choose_range(dash_duo, "Last 7 days")
    wait_until(lambda: "range=7d" in dash_duo.driver.current_url and _kpi(dash_duo, "builds_total") not in (None, day),
               message="the page drawn for 7 days")
    week = _kpi(dash_duo, "builds_total")

    # then the 24-hour answer arrives: dropped, the page still shows the 7 days it was drawn for
    _release(dash_duo)
    wait_until(lambda: _dealt_with(dash_duo, OPS.KPIS), message="the late answer dealt with")
    assert _kpi(dash_duo, "builds_total") == week != day
    assert "range=7d" in dash_duo.driver.current_url
    assert _dropped(dash_duo) == 1

    # and the next refresh, asked for the 7 days, is applied as ever (all the seeded history is
    # inside them: the same count)
    _hold_next(dash_duo, f"{OPS.KPIS}.children")
    dash_duo.driver.execute_script(f"window.dash_clientside.set_props('{SHELL.TICK}', {{n_intervals: 2}})")
    wait_until(lambda: len(_held(dash_duo)) == 2, message="the next refresh request")
    dash_duo.driver.execute_script("window.__held[1].release()")
    wait_until(lambda: _held(dash_duo)[1]["consumed"] and not _loading(dash_duo, OPS.KPIS), message="the next refresh")
    assert _kpi(dash_duo, "builds_total") == week
    assert _dropped(dash_duo) == 1, "an answer for the current view was dropped"
    assert dash_duo.get_logs() == [], "browser console errors"


def test_a_theme_switch_during_a_router_request_leaves_the_page_in_the_new_theme(dash_duo, dashboard, seeded):
    day = _open_operations(dash_duo, dashboard)

    # the visitor picks 7 days: the router's answer, drawn in the light theme, is held in flight
    _hold_next(dash_duo, f"{PAGES_CONTENT}.children")
    _choose_range(dash_duo, "Last 7 days")
    wait_until(lambda: _held(dash_duo), message="the router's request")
    assert _sent(_held(dash_duo)[0]["body"], SHELL.THEME) == "light"

    # meanwhile the visitor switches to dark: the panels on screen redraw dark
    dash_duo.driver.execute_script(f"document.getElementById('{SHELL.THEME_SWITCH}').click()")
    wait_until(lambda: set(_figure_colours(dash_duo)) == {DARK}, message="the panels redrawn dark")

    # then the router's light page arrives: the page ends drawn for 7 days, in dark
    _release(dash_duo)
    wait_until(lambda: _dealt_with(dash_duo, PAGES_CONTENT) and not _loading(dash_duo, OPS.KPIS),
               message="the router's late answer dealt with")
    assert set(_figure_colours(dash_duo)) == {DARK}, "figures drawn for the old theme"
    assert _dropped(dash_duo) == 1  # the light page; the router's second answer, dark, was applied
    assert _kpi(dash_duo, "builds_total") != day and "range=7d" in dash_duo.driver.current_url
    assert dash_duo.driver.execute_script("return document.documentElement.getAttribute('data-bs-theme')") == "dark"
    assert dash_duo.find_element(f"#{SHELL.THEME_SWITCH}").is_selected()
    assert dash_duo.driver.get_cookie("lulupay_theme")["value"] == "dark"
    wait_until(lambda: _painted_colour(dash_duo, "build-rate") == DARK, message="the chart painted dark")
    assert dash_duo.get_logs() == [], "browser console errors"
