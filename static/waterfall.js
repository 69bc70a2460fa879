// Waterfall island: collapse/expand, error and match navigation, open span panels in the
// URL (?span=), rows and bars that open their span, event-marker tooltips, duration
// labels beside their bars, and minimap zoom. Started from [data-waterfall]; htmx swaps
// the waterfall, so every handler is delegated from document and re-reads the DOM when it runs.
(function () {
  "use strict";

  // Room a duration label needs beside its bar, as a fraction of the track: the same rule
  // as label_side() in app/analysis/waterfall.py, which places the labels of an unzoomed view.
  var LABEL_ROOM = 0.15;

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

  function nameLink(row) { return row.querySelector(":scope > .wf-line .wf-name"); }

  // Ask for the span's panel as its name link would (rows just swapped in may not have
  // been processed by htmx yet, and a plain click would then leave the page).
  function openSpan(row) {
    if (row.classList.contains("open")) return;
    var link = nameLink(row);
    if (!window.htmx) { link.click(); return; }
    window.htmx.ajax("GET", link.getAttribute("hx-get"), { target: row.querySelector(":scope > .wf-panel"), swap: "innerHTML" });
  }

  function closeSpan(row) {
    row.querySelector(":scope > .wf-panel").replaceChildren();
    row.classList.remove("open", "nav-opened");
    syncUrl();
  }

  // "Next error" follows the server's cause order (deepest error first), held in
  // data-error-order as [span id, row index] pairs. It opens each error's panel, closing
  // the one it opened before; a row not loaded yet is fetched with every row up to it.
  function goToError(wf, dir) {
    var order;
    try { order = JSON.parse(wf.dataset.errorOrder || "[]"); } catch (e) { order = []; }
    if (!order.length) return;
    var current = wf.querySelector(".wf-row.focused");
    var at = -1;
    for (var i = 0; current && i < order.length; i++) if (order[i][0] === current.dataset.spanId) at = i;
    var next = at === -1 ? (dir > 0 ? 0 : order.length - 1) : (at + dir + order.length) % order.length;
    var id = order[next][0];
    var row = document.getElementById("row-" + id);
    if (row) { focusRow(wf, row); return; }
    var more = wf.querySelector(".wf-more");
    if (!more || !window.htmx) return;
    var url = more.getAttribute("hx-get") + "&through=" + encodeURIComponent(order[next][1]);
    window.htmx.ajax("GET", url, { target: more, swap: "outerHTML" }).then(function () {
      var loaded = document.getElementById("row-" + id);
      if (loaded) focusRow(wf, loaded);
    });
  }

  function focusRow(wf, row) {
    var current = wf.querySelector(".wf-row.focused");
    if (current) {
      current.classList.remove("focused");
      if (current !== row && current.classList.contains("nav-opened")) closeSpan(current);
    }
    row.classList.add("focused");
    reveal(wf, row);
    if (!row.classList.contains("open")) {
      row.classList.add("nav-opened");
      openSpan(row);
    }
    nameLink(row).focus({ preventScroll: true });
    row.scrollIntoView({ block: "center" });
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
    placeLabels(wf);
  }

  // Put each duration label on the side of its bar with room, in the current zoom.
  function placeLabels(wf) {
    var rows = wf.querySelector(".wf-rows");
    var from = Number(rows.style.getPropertyValue("--va")) || 0;
    var width = Number(rows.style.getPropertyValue("--vw")) || 1;
    wf.querySelectorAll(".wf-track").forEach(function (track) {
      var s = Number(track.style.getPropertyValue("--s")), w = Number(track.style.getPropertyValue("--w"));
      var start = (s - from) / width, end = (s + w - from) / width;
      var side = end <= 1 - LABEL_ROOM ? "right" : start >= LABEL_ROOM ? "left" : "inside";
      var label = track.querySelector(".wf-dur");
      if (label) label.className = "wf-dur at-" + side;
    });
  }

  // One tooltip for every event marker, filled from the marker's hidden details (cloned
  // nodes, so span text stays text) and placed beside it within the window.
  function tooltip() {
    var tip = document.getElementById("wf-tip");
    if (!tip) {
      tip = document.createElement("div");
      tip.id = "wf-tip";
      tip.className = "wf-tip";
      tip.setAttribute("role", "tooltip");
      tip.hidden = true;
      document.body.appendChild(tip);
    }
    return tip;
  }

  function showTip(marker) {
    var detail = marker.querySelector(".wf-event-detail");
    if (!detail) return;
    var tip = tooltip();
    tip.replaceChildren.apply(tip, Array.prototype.map.call(detail.children, function (c) { return c.cloneNode(true); }));
    tip.hidden = false;
    var box = marker.getBoundingClientRect();
    var left = Math.min(Math.max(4, box.left + box.width / 2 - tip.offsetWidth / 2), window.innerWidth - tip.offsetWidth - 4);
    var top = box.bottom + 6;
    if (top + tip.offsetHeight > window.innerHeight - 4) top = Math.max(4, box.top - tip.offsetHeight - 6);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  }

  function hideTip() {
    var tip = document.getElementById("wf-tip");
    if (tip) tip.hidden = true;
  }

  document.addEventListener("mouseover", function (event) {
    var marker = event.target.closest && event.target.closest(".wf-event");
    if (marker) showTip(marker);
  });
  document.addEventListener("mouseout", function (event) {
    var marker = event.target.closest && event.target.closest(".wf-event");
    if (marker && !marker.contains(event.relatedTarget) && document.activeElement !== marker) hideTip();
  });
  document.addEventListener("focusin", function (event) {
    var marker = event.target.closest && event.target.closest(".wf-event");
    if (marker) showTip(marker); else hideTip();
  });
  document.addEventListener("focusout", function (event) {
    if (event.target.closest && event.target.closest(".wf-event")) hideTip();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") hideTip();
  });

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
    } else if (target.closest("[data-nav-error]")) {
      goToError(wf, Number(target.closest("[data-nav-error]").dataset.dir));
    } else if (target.closest("[data-nav]")) {
      var nav = target.closest("[data-nav]");
      navigate(wf, nav.dataset.nav, Number(nav.dataset.dir));
    } else if (target.closest("[data-close-span]")) {
      closeSpan(target.closest(".wf-row"));
    } else if (target.closest("[data-zoom-reset]")) {
      setZoom(wf, 0, 1);
    } else if (target.closest(".wf-event")) {
      openSpan(target.closest(".wf-row"));
    } else if (target.closest("[data-open-span]") && !target.closest("a, button, input") && !String(window.getSelection())) {
      // A click anywhere on a row's line (its bar included) opens the span, or closes it;
      // not one that ends selecting the row's text.
      var line = target.closest("[data-open-span]").parentElement;
      if (line.classList.contains("open")) closeSpan(line); else openSpan(line);
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var panel = event.detail.target;
    if (panel.classList && panel.classList.contains("wf-panel")) {
      panel.closest(".wf-row").classList.add("open");
      syncUrl();
    }
    // A page of rows replaces the .wf-more it was loaded by (outerHTML), and htmx then
    // reports one swap per new row: tidy the whole waterfall once, after the last of them.
    if (!tidying) {
      tidying = true;
      window.requestAnimationFrame(function () {
        tidying = false;
        var wf = document.querySelector("[data-waterfall]");
        if (wf) { applyCollapse(wf); placeLabels(wf); }
      });
    }
    hideTip();
  });
  var tidying = false;

  // Keyboard, while focus is on the rows' box or a row's line (never in a text field, nor on a
  // control of an open panel): j/k or the up and down arrows move between visible rows, Enter
  // opens the span's details and Escape closes them (from inside them too), left collapses
  // the subtree (or goes to the parent), right expands it (or goes to the first child).
  function visibleRows(wf) { return rowsOf(wf).filter(function (r) { return !r.hidden; }); }

  function moveTo(wf, row) {
    var current = wf.querySelector(".wf-row.focused");
    if (current) current.classList.remove("focused");
    row.classList.add("focused");
    nameLink(row).focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function onKey(event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey || !target.closest) return false;
    if (target.closest("input, textarea, select, [contenteditable]")) return false;
    var box = target.closest(".wf-rows");
    var wf = box && box.closest("[data-waterfall]");
    if (!wf) return false;
    var key = event.key;
    var row = target.closest(".wf-row");
    if (row && target.closest(".wf-panel")) {
      // In an open panel only Escape is ours: its links, buttons and scrolling keep the rest.
      if (key !== "Escape") return false;
    } else if (!row) {
      row = wf.querySelector(".wf-row.focused:not([hidden])");
    }
    var rows = visibleRows(wf);
    var at = row ? rows.indexOf(row) : -1;
    var onName = target === box || (row && target === nameLink(row));
    if (key === "j" || key === "ArrowDown" || key === "k" || key === "ArrowUp") {
      var next = rows[key === "j" || key === "ArrowDown" ? at + 1 : Math.max(at - 1, 0)];
      if (next) moveTo(wf, next);
      else if (wf.querySelector(".wf-more")) wf.querySelector(".wf-more").scrollIntoView({ block: "end" });
    } else if (!row) {
      return false;
    } else if (key === "Enter") {
      if (!onName) return false; // a row's own buttons (collapse, event markers) keep Enter
      openSpan(row);
      moveTo(wf, row);
    } else if (key === "Escape") {
      // On an event marker, Escape only hides the marker's tooltip.
      if (!row.classList.contains("open") || target.closest(".wf-event")) return false;
      closeSpan(row);
      moveTo(wf, row);
    } else if (key === "ArrowLeft" || key === "ArrowRight") {
      var depth = Number(row.dataset.depth);
      var parent = Number(row.dataset.children) > 0;
      var collapsed = row.classList.contains("collapsed");
      if (key === "ArrowLeft" && parent && !collapsed) { row.classList.add("collapsed"); applyCollapse(wf); }
      else if (key === "ArrowRight" && collapsed) { row.classList.remove("collapsed"); applyCollapse(wf); }
      else if (key === "ArrowLeft") {
        for (var i = at - 1; i >= 0; i--) if (Number(rows[i].dataset.depth) < depth) { moveTo(wf, rows[i]); break; }
      } else if (rows[at + 1] && Number(rows[at + 1].dataset.depth) > depth) moveTo(wf, rows[at + 1]);
    } else {
      return false;
    }
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (onKey(event)) event.preventDefault();
  });

  // A row whose name gets focus (Tab, a click) is where the keys start from.
  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest(".wf-row");
    var wf = row && row.closest("[data-waterfall]");
    if (!wf || row.classList.contains("focused")) return;
    var current = wf.querySelector(".wf-row.focused");
    if (current) current.classList.remove("focused");
    row.classList.add("focused");
  });

  // A filter's URL names only the fields it uses, so that a shared link reads.
  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.detail.elt.matches("[data-span-filter]")) return;
    var params = event.detail.parameters;
    Object.keys(params).forEach(function (key) { if (params[key] === "") delete params[key]; });
  });

  // A filter pill applies the filter as soon as it is ticked.
  document.addEventListener("change", function (event) {
    var pill = event.target.closest && event.target.closest(".pill input");
    if (pill) pill.form.requestSubmit();
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
