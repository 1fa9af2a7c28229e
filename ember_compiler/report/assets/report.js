// ember report: the row table (filters, drill-down) and a run's recorded inputs and outputs, drawn from
// the JSON in #ember-data. Charts are SVG already in the page; this script only filters and expands.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("ember-data").textContent);
  const MAX_ROWS = 1000; // rows drawn at once; a filter narrows the rest
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const show = (v) => (v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v));

  // -- a recorded value: strings as text, lists numbered, objects (vote counts, usage) as small tables --
  function value(v, depth) {
    if (v === null || v === undefined) return '<span class="null">null</span>';
    if (typeof v === "string") return v.length > 80 || v.includes("\n") ? "<pre>" + esc(v) + "</pre>" : "<code>" + esc(v) + "</code>";
    if (typeof v !== "object") return "<code>" + esc(v) + "</code>";
    if (depth > 3) return "<code>" + esc(JSON.stringify(v)) + "</code>";
    if (Array.isArray(v)) {
      if (!v.length) return "<code>[]</code>";
      return '<ol start="0">' + v.map((x) => "<li>" + value(x, depth + 1) + "</li>").join("") + "</ol>";
    }
    const keys = Object.keys(v);
    if (!keys.length) return "<code>{}</code>";
    return '<table class="kv">' + keys.map((k) => '<tr data-k="' + esc(k) + '"><th>' + esc(k) + "</th><td>" + value(v[k], depth + 1) + "</td></tr>").join("") + "</table>";
  }

  function request(r) {
    const msgs = (r.messages || []).map((m) => '<div class="msg"><b>' + esc(m.role) + "</b>" + value(m.content, 1) + "</div>").join("");
    const texts = (r.texts || []).map((t, i) => '<li><span class="why">' + esc((r.finish_reasons || [])[i] || "") + "</span>" + value(t, 1) + "</li>").join("");
    const what = r.error ? '<span class="bad">failed: ' + esc(r.error) + "</span>"
      : (r.texts || []).length + " repl" + ((r.texts || []).length === 1 ? "y" : "ies");
    return '<details class="req"><summary>request to <code>' + esc(r.binding || "") + "</code> · " + what +
      (r.cached ? " · cached" : "") + "</summary>" +
      '<div class="msgs">' + msgs + '</div><ol class="replies" start="0">' + texts + "</ol></details>";
  }

  // one row's recorded nodes (plan order), each with its inputs, outputs and requests
  function drill(records) {
    if (!records) return '<p class="note">' + esc(data.io_note || "Nothing was recorded for this row.") + "</p>";
    const byNode = new Map();
    for (const r of records) {
      if (!byNode.has(r.node)) byNode.set(r.node, { node: null, requests: [] });
      const slot = byNode.get(r.node);
      if (r.kind === "node") slot.node = r; else slot.requests.push(r);
    }
    const order = data.order.filter((n) => byNode.has(n)).concat([...byNode.keys()].filter((n) => !data.order.includes(n)));
    return order.map((id) => {
      const { node, requests } = byNode.get(id);
      const color = data.colors[id] || "#bab0ac";
      return '<div class="io-node" data-node="' + esc(id) + '"><h4><span class="swatch" style="background:' + color + '"></span>' +
        esc(id) + (node ? ' <span class="op">' + esc(node.op || "") + "</span>" : "") + "</h4>" +
        (node && node.error ? '<p class="error">failed: ' + esc(node.error) + "</p>" : "") +
        (node ? '<div class="io-cols"><div><h5>inputs</h5>' + value(node.inputs, 0) + "</div><div><h5>outputs</h5>" +
          (node.skipped ? '<span class="null">skipped (its guard or an input was skipped)</span>' : value(node.outputs, 0)) + "</div></div>" : "") +
        requests.map(request).join("") + "</div>";
    }).join("");
  }

  function highlight(trace) {
    const svg = document.querySelector("svg.gantt");
    if (!svg) return;
    svg.classList.toggle("dim", trace !== null);
    for (const el of svg.querySelectorAll("rect.hl")) el.classList.remove("hl");
    if (trace !== null) for (const el of svg.querySelectorAll('rect[data-row="' + CSS.escape(trace) + '"]')) el.classList.add("hl");
  }

  // -- the row table --
  const body = document.getElementById("row-body");
  if (body && data.rows) {
    const status = document.getElementById("f-status"), metric = document.getElementById("f-metric"), text = document.getElementById("f-text");
    const count = document.getElementById("f-count");
    let open = null;
    const wrong = (r, m) => r.scores ? (r.scores[m] ?? 0) < 1 : false;
    const keep = (r) => {
      const m = metric.value, s = status.value;
      if (s === "wrong" && !wrong(r, m)) return false;
      if (s === "right" && (!r.scores || wrong(r, m))) return false;
      if (s === "failed" && !r.error) return false;
      if (s === "refusals" && !(r.refusals || r.empty)) return false;
      const q = text.value.trim().toLowerCase();
      return !q || [r.id, r.truth, r.predicted, r.error].some((x) => show(x).toLowerCase().includes(q));
    };
    const line = (r) => {
      const st = r.error ? '<span class="bad">failed</span>' : !r.scores ? "unscored" : wrong(r, metric.value) ? '<span class="bad">wrong</span>' : '<span class="ok">right</span>';
      const scores = r.scores ? Object.entries(r.scores).map(([k, v]) => esc(k) + " " + (+v).toFixed(2)).join(", ") : "";
      return '<tr class="row" data-key="' + esc(r.key) + '"><td>' + r.index + "</td><td>" + esc(show(r.id)) + "</td><td>" + esc(show(r.truth)) +
        "</td><td>" + esc(show(r.predicted)) + "</td><td>" + scores + "</td><td>" + r.calls + "</td><td>" +
        (r.cost_usd === null || r.cost_usd === undefined ? "?" : "$" + (+r.cost_usd).toFixed(4)) + "</td><td>" +
        (r.latency_s == null ? "" : (r.latency_s * 1000).toPrecision(3) + " ms") + "</td><td>" + st +
        (r.refusals || r.empty ? ' <span class="why">' + (r.refusals + r.empty) + " no answer</span>" : "") + "</td></tr>";
    };
    const byKey = new Map(data.rows.map((r) => [r.key, r]));
    const draw = () => {
      const rows = data.rows.filter(keep);
      body.innerHTML = rows.slice(0, MAX_ROWS).map(line).join("");
      count.textContent = rows.length + " of " + data.rows.length + " rows" + (rows.length > MAX_ROWS ? " (first " + MAX_ROWS + " shown)" : "");
      open = null;
      highlight(null);
    };
    body.addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr.row");
      if (!tr) return;
      const was = open;
      if (open) { open.nextElementSibling.remove(); open.classList.remove("open"); open = null; highlight(null); }
      if (was === tr) return;
      const r = byKey.get(tr.dataset.key);
      const detail = document.createElement("tr");
      detail.className = "detail";
      detail.innerHTML = '<td colspan="9">' + (r.error ? '<p class="error">' + esc(r.error) + "</p>" : "") +
        '<div class="kvline">outputs ' + value(r.outputs, 1) + "</div>" + drill(data.io ? data.io[r.key] : null) + "</td>";
      tr.after(detail);
      tr.classList.add("open");
      open = tr;
      highlight(r.trace);
    });
    for (const el of [status, metric]) el.addEventListener("change", draw);
    text.addEventListener("input", draw);
    draw();
  }

  // -- a single run's recording --
  const runIo = document.getElementById("run-io");
  if (runIo && data.io) {
    const keys = Object.keys(data.io);
    runIo.innerHTML = keys.map((k) => (keys.length > 1 ? "<h3>row " + esc(k) + "</h3>" : "") + drill(data.io[k])).join("");
  }
})();
