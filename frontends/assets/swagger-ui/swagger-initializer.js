// hashd's Swagger UI set-up: the spec from this server, and nothing fetched
// from anywhere else (no validator badge, no URL bar, no external presets).
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
