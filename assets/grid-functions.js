// Value formatters the AG Grid column definitions name ("valueFormatter": {"function": "binaryBytes(params.value)"}).
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});

// Bytes in binary units, as the server writes them everywhere (layouts/figures.format_bytes):
// "129.4 MiB", "474.0 KiB", "812 B"; "—" for none.
dagfuncs.binaryBytes = function (n) {
  if (n === null || n === undefined || isNaN(n)) {
    return "—";
  }
  var units = ["B", "KiB", "MiB", "GiB", "TiB"];
  var i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
};

// A partner id cell that opens the one-partner view (/partners/<id>) with the page's period and
// refresh, without its partner selection ("cellRenderer": "PartnerLink"). The cell's value (and
// the CSV) stays the plain id.
var dagcomponentfuncs = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});
dagcomponentfuncs.PartnerLink = function (props) {
  var id = props.value;
  if (!id) {
    return "";
  }
  var params = new URLSearchParams(window.location.search);
  params.delete("partner");
  var query = params.toString();
  return React.createElement("a", {href: "/partners/" + encodeURIComponent(id) + (query ? "?" + query : ""),
                                   "data-partner-link": id}, id);
};

// The /alerts page's cells. A severity as a coloured badge ("cellRenderer": "SeverityBadge").
var SEVERITY_CLASSES = {critical: "text-bg-danger", warning: "text-bg-warning", info: "text-bg-info"};
dagcomponentfuncs.SeverityBadge = function (props) {
  if (!props.value) {
    return "";
  }
  return React.createElement("span", {className: "badge " + (SEVERITY_CLASSES[props.value] || "text-bg-secondary"),
                                      "data-severity": props.value}, props.value);
};

// An alert's acknowledged / silenced badges ("cellRenderer": "AlertFlags").
dagcomponentfuncs.AlertFlags = function (props) {
  var d = props.data || {};
  var badges = [];
  if (d.acknowledged) {
    badges.push(React.createElement("span", {key: "ack", className: "badge text-bg-secondary me-1",
      title: (d.ack_comment || ""), "data-flag": "acknowledged"}, "acknowledged" + (d.ack_by ? " by " + d.ack_by : "")));
  }
  if (d.silenced) {
    badges.push(React.createElement("span", {key: "sil", className: "badge text-bg-dark border me-1",
      title: (d.silenced_by || []).join(", "), "data-flag": "silenced"}, "silenced"));
  }
  return React.createElement("span", null, badges);
};

// A row's buttons: they set the grid's cellRendererData ({value: "ack" | "silence" | "expire",
// rowId, ...}) for the page's callbacks (callbacks/alert_dialogs.py).
function rowButton(props, action, label, extra) {
  return React.createElement("button", Object.assign({
    key: action, type: "button", className: "btn btn-sm btn-outline-secondary py-0 me-1",
    "data-alert-action": action, "data-row-id": props.data && props.data.id,
    onClick: function () { props.setData(action); }
  }, extra || {}), label);
}

dagcomponentfuncs.AlertActions = function (props) {
  var d = props.data || {};
  return React.createElement("span", null, [
    rowButton(props, "ack", d.acknowledged ? "Acknowledged" : "Acknowledge", {disabled: !!d.acknowledged}),
    rowButton(props, "silence", "Silence")
  ]);
};

dagcomponentfuncs.SilenceActions = function (props) {
  var d = props.data || {};
  if (d.state === "expired") {
    return "";
  }
  return rowButton(props, "expire", "Expire");
};

var SILENCE_CLASSES = {active: "text-bg-primary", pending: "text-bg-info", expired: "text-bg-secondary"};
dagcomponentfuncs.SilenceState = function (props) {
  return React.createElement("span", {className: "badge " + (SILENCE_CLASSES[props.value] || "text-bg-secondary")},
                             props.value || "");
};

var OUTCOME_CLASSES = {delivered: "text-bg-success", retry: "text-bg-warning", rejected: "text-bg-danger",
                       expired: "text-bg-secondary"};
dagcomponentfuncs.DeliveryOutcome = function (props) {
  return React.createElement("span", {className: "badge " + (OUTCOME_CLASSES[props.value] || "text-bg-secondary")},
                             props.value || "");
};
