/* Start plotly.js while the page's first callbacks are in flight.
 *
 * dcc.Graph loads plotly.js (3.6 MB) only when the first graph mounts — after the callbacks have
 * answered — and every figure then waits for its ~0.5 s of evaluation. Loaded here, once the main
 * thread is idle after start-up (the renderer has sent its first requests), the evaluation
 * overlaps the wait for the server. dcc.Graph uses `window.Plotly` when it exists, so nothing
 * loads twice (the URL is the one dcc.Graph would use: same file, same browser cache). */
(function () {
  "use strict";
  if (window.Plotly) { return; }

  function plotlyUrl() {
    var node = document.getElementById("_dash-config");
    var config = node ? JSON.parse(node.textContent) : {};
    if (config.serve_locally === false && config.plotlyjs_url) { return config.plotlyjs_url; }
    return (config.requests_pathname_prefix || "/") + "_dash-component-suites/plotly/package_data/plotly.min.js";
  }

  function load() {
    if (window.Plotly || document.querySelector("script[data-plotly-preload]")) { return; }
    var script = document.createElement("script");
    script.src = plotlyUrl();
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
