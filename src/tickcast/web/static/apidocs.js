// The API docs page (/api/docs): Swagger UI over the gateway's own OpenAPI description.
//
// Swagger UI's bundle is served by the gateway from an installed package
// (/static/swagger-ui/), never from a CDN, and this module replaces the inline script
// that FastAPI's own docs page would use (the pages' Content-Security-Policy allows no
// inline script). The URLs are relative to the page, so a proxy may mount the gateway
// under a path prefix.

// A classic script with `defer` runs before any module script: SwaggerUIBundle is set.
const { SwaggerUIBundle } = window;

window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).toString(),
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // The default would show a badge loaded from the public validator (another host).
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
