/* plotly.js for dcc.Graph: our own bundle, loaded while the page's layout (drawn panels) is in flight.
 *
 * - The bundle (assets/vendor/plotly/, recipe in its README) holds plotly.js's core and the
 *   trace types the pages draw (bar, heatmap, indicator, scatter): 1.2 MB instead of the full
 *   4.8 MB, which the browser would parse and compile on every cold load.
 * - dcc.Graph loads plotly.js only when the first graph mounts — after the layout has arrived —
 *   and every figure then waits for its evaluation. Loaded here, once the main thread is idle
 *   after start-up (the renderer has sent its first requests), the evaluation overlaps the wait
 *   for the server. dcc.Graph uses `window.Plotly` when it exists; and should a graph mount
 *   first, `_dashPlotlyJSURL` points it at this same file (same URL: one download). */
(function () {
  "use strict";
  if (window.Plotly) { return; }

  function bundleUrl() {
    // the versioned URL the page's head announces (app/factory.py), cached by the browser for good
    var link = document.getElementById("plotly-bundle");
    if (link) { return link.href; }
    var node = document.getElementById("_dash-config");
    var config = node ? JSON.parse(node.textContent) : {};
    return (config.requests_pathname_prefix || "/") + "assets/vendor/plotly/plotly-lulupay.min.js";
  }

  function load() {
    var url = bundleUrl();
    window._dashPlotlyJSURL = url;
    if (window.Plotly || document.querySelector("script[data-plotly-preload]")) { return; }
    var script = document.createElement("script");
    script.src = url;
    script.async = true;
    script.setAttribute("data-plotly-preload", "");
    document.body.appendChild(script);
  }

  function whenIdle() {
    if (window.requestIdleCallback) { window.requestIdleCallback(load, {timeout: 300}); } else { setTimeout(load, 50); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", whenIdle);
  } else {
    whenIdle();
  }
})();
