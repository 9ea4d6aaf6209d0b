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
