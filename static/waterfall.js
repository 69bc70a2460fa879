// Waterfall island: collapse/expand, error and match navigation, open span panels in the
// URL (?span=), and minimap zoom. Started from [data-waterfall]; htmx swaps the waterfall,
// so every handler is delegated from document and re-reads the DOM when it runs.
(function () {
  "use strict";

  function rowsOf(wf) { return Array.prototype.slice.call(wf.querySelectorAll(".wf-row")); }

  // Hide every row below a collapsed row until the depth climbs back to its level.
  function applyCollapse(wf) {
    var hideBelow = Infinity;
    rowsOf(wf).forEach(function (row) {
      var depth = Number(row.dataset.depth);
      if (depth <= hideBelow) hideBelow = Infinity;
      var hidden = depth > hideBelow;
      row.hidden = hidden;
      if (!hidden && row.classList.contains("collapsed")) hideBelow = depth;
      var toggle = row.querySelector(":scope > .wf-line [data-toggle]");
      if (toggle) toggle.setAttribute("aria-expanded", String(!row.classList.contains("collapsed")));
    });
  }

  // Expand the ancestors of a row so that it can be seen.
  function reveal(wf, row) {
    var rows = rowsOf(wf);
    var depth = Number(row.dataset.depth);
    for (var i = rows.indexOf(row) - 1; i >= 0 && depth > 0; i--) {
      var d = Number(rows[i].dataset.depth);
      if (d < depth) { rows[i].classList.remove("collapsed"); depth = d; }
    }
    applyCollapse(wf);
  }

  // Large traces load their rows in pages: past the last loaded match, fetch the next page.
  function navigate(wf, cls, dir) {
    var rows = rowsOf(wf).filter(function (r) { return r.classList.contains(cls); });
    var current = wf.querySelector(".wf-row.focused");
    var at = current ? rows.indexOf(current) : -1;
    var more = wf.querySelector(".wf-more");
    if (more && dir > 0 && at === rows.length - 1) {
      more.scrollIntoView({ block: "end" });
      return;
    }
    if (!rows.length) return;
    var next = rows[(at + dir + rows.length) % rows.length];
    if (at === -1 && dir < 0) next = rows[rows.length - 1];
    if (current) current.classList.remove("focused");
    next.classList.add("focused");
    reveal(wf, next);
    next.scrollIntoView({ block: "center" });
  }

  // The open panels are the page's state: keep ?span= in step without adding history entries.
  function syncUrl() {
    var url = new URL(window.location.href);
    url.searchParams.delete("span");
    document.querySelectorAll(".wf-row.open").forEach(function (row) {
      url.searchParams.append("span", row.dataset.spanId);
    });
    window.history.replaceState(window.history.state, "", url.toString());
  }

  function setZoom(wf, from, to) {
    var rows = wf.querySelector(".wf-rows");
    var width = Math.max(to - from, 0.0005);
    rows.style.setProperty("--va", String(from));
    rows.style.setProperty("--vw", String(width));
    var total = Number(wf.dataset.totalNs);
    wf.querySelectorAll("[data-axis] span").forEach(function (tick) {
      tick.textContent = formatNs((from + Number(tick.dataset.frac) * width) * total);
    });
    var win = wf.querySelector(".mm-window");
    if (win) { win.setAttribute("x", String(from * 1000)); win.setAttribute("width", String(width * 1000)); }
  }

  function formatNs(ns) {
    if (ns < 1e3) return Math.round(ns) + "ns";
    if (ns < 1e6) return Math.round(ns / 1e3) + "µs";
    if (ns < 1e9) return Number((ns / 1e6).toPrecision(3)) + "ms";
    return Number((ns / 1e9).toPrecision(3)) + "s";
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var wf = target.closest && target.closest("[data-waterfall]");
    if (!wf) return;
    var toggle = target.closest("[data-toggle]");
    if (toggle) {
      toggle.closest(".wf-row").classList.toggle("collapsed");
      applyCollapse(wf);
    } else if (target.closest("[data-collapse-all]")) {
      rowsOf(wf).forEach(function (r) { if (Number(r.dataset.children) > 0) r.classList.add("collapsed"); });
      applyCollapse(wf);
    } else if (target.closest("[data-expand-all]")) {
      rowsOf(wf).forEach(function (r) { r.classList.remove("collapsed"); });
      applyCollapse(wf);
    } else if (target.closest("[data-nav]")) {
      var nav = target.closest("[data-nav]");
      navigate(wf, nav.dataset.nav, Number(nav.dataset.dir));
    } else if (target.closest("[data-close-span]")) {
      var row = target.closest(".wf-row");
      row.querySelector(".wf-panel").replaceChildren();
      row.classList.remove("open");
      syncUrl();
    } else if (target.closest("[data-zoom-reset]")) {
      setZoom(wf, 0, 1);
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var panel = event.detail.target;
    if (panel.classList && panel.classList.contains("wf-panel")) {
      panel.closest(".wf-row").classList.add("open");
      syncUrl();
    }
    var wf = panel.closest && panel.closest("[data-waterfall]");
    if (wf) applyCollapse(wf);
  });

  // Minimap: drag across it to zoom the waterfall to that time window; a click resets.
  var drag = null;
  document.addEventListener("mousedown", function (event) {
    var map = event.target.closest && event.target.closest("[data-minimap]");
    if (!map) return;
    event.preventDefault();
    drag = { map: map, from: fraction(map, event) };
  });
  document.addEventListener("mouseup", function (event) {
    if (!drag) return;
    var to = fraction(drag.map, event);
    var wf = drag.map.closest("[data-waterfall]");
    var lo = Math.min(drag.from, to), hi = Math.max(drag.from, to);
    setZoom(wf, hi - lo < 0.005 ? 0 : lo, hi - lo < 0.005 ? 1 : hi);
    drag = null;
  });
  function fraction(map, event) {
    var box = map.getBoundingClientRect();
    return Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
  }
})();
