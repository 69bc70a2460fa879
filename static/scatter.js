// Dragging across the search scatter searches the time range dragged over.
// The plot (figure.scatter) names its time domain in data-start-ms / data-end-ms; the
// drag fills the search form's From/To (UTC, to the second), sets the range to
// "Custom range" and submits the form, so htmx runs the search and puts it in the URL.
// A press that moves less than a few pixels is a click (a dot still opens its trace).
(function () {
  "use strict";
  var THRESHOLD_PX = 4;

  function utcSeconds(ms) {
    return new Date(ms).toISOString().slice(0, 19);
  }

  function fraction(plot, clientX) {
    var box = plot.getBoundingClientRect();
    return Math.min(1, Math.max(0, (clientX - box.left) / box.width));
  }

  function search(figure, lo, hi) {
    var form = document.querySelector("form.search-form");
    if (!form) return;
    var start = Number(figure.dataset.startMs);
    var span = Number(figure.dataset.endMs) - start;
    var from = Math.floor((start + lo * span) / 1000) * 1000;
    var to = Math.ceil((start + hi * span) / 1000) * 1000;
    form.elements.range.value = "custom";
    form.elements.start.value = utcSeconds(from);
    form.elements.end.value = utcSeconds(Math.max(to, from + 1000));
    form.requestSubmit();
  }

  // Dots are links: a browser would start dragging the link itself instead.
  document.addEventListener("dragstart", function (ev) {
    if (ev.target.closest && ev.target.closest(".scatter-plot")) ev.preventDefault();
  });

  document.addEventListener("pointerdown", function (down) {
    var plot = down.target.closest && down.target.closest(".scatter-plot");
    if (!plot || down.button !== 0) return;
    var figure = plot.closest("figure.scatter");
    var x0 = down.clientX;
    var brush = null;

    function move(ev) {
      if (!brush && Math.abs(ev.clientX - x0) < THRESHOLD_PX) return;
      if (!brush) {
        brush = document.createElement("div");
        brush.className = "brush";
        plot.appendChild(brush);
      }
      var a = fraction(plot, x0), b = fraction(plot, ev.clientX);
      brush.style.left = Math.min(a, b) * 100 + "%";
      brush.style.width = Math.abs(b - a) * 100 + "%";
    }

    function swallowClick(ev) {
      ev.preventDefault();
      ev.stopPropagation();
    }

    function up(ev) {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      document.removeEventListener("pointercancel", up);
      if (!brush) return;
      brush.remove();
      // The release must not also follow a dot's link.
      document.addEventListener("click", swallowClick, { capture: true, once: true });
      setTimeout(function () { document.removeEventListener("click", swallowClick, { capture: true }); }, 0);
      if (ev.type === "pointercancel") return;
      var a = fraction(plot, x0), b = fraction(plot, ev.clientX);
      search(figure, Math.min(a, b), Math.max(a, b));
    }

    down.preventDefault();
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
    document.addEventListener("pointercancel", up);
  });
})();
