// Starts ReDoc on the page served by garrison.api._docs (no inline script: the page's
// Content-Security-Policy allows scripts from this origin only). The OpenAPI document's URL comes
// from the container's data-openapi-url attribute. The theme uses the system's fonts instead of
// ReDoc's default web fonts, so nothing is fetched from a font CDN.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var root = document.getElementById("redoc");
  var sans = "system-ui, -apple-system, 'Segoe UI', 'Helvetica Neue', Arial, sans-serif";
  var mono = "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace";
  Redoc.init(
    root.getAttribute("data-openapi-url"),
    {
      theme: {
        typography: {
          fontFamily: sans,
          headings: { fontFamily: sans },
          code: { fontFamily: mono },
        },
      },
    },
    root
  );
});
