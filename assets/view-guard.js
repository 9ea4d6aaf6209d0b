/* Late callback answers must not undo what the page has become since they were asked for.
 *
 * A callback request carries the view it was computed for: the shell's filter set (the refresh
 * callbacks read it as state) and the theme (the refresh callbacks' input, the router's state).
 * The renderer applies an answer whenever it arrives, to whatever components hold its output ids
 * now — and a page the router has just redrawn for new filters has the same ids. So every answer
 * passes through here first (Dash's `request_post` renderer hook, set in callbacks/shell.py, with
 * the ids it names): one computed for another filter set or theme than the page's current one is
 * emptied, and the renderer applies nothing of it.
 *
 * - A stale refresh answer (old filters): the router's redraw for the new filters is the truth; the
 *   next refresh tick asks again. (A refresh answered for an old theme never gets here: a theme
 *   change re-requests those callbacks, and Dash itself drops the superseded answer.)
 * - A stale router answer (the page drawn for an old theme): the content would be the new filters'
 *   in the old theme, with nothing left to redraw it — so the router is asked again, now with the
 *   current theme (one more request, only in this race).
 *
 * No request of its own, no state of its own: the current view is read from the renderer's layout
 * (window.dash_component_api.getLayout, Dash 3+). Should that be missing, every answer is applied
 * as Dash would. */
(function () {
  "use strict";

  var MISSING = {};

  function canonical(value) {
    if (Array.isArray(value)) {
      return "[" + value.map(canonical).join(",") + "]";
    }
    if (value && typeof value === "object") {
      return "{" + Object.keys(value).sort().map(function (key) {
        return JSON.stringify(key) + ":" + canonical(value[key]);
      }).join(",") + "}";
    }
    return JSON.stringify(value === undefined ? null : value);
  }

  function sentWith(payload, id, property) {
    var items = (payload.inputs || []).concat(payload.state || []);
    for (var i = 0; i < items.length; i++) {
      var item = items[i];  // (a pattern-matching input is a list: never one of the view's ids)
      if (item && !Array.isArray(item) && item.id === id && item.property === property) {
        return {value: item.value};
      }
    }
    return null;
  }

  function current(id, property) {
    var api = window.dash_component_api;
    var node = api && api.getLayout ? api.getLayout(id) : undefined;
    return node && node.props ? node.props[property] : MISSING;
  }

  function outdated(payload, view) {
    return view.some(function (dependency) {
      var sent = sentWith(payload, dependency[0], dependency[1]);
      if (!sent) { return false; }
      var now = current(dependency[0], dependency[1]);
      return now !== MISSING && canonical(sent.value) !== canonical(now);
    });
  }

  var guard = window.lulupayViewGuard = {
    dropped: 0,  // answers dropped since the page loaded (for a look in the console, and the tests)

    /** Empty `response` (the renderer applies what is left of it) when it was computed for another
     *  view than the page's current one; true when it did. `ids`: {filters, theme, content,
     *  location} — the shell's stores and Dash Pages' content and location. */
    answer: function (payload, response, ids) {
      if (!payload || !response || typeof response !== "object") { return false; }
      if (!outdated(payload, [[ids.filters, "data"], [ids.theme, "data"]])) { return false; }
      Object.keys(response).forEach(function (key) { delete response[key]; });
      guard.dropped += 1;
      var redraws = (payload.outputs || []).some(function (o) { return o && o.id === ids.content; });
      if (redraws && window.dash_clientside && window.dash_clientside.set_props) {
        // the router's input, set to what it is: the router draws the page again, for today's theme
        var search = current(ids.location, "search");
        if (search !== MISSING) { window.dash_clientside.set_props(ids.location, {search: search}); }
      }
      return true;
    }
  };
})();
