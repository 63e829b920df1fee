// Starts Swagger UI on the page served by garrison.api._docs (no inline script: the page's
// Content-Security-Policy allows scripts from this origin only). The OpenAPI document's URL comes
// from the container's data-openapi-url attribute. validatorUrl is null so Swagger UI never asks
// validator.swagger.io for a badge (the server is air-gapped).
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
});
