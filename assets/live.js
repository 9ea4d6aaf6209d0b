/* Client-side state and rendering for the live channel: the Live page (builds in progress with
 * stage-by-stage progress, recently finished builds, the event feed), alert toasts on every page and
 * the Operations "active builds" KPI between refreshes. Pure functions of (messages, state); Dash
 * calls them from clientside callbacks, so live updates never cost a server round trip. */
(function () {
  "use strict";
  var STAGES = ["asset_processing", "dependency_resolution", "compilation", "packaging", "signing", "upload"];
  var STAGE_LABELS = ["assets", "dependencies", "compile", "package", "sign", "upload"];
  var MAX_RECENT = 25;
  var MAX_FEED = 200;
  var MAX_RUNNING_SHOWN = 60;
  var MAX_TOASTS = 5;

  function el(type, props, namespace) {
    return {type: type, namespace: namespace || "dash_html_components", props: props || {}};
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) { return "—"; }
    seconds = Math.max(0, seconds);
    if (seconds < 59.95) { return seconds.toFixed(1) + " s"; }
    var total = Math.round(seconds);
    if (total >= 3600) { return Math.floor(total / 3600) + " h " + Math.floor((total % 3600) / 60) + " min"; }
    return Math.floor(total / 60) + " min " + (total % 60) + " s";
  }

  function clock(ts) {
    return new Date(ts * 1000).toISOString().substring(11, 19) + " UTC";
  }

  function name(state, pid) {
    var names = (state && state.names) || {};
    return names[pid] || pid;
  }

  function summary(msg, state) {
    var d = msg.data || {};
    if (msg.stream === "builds") {
      if (d.type === "build.started") { return "started " + d.build_type + " build " + d.build_id + " (v" + d.app_version + ")"; }
      if (d.type === "build.stage") { return d.build_id + ": " + d.stage.replace(/_/g, " ") + " " + d.status + " in " + duration(d.duration_s); }
      return d.build_id + " finished: " + d.status + " after " + duration(d.duration_s) +
        (d.failed_stage ? " (failed at " + d.failed_stage.replace(/_/g, " ") + ")" : "");
    }
    if (msg.stream === "metrics") {
      var s = d.system || {};
      return "host CPU " + (s.cpu_percent || 0).toFixed(0) + " %, memory " + (s.memory_percent || 0).toFixed(0) +
        " %, disk " + (s.disk_percent || 0).toFixed(0) + " % · " + (d.active_builds_total || 0) + " active builds";
    }
    if (msg.stream === "partners") {
      if (d.change === "upsert") { return name(state, d.partner_id) + ": " + d.tier + ", " + d.status + ", quota " + d.monthly_build_quota; }
      return name(state, d.partner_id) + ": " + (d.message || d.change);
    }
    if (msg.stream === "alerts") {
      return (d.severity ? d.severity.toUpperCase() + " " : "") + (d.name || d.alertname || "alert") + ": " +
        (d.state || "") + (d.summary ? " — " + d.summary : "");
    }
    return JSON.stringify(d);
  }

  /* state ← state + one batch of messages */
  function reduce(inbox, state) {
    state = JSON.parse(JSON.stringify(state || {}));
    state.running = state.running || {};
    state.recent = state.recent || [];
    state.feed = state.feed || [];
    var messages = (inbox && inbox.messages) || [];
    for (var i = 0; i < messages.length; i++) {
      var msg = messages[i];
      var d = msg.data || {};
      if (msg.stream === "builds" && d.build_id) {
        var build = state.running[d.build_id] || {build_id: d.build_id, partner_id: d.partner_id, stages: {}};
        if (d.type === "build.started") {
          build.build_type = d.build_type;
          build.app_version = d.app_version;
          build.started_ts = d.ts;
          state.running[d.build_id] = build;
        } else if (d.type === "build.stage") {
          build.stages[d.stage] = d.status;
          if (!build.started_ts) { build.started_ts = d.ts - (d.duration_s || 0); }
          state.running[d.build_id] = build;
        } else if (d.type === "build.finished") {
          delete state.running[d.build_id];
          state.recent.unshift({build_id: d.build_id, partner_id: d.partner_id, build_type: d.build_type,
                                status: d.status, duration_s: d.duration_s, failed_stage: d.failed_stage || null,
                                ts: d.ts});
          state.recent = state.recent.slice(0, MAX_RECENT);
        }
      }
      state.feed.unshift({stream: msg.stream, ts: msg.ts, partner_id: d.partner_id || null, text: summary(msg, state)});
    }
    state.feed = state.feed.slice(0, MAX_FEED);
    return state;
  }

  function stageCells(build) {
    var cells = [];
    var current = -1;
    for (var i = 0; i < STAGES.length; i++) {
      if (!build.stages[STAGES[i]]) { current = i; break; }
    }
    for (var j = 0; j < STAGES.length; j++) {
      var status = build.stages[STAGES[j]];
      var cls = "live-stage " + (status ? "live-stage-" + status : (j === current ? "live-stage-running" : "live-stage-pending"));
      cells.push(el("Div", {className: cls, title: STAGES[j].replace(/_/g, " ") + ": " + (status || (j === current ? "running" : "pending")),
                            children: [el("Div", {className: "live-stage-bar"}), el("Div", {className: "live-stage-label", children: STAGE_LABELS[j]})]}));
    }
    return cells;
  }

  function renderRunning(state, now) {
    var builds = Object.values(state.running || {});
    builds.sort(function (a, b) { return (b.started_ts || 0) - (a.started_ts || 0); });
    if (!builds.length) {
      return el("Div", {className: "panel-empty text-body-secondary text-center py-4",
                        children: "No builds in progress for these partners. New builds appear here the moment they start."});
    }
    var cards = builds.slice(0, MAX_RUNNING_SHOWN).map(function (b) {
      var done = STAGES.filter(function (s) { return b.stages[s] && b.stages[s] !== "failed"; }).length;
      return el("Div", {className: "live-build", "data-build-id": b.build_id, children: [
        el("Div", {className: "d-flex justify-content-between align-items-baseline gap-2", children: [
          el("Div", {className: "text-truncate", children: [
            el("Span", {className: "fw-semibold", children: name(state, b.partner_id)}),
            el("Span", {className: "text-body-secondary small ms-2", children: b.build_id}),
            b.build_type ? el("Span", {className: "badge text-bg-light border ms-2", children: b.build_type}) : null
          ]}),
          el("Div", {className: "small text-body-secondary text-nowrap", children: [
            done + "/6 stages · ",
            el("Span", {className: "live-elapsed", "data-started": b.started_ts || "",
                        children: b.started_ts ? duration(now - b.started_ts) : "—"})]})
        ]}),
        el("Div", {className: "live-stages", children: stageCells(b)})
      ]});
    });
    if (builds.length > MAX_RUNNING_SHOWN) {
      cards.push(el("Div", {className: "small text-body-secondary", children: "+ " + (builds.length - MAX_RUNNING_SHOWN) + " more"}));
    }
    return cards;
  }

  function renderRecent(state) {
    if (!(state.recent || []).length) {
      return el("Div", {className: "panel-empty text-body-secondary text-center py-4",
                        children: "Builds that finish while this page is open slide in here."});
    }
    var colours = {success: "success", failed: "danger", cancelled: "secondary"};
    return el("Div", {className: "list-group list-group-flush", children: state.recent.map(function (r) {
      return el("Div", {className: "list-group-item px-0 live-recent", "data-build-id": r.build_id, "data-status": r.status, children: [
        el("Div", {className: "d-flex justify-content-between", children: [
          el("Span", {className: "text-truncate", children: [
            el("Span", {className: "badge text-bg-" + (colours[r.status] || "secondary") + " me-2", children: r.status}),
            name(state, r.partner_id)]}),
          el("Span", {className: "small text-body-secondary text-nowrap", children: duration(r.duration_s)})
        ]}),
        el("Div", {className: "small text-body-secondary", children: r.build_id + " · " + (r.build_type || "") +
          (r.failed_stage ? " · failed at " + r.failed_stage.replace(/_/g, " ") : "") + " · " + clock(r.ts)})
      ]});
    })});
  }

  function renderFeed(state, streams) {
    var shown = (state.feed || []).filter(function (f) { return (streams || []).indexOf(f.stream) >= 0; });
    if (!shown.length) {
      return el("Div", {className: "panel-empty text-body-secondary text-center py-4",
                        children: "Nothing yet on the selected streams."});
    }
    var colours = {builds: "primary", metrics: "info", alerts: "danger", partners: "warning"};
    return shown.slice(0, 60).map(function (f) {
      return el("Div", {className: "live-feed-item small", "data-stream": f.stream, children: [
        el("Span", {className: "text-body-secondary me-2", children: clock(f.ts)}),
        el("Span", {className: "badge text-bg-" + colours[f.stream] + " me-2", children: f.stream}),
        f.partner_id ? el("Span", {className: "fw-semibold me-1", children: name(state, f.partner_id) + ":"}) : null,
        f.text
      ]});
    });
  }

  /* Elapsed times tick in the DOM once a second, without re-rendering the page through Dash. */
  setInterval(function () {
    var now = Date.now() / 1000;
    var spans = document.querySelectorAll(".live-elapsed[data-started]");
    for (var i = 0; i < spans.length; i++) {
      var started = parseFloat(spans[i].getAttribute("data-started"));
      if (!isNaN(started)) { spans[i].textContent = duration(now - started); }
    }
  }, 1000);

  window.lulupayLive = {
    reduce: reduce,
    render: function (state, streams) {
      state = state || {};
      var now = Date.now() / 1000;
      var count = Object.keys(state.running || {}).length;
      var running = renderRunning(state, now);
      if (state.error) {
        running = [el("Div", {className: "panel-error text-danger small mb-2", children: state.error})].concat(running);
      }
      return [running, renderRecent(state), renderFeed(state, streams),
              count + (count === 1 ? " build" : " builds") + " in progress"];
    },
    toasts: function (inbox, current) {
      var toasts = (current || []).slice(-MAX_TOASTS);
      var messages = (inbox && inbox.messages) || [];
      var added = false;
      messages.forEach(function (msg) {
        if (msg.stream !== "alerts") { return; }
        var d = msg.data || {};
        var critical = d.severity === "critical";
        toasts.push(el("Toast", {
          header: (d.severity ? d.severity + " · " : "") + (d.name || d.alertname || "alert") + (d.state ? " " + d.state : ""),
          children: (d.summary || d.description || summary(msg, null)),
          icon: critical ? "danger" : (d.state === "resolved" ? "success" : "warning"),
          dismissable: true, is_open: true, duration: critical ? 15000 : 8000,
          className: "live-toast", id: "toast-" + (msg.ts || Date.now()) + "-" + toasts.length
        }, "dash_bootstrap_components"));
        added = true;
      });
      if (!added) { return window.dash_clientside.no_update; }
      return toasts.slice(-MAX_TOASTS);
    },
    activeBuilds: function (inbox, text) {
      if (text === undefined || text === null) { return window.dash_clientside.no_update; }
      var value = parseInt(String(text).replace(/[^0-9]/g, ""), 10);
      if (isNaN(value)) { return window.dash_clientside.no_update; }
      var delta = 0;
      ((inbox && inbox.messages) || []).forEach(function (msg) {
        var d = msg.data || {};
        if (msg.stream !== "builds") { return; }
        if (d.type === "build.started") { delta += 1; }
        if (d.type === "build.finished") { delta -= 1; }
      });
      if (!delta) { return window.dash_clientside.no_update; }
      return Math.max(0, value + delta).toLocaleString("en-US");
    }
  };
})();
