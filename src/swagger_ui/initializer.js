// Swagger UI's start-up, served at /docs/swagger-initializer.js in place of
// the one utoipa-swagger-ui generates (which allows no plugins). Same
// configuration, plus DeclaredServersOnly.

// Swagger UI 5 resolves an OpenAPI 3.1 document with ApiDOM, whose
// normalization gives a document without `servers` the default
// `[{"url": "/"}]` and copies it onto every path and operation. Swagger UI
// then shows an operation-level "Servers" box under "Try it out" on every
// operation, although the document declares none
// (swagger-api/swagger-ui#9947). This shows the box only where the document
// itself declares servers for the operation or its path. Requests are not
// affected: with no server picked, Swagger UI sends them to the first one,
// "/", which is this origin.
function DeclaredServersOnly() {
  return {
    wrapComponents: {
      OperationServers: (Original, system) => (props) => {
        const path = system.specSelectors.specJson().getIn(["paths", props.path]);
        const declared = path && (path.get("servers") || path.getIn([props.method, "servers"]));
        return declared ? system.React.createElement(Original, props) : null;
      },
    },
  };
}

window.onload = function () {
  window.ui = SwaggerUIBundle({
    dom_id: "#swagger-ui",
    url: "/openapi.json",
    deepLinking: true,
    layout: "StandaloneLayout",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl, DeclaredServersOnly],
  });
};
