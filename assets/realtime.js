/* The live channel's browser client: one WebSocket per tab (to /ws on this host), reconnect with
 * exponential back-off and jitter, re-subscribe when the partner filter changes. Messages are handed
 * to Dash in batches (every 300 ms at most) through dash_clientside.set_props into the `rt-inbox`
 * store; the "live" badge of the global bar shows connected / reconnecting / offline. */
(function () {
  "use strict";
  var STREAMS = ["builds", "metrics", "alerts", "partners"];
  var BADGE = {
    connected: ["live: connected", "success", "Live channel (/ws): connected"],
    reconnecting: ["live: reconnecting", "warning", "Live channel (/ws): connection lost, reconnecting"],
    offline: ["live: offline", "secondary", "Live channel (/ws): offline, retrying in the background"]
  };
  var socket = null;
  var attempt = 0;
  var partners = [];
  var pending = [];
  var flushTimer = null;
  var seq = 0;
  var state = "offline";

  function setProps(id, props) {
    // (dcc.Store renders no DOM element: the renderer knows it by id)
    if (window.dash_clientside && window.dash_clientside.set_props) {
      try { window.dash_clientside.set_props(id, props); } catch (e) { console.warn("live channel:", e); }
    }
  }

  function setState(next) {
    state = next;
    var b = BADGE[next];
    setProps("badge-live", {children: b[0], color: b[1], title: b[2]});
    document.documentElement.setAttribute("data-live", next);
  }

  function subscribe() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({subscribe: STREAMS, partners: partners}));
    }
  }

  function flush() {
    flushTimer = null;
    if (!pending.length) { return; }
    var batch = pending;
    pending = [];
    seq += 1;
    setProps("rt-inbox", {data: {seq: seq, messages: batch}});
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    try {
      socket = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    socket.onopen = function () {
      attempt = 0;
      setState("connected");
      subscribe();
    };
    socket.onmessage = function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg.stream === "subscribed") { return; }
      if (msg.stream === "error") { console.warn("live channel:", msg.data && msg.data.error); return; }
      pending.push(msg);
      if (!flushTimer) { flushTimer = setTimeout(flush, 300); }
    };
    socket.onclose = function () {
      socket = null;
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    attempt += 1;
    setState(attempt > 3 ? "offline" : "reconnecting");
    // 0.5 s, 1 s, 2 s ... capped at 30 s; full jitter on the upper half so tabs do not stampede
    var base = Math.min(30000, 500 * Math.pow(2, Math.min(attempt - 1, 6)));
    setTimeout(connect, base / 2 + Math.random() * base / 2);
  }

  window.lulupayRealtime = {
    setPartners: function (next) {
      next = (next || []).slice().sort();
      if (JSON.stringify(next) !== JSON.stringify(partners)) {
        partners = next;
        subscribe();
      }
    },
    state: function () { return state; }
  };

  function start() {
    if (window.dash_clientside && window.dash_clientside.set_props && document.getElementById("badge-live")) {
      connect();
    } else {
      setTimeout(start, 100);
    }
  }
  start();
})();
