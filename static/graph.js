// The service graph: zoom and pan through the SVG's viewBox (buttons, wheel, drag, keys),
// and hover or focus on a box picks out its calls. The view survives htmx's live refresh
// (the layout is deterministic, so the same viewBox shows the same services).
(function () {
  "use strict";
  var view = null; // {x, y, w, h} while zoomed or panned; null shows the whole graph
  var focusedNode = null;
  var drag = null;
  var dragged = false;

  function svg() { return document.querySelector("#graph svg.service-graph"); }

  function full(s) {
    return { x: 0, y: 0, w: s.width.baseVal.value, h: s.height.baseVal.value };
  }

  function apply(s) {
    var v = view || full(s);
    s.setAttribute("viewBox", [v.x, v.y, v.w, v.h].map(function (n) { return Math.round(n * 10) / 10; }).join(" "));
  }

  function zoom(s, factor, cx, cy) {
    var v = view || full(s), f = full(s);
    var w = Math.min(f.w, Math.max(f.w / 20, v.w / factor));
    var h = w * f.h / f.w;
    if (cx === undefined) { cx = v.x + v.w / 2; cy = v.y + v.h / 2; }
    var x = cx - (cx - v.x) * w / v.w, y = cy - (cy - v.y) * h / v.h;
    view = w >= f.w ? null : clamp(s, { x: x, y: y, w: w, h: h });
    apply(s);
  }

  function clamp(s, v) {
    var f = full(s);
    v.x = Math.min(Math.max(v.x, 0), f.w - v.w);
    v.y = Math.min(Math.max(v.y, 0), f.h - v.h);
    return v;
  }

  function pan(s, dx, dy) {
    if (!view) return;
    view = clamp(s, { x: view.x + dx, y: view.y + dy, w: view.w, h: view.h });
    apply(s);
  }

  // Pointer position in the drawing's units.
  function point(s, event) {
    var r = s.getBoundingClientRect(), v = view || full(s);
    return { x: v.x + (event.clientX - r.left) * v.w / r.width, y: v.y + (event.clientY - r.top) * v.h / r.height };
  }

  function pick(s, name) {
    s.classList.toggle("picking", name !== null);
    s.querySelectorAll(".picked").forEach(function (el) { el.classList.remove("picked"); });
    if (name === null) return;
    s.querySelectorAll("[data-parent]").forEach(function (el) {
      if (el.getAttribute("data-parent") === name || el.getAttribute("data-child") === name) {
        el.classList.add("picked");
        s.querySelectorAll("a.node-link").forEach(function (n) {
          var other = n.getAttribute("data-node");
          if (other === el.getAttribute("data-parent") || other === el.getAttribute("data-child")) n.classList.add("picked");
        });
      }
    });
    s.querySelectorAll("a.node-link").forEach(function (n) {
      if (n.getAttribute("data-node") === name) n.classList.add("picked");
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("#graph [data-zoom]");
    var s = svg();
    if (button && s) {
      var kind = button.getAttribute("data-zoom");
      if (kind === "fit") { view = null; apply(s); } else { zoom(s, kind === "in" ? 1.5 : 1 / 1.5); }
      return;
    }
    if (dragged && event.target.closest("svg.service-graph")) {
      event.preventDefault();
      event.stopPropagation();
    }
    dragged = false;
  }, true);

  document.addEventListener("wheel", function (event) {
    var s = event.target.closest && event.target.closest("svg.service-graph");
    if (!s) return;
    event.preventDefault();
    var p = point(s, event);
    zoom(s, event.deltaY < 0 ? 1.25 : 1 / 1.25, p.x, p.y);
  }, { passive: false });

  document.addEventListener("pointerdown", function (event) {
    var s = event.target.closest("svg.service-graph");
    if (!s || event.button !== 0) return;
    drag = { x: event.clientX, y: event.clientY, id: event.pointerId };
    dragged = false;
  });

  document.addEventListener("pointermove", function (event) {
    var s = svg();
    if (!drag || !s || event.pointerId !== drag.id) return;
    var dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (!dragged && Math.abs(dx) + Math.abs(dy) < 4) return;
    if (!dragged) { dragged = true; s.classList.add("dragging"); }
    var r = s.getBoundingClientRect(), v = view || full(s);
    pan(s, -dx * v.w / r.width, -dy * v.h / r.height);
    drag.x = event.clientX;
    drag.y = event.clientY;
  });

  document.addEventListener("pointerup", function () {
    var s = svg();
    if (s) s.classList.remove("dragging");
    drag = null;
  });

  document.addEventListener("keydown", function (event) {
    var area = event.target.closest && event.target.closest("#graph .graph-view");
    var s = svg();
    if (!area || !s || event.altKey || event.ctrlKey || event.metaKey) return;
    var v = view || full(s), step = v.w / 8;
    var keys = {
      "+": function () { zoom(s, 1.5); }, "=": function () { zoom(s, 1.5); }, "-": function () { zoom(s, 1 / 1.5); },
      "0": function () { view = null; apply(s); },
      ArrowLeft: function () { pan(s, -step, 0); }, ArrowRight: function () { pan(s, step, 0); },
      ArrowUp: function () { pan(s, 0, -step); }, ArrowDown: function () { pan(s, 0, step); },
    };
    if (!keys[event.key]) return;
    event.preventDefault();
    keys[event.key]();
  });

  function nodeOf(target) {
    return target && target.closest ? target.closest("#graph a.node-link") : null;
  }

  document.addEventListener("mouseover", function (event) {
    var n = nodeOf(event.target), s = svg();
    if (s && event.target.closest && event.target.closest("#graph svg")) pick(s, n ? n.getAttribute("data-node") : focusedNode);
  });
  document.addEventListener("mouseout", function (event) {
    var s = svg();
    if (s && !(event.relatedTarget && s.contains(event.relatedTarget))) pick(s, focusedNode);
  });
  document.addEventListener("focusin", function (event) {
    var n = nodeOf(event.target), s = svg();
    focusedNode = n ? n.getAttribute("data-node") : null;
    if (s) pick(s, focusedNode);
  });

  // Keep the view, the picked node and the keyboard focus across the live refresh.
  document.addEventListener("htmx:afterSwap", function (event) {
    var s = svg();
    if (!s || !event.target || event.target.id !== "graph") return;
    if (view) {
      var f = full(s);
      view = view.w >= f.w ? null : clamp(s, view);
    }
    apply(s);
    if (focusedNode !== null) {
      var again = Array.prototype.find.call(s.querySelectorAll("a.node-link"), function (n) {
        return n.getAttribute("data-node") === focusedNode;
      });
      if (again && document.activeElement === document.body) again.focus({ preventScroll: true });
    }
    pick(s, focusedNode);
  });
})();
