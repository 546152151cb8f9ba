// Starts Swagger UI on the docs page. A file of its own, so the page's CSP needs no inline script.
window.addEventListener("load", function () {
  var page = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: page.dataset.spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
