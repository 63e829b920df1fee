// Keyboard shortcuts of every page (a static file: the Content-Security-Policy allows no inline
// script). Nothing here reads or sends data; it only moves focus.
//
//   /        focus the search box (on a page without one, open the search page)
//   j / k    next / previous search result (the focused result is outlined)
//   Enter    open the focused result's first link (the browser's own behaviour on a link)
//   Escape   leave the search box, so j and k move through the results again
//
// Keys typed into a field (input, textarea, select, anything editable) are left alone, as are
// keys pressed with Ctrl, Alt or Meta.
(function () {
  "use strict";

  function typing(target) {
    if (!target || !target.tagName) { return false; }
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  function searchBox() {
    return document.getElementById("q");
  }

  function hits() {
    return Array.prototype.slice.call(document.querySelectorAll(".hits > .hit"));
  }

  function move(step) {
    var all = hits();
    if (all.length === 0) { return false; }
    var current = all.indexOf(document.querySelector(".hits > .hit.hit-current"));
    var next = current < 0 ? (step > 0 ? 0 : all.length - 1)
      : Math.min(all.length - 1, Math.max(0, current + step));
    all.forEach(function (hit) { hit.classList.remove("hit-current"); });
    var hit = all[next];
    hit.classList.add("hit-current");
    // Focus the result's first link, so Enter opens it and screen readers announce it.
    var link = hit.querySelector("a[href]");
    if (!hit.hasAttribute("tabindex")) { hit.setAttribute("tabindex", "-1"); }
    (link || hit).focus({ preventScroll: true });
    hit.scrollIntoView({ block: "nearest" });
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey) { return; }
    var box = searchBox();
    if (event.key === "Escape" && box && event.target === box) {
      box.blur();
      return;
    }
    if (typing(event.target)) { return; }
    if (event.key === "/") {
      event.preventDefault();
      if (box) {
        box.focus();
        box.select();
      } else {
        var home = document.querySelector("a.brand[href]");
        if (home) { window.location.assign(home.getAttribute("href")); }
      }
    } else if (event.key === "j" || event.key === "k") {
      if (move(event.key === "j" ? 1 : -1)) { event.preventDefault(); }
    }
  });
}());
