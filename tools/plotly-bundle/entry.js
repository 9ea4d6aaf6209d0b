// LuluPay Analytics' plotly.js bundle: the core (which holds `scatter`) and the trace types the
// pages draw. A figure with another trace type needs it added here and the bundle rebuilt
// (build.sh); tests/unit/test_figures.py fails until then.
var Plotly = require('plotly.js/lib/core');

Plotly.register([
    require('plotly.js/lib/bar'),
    require('plotly.js/lib/heatmap'),
    require('plotly.js/lib/indicator')
]);

module.exports = Plotly;
