/* LuluPay Analytics (tools/plotly-bundle/footer.js, appended to the bundle by build.sh):
 * Plots.resize answers at once when autosizing would keep the size the chart has. dcc.Graph calls
 * it twice for every chart after its first drawing (once itself, once from its ResizeObserver's
 * first notice) and each call is a relayout: a full supplyDefaults of the figure, ~10 ms, twenty of
 * them on the Operations page's first view for sizes that did not change. The test below is the
 * one plotly.js's plotAutoSize makes after resize drops layout.width/height; any real change (or a
 * hidden chart, a framed one) goes to plotly.js as before. */
(function (Plotly) {
  "use strict";
  var resize = Plotly.Plots.resize;
  Plotly.Plots.resize = function (gd) {
    var div = typeof gd === "string" ? document.getElementById(gd) : gd;
    var full = div && div._fullLayout;
    var context = (div && div._context) || {};
    if (full && div.layout && div.offsetParent !== null && !context.fillFrame && !context.frameMargins &&
        !div._redrawTimer) {
      var style = window.getComputedStyle(div);
      var width = Math.max(10, parseFloat(style.width) || parseFloat(style.maxWidth) || full.width);
      var height = Math.max(10, parseFloat(style.height) || parseFloat(style.maxHeight) || full.height);
      if (Math.abs(full.width - width) <= 1 && Math.abs(full.height - height) <= 1) {
        return Promise.resolve(div);
      }
    }
    return resize.apply(this, arguments);
  };
})(Plotly);
