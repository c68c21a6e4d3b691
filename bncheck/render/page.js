// bncheck HTML report: builds each layer table from the data embedded in the page (#bncheck-data),
// sortable by any column, filtered by name, code (BN002) or depth range (#10-20), paged; nothing is fetched.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("bncheck-data").textContent);
  var PAGE = 500;
  var at = {};
  data.columns.forEach(function (name, i) { at[name] = i; });
  var ROLES = ["gamma", "beta", "moving_mean", "moving_variance"];

  function fmt(x) {
    if (x === null || x === undefined) return "";
    if (x === 0) return "0";
    var a = Math.abs(x);
    return (a >= 1e4 || a < 1e-3) ? x.toExponential(2) : String(Number(x.toPrecision(4)));
  }
  function plain(key, title) {
    return { title: title, value: function (r) { return r.row[at[key]]; }, text: function (r) { return fmt(r.row[at[key]]); }, numeric: true };
  }
  function change(role) {
    return {
      title: role,
      numeric: true,
      value: function (r) { var c = r.row[at[role]]; return c && c[1] !== null ? c[1] : (c && c[0] === "identical" ? 0 : null); },
      text: function (r) { var c = r.row[at[role]]; if (!c) return "-"; return c[1] === null || c[0] === "identical" ? c[0] : c[0] + " " + fmt(c[1]); }
    };
  }
  var common = {
    index: { title: "#", numeric: true, value: function (r) { return r.i + 1; }, text: function (r) { return String(r.i + 1); } },
    layer: { title: "layer", value: function (r) { return r.row[at.layer]; }, text: function (r) { return r.row[at.layer]; } },
    frozen: { title: "frozen", value: function (r) { return r.row[at.frozen] ? 1 : 0; }, text: function (r) { return r.row[at.frozen] ? "frozen" : ""; } },
    codes: { title: "codes", codes: true, value: function (r) { return r.row[at.codes].join(" "); } }
  };
  var COLUMNS = data.kind === "diff" ? [
    common.index, common.layer,
    { title: "state", value: function (r) { return r.row[at.state]; }, text: function (r) { return r.row[at.state]; } },
    common.frozen
  ].concat(ROLES.map(change), [plain("variance_ratio", "var B/A"), common.codes]) : [
    common.index, common.layer, plain("channels", "ch"), common.frozen,
    { title: "vars", value: function (r) { return r.row[at.vars]; }, text: function (r) { return r.row[at.vars]; } },
    plain("mean_min", "mean min"), plain("mean_max", "mean max"),
    plain("var_min", "var min"), plain("var_max", "var max"),
    plain("abs_gamma_min", "|γ| min"), plain("abs_gamma_max", "|γ| max"),
    plain("amplification_max", "amp. max"), common.codes
  ];

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function Table(host, rows) {
    this.host = host;
    this.all = rows.map(function (row, i) { return { i: i, row: row }; });
    this.sort = 0;
    this.ascending = true;
    this.page = 0;
    this.filter = "";
    this.onlyFindings = false;
    this.build();
    this.update();
  }
  Table.prototype.build = function () {
    var self = this;
    var controls = el("div", { "class": "controls" });
    this.input = el("input", { type: "search", placeholder: "filter: name, code (BN002) or #from-to", "aria-label": "filter layers" });
    this.input.addEventListener("input", function () { self.filter = self.input.value; self.page = 0; self.update(); });
    var label = el("label");
    this.check = el("input", { type: "checkbox" });
    this.check.addEventListener("change", function () { self.onlyFindings = self.check.checked; self.page = 0; self.update(); });
    label.appendChild(this.check);
    label.appendChild(document.createTextNode(" with findings only"));
    this.status = el("span", { "class": "status" });
    this.prev = el("button", { type: "button" }, "‹ previous");
    this.next = el("button", { type: "button" }, "next ›");
    this.prev.addEventListener("click", function () { self.page -= 1; self.update(); });
    this.next.addEventListener("click", function () { self.page += 1; self.update(); });
    [this.input, label, this.status, this.prev, this.next].forEach(function (n) { controls.appendChild(n); });
    this.table = el("table");
    var head = el("tr");
    this.heads = COLUMNS.map(function (column, k) {
      var th = el("th", { scope: "col", "aria-sort": "none" });
      var button = el("button", { type: "button" }, column.title);
      button.addEventListener("click", function () {
        self.ascending = self.sort === k ? !self.ascending : true;
        self.sort = k;
        self.update();
      });
      th.appendChild(button);
      if (column.numeric) th.className = "num";
      head.appendChild(th);
      return th;
    });
    var thead = el("thead");
    thead.appendChild(head);
    this.body = el("tbody");
    this.table.appendChild(thead);
    this.table.appendChild(this.body);
    this.host.appendChild(controls);
    this.host.appendChild(this.table);
  };
  Table.prototype.matches = function () {
    var text = this.filter.trim();
    var range = /^#(\d+)(?:-(\d+))?$/.exec(text);
    var code = /^BN\d{3}$/i.test(text) ? text.toUpperCase() : null;
    var needle = text.toLowerCase();
    var only = this.onlyFindings;
    return this.all.filter(function (r) {
      var codes = r.row[at.codes];
      if (only && !codes.length) return false;
      if (!text) return true;
      if (range) { var lo = +range[1], hi = +(range[2] || range[1]); return r.i + 1 >= lo && r.i + 1 <= hi; }
      if (code) return codes.indexOf(code) >= 0;
      return r.row[at.layer].toLowerCase().indexOf(needle) >= 0;
    });
  };
  Table.prototype.update = function () {
    var column = COLUMNS[this.sort];
    var sign = this.ascending ? 1 : -1;
    var rows = this.matches();
    rows.sort(function (p, q) {
      var a = column.value(p), b = column.value(q);
      if (a === b) return p.i - q.i;
      if (a === null || a === undefined) return 1;
      if (b === null || b === undefined) return -1;
      return (a < b ? -1 : 1) * sign;
    });
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    this.page = Math.min(Math.max(this.page, 0), pages - 1);
    var start = this.page * PAGE, shown = rows.slice(start, start + PAGE);
    var body = el("tbody");
    shown.forEach(function (r) {
      var tr = el("tr", { "data-index": String(r.i) });
      if (r.row[at.severity]) tr.className = r.row[at.severity];
      if (r.row[at.frozen]) tr.className += " frozen";
      COLUMNS.forEach(function (c) {
        var td = el("td", c.numeric ? { "class": "num" } : {});
        if (c.codes) {
          r.row[at.codes].forEach(function (code, k) {
            if (k) td.appendChild(document.createTextNode(" "));
            td.appendChild(el("a", { href: "#" + r.row[at.findings][k] }, code));
          });
          if (!r.row[at.codes].length) td.textContent = "ok";
        } else {
          td.textContent = c.text(r);
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    this.table.replaceChild(body, this.body);
    this.body = body;
    var self = this;
    this.heads.forEach(function (th, k) {
      th.setAttribute("aria-sort", k === self.sort ? (self.ascending ? "ascending" : "descending") : "none");
    });
    this.status.textContent = rows.length
      ? "rows " + (start + 1) + "–" + (start + shown.length) + " of " + rows.length + (rows.length < this.all.length ? " (of " + this.all.length + ")" : "")
      : "no layer matches";
    this.prev.disabled = this.page === 0;
    this.next.disabled = this.page >= pages - 1;
  };
  Table.prototype.show = function (first, last) {
    this.filter = first === last ? "#" + (first + 1) : "#" + (first + 1) + "-" + (last + 1);
    this.input.value = this.filter;
    this.page = 0;
    this.update();
  };

  var tables = {};
  Array.prototype.forEach.call(document.querySelectorAll("div.table"), function (host) {
    var key = host.getAttribute("data-model");
    var rows = key === "diff" ? data.rows : data.models[+key].rows;
    tables[key] = new Table(host, rows);
  });
  // A click on a chart column shows its layers in the table of the same model (a link goes to the finding too).
  Array.prototype.forEach.call(document.querySelectorAll("svg.chart g.col"), function (g) {
    g.addEventListener("click", function () {
      var host = g.closest("section.model").querySelector("div.table");
      var table = host && tables[host.getAttribute("data-model")];
      if (!table) return;
      table.show(+g.getAttribute("data-first"), +g.getAttribute("data-last"));
      if (!g.parentNode || g.parentNode.tagName.toLowerCase() !== "a") host.scrollIntoView({ block: "start" });
    });
  });
  // A link to a finding listed behind "N more" opens that list.
  function reveal() {
    var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    for (var node = target; node; node = node.parentElement) {
      if (node.tagName && node.tagName.toLowerCase() === "details") node.open = true;
    }
    if (target) target.scrollIntoView({ block: "center" });
  }
  window.addEventListener("hashchange", reveal);
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
  });
  reveal();
  document.documentElement.setAttribute("data-ready", "true");
})();
