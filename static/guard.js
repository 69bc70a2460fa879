// Every page loads this beside htmx. htmx puts what it fetched into the page as HTML, so
// it may swap only HTML fragments that this server rendered for it: an answer of any
// other type (the JSON API, a download, something a redirect led to) is never swapped,
// whatever URL an attribute pointed at. htmx's own settings (the htmx-config meta tag in
// base.html) already refuse other origins, <script> in fragments and eval.
(function () {
  "use strict";

  function isOurFragment(xhr) {
    var type = (xhr.getResponseHeader("Content-Type") || "").split(";")[0].trim().toLowerCase();
    if (type !== "text/html") return false;
    try {
      return new URL(xhr.responseURL || location.href).origin === location.origin;
    } catch (e) {
      return false;
    }
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (event.detail.shouldSwap && xhr && !isOurFragment(xhr)) {
      event.detail.shouldSwap = false;
      event.detail.isError = true;
    }
  });

  // Live polling (hx-trigger="every Ns") pauses while the tab is hidden or while anything
  // matching the element's data-pause-while selector exists (someone is reading or picking).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-live")) return;
    var pauseWhile = elt.getAttribute("data-pause-while");
    if (document.hidden || (pauseWhile && document.querySelector(pauseWhile))) event.preventDefault();
  });
})();
