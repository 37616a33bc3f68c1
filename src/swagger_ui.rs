//! `GET /docs/`: Swagger UI, vendored and served by utoipa-swagger-ui, with
//! a start-up script of our own (`swagger_ui/initializer.js`): utoipa's
//! takes a configuration but no plugins, and the page needs one to keep
//! Swagger UI 5 from offering a "Servers" choice on every operation of a
//! document that declares none.

use axum::Router;
use axum::http::header;
use axum::routing::get;
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

/// Where Swagger UI loads the document from (served with it).
const DOCUMENT: &str = "/openapi.json";

const INITIALIZER: &str = include_str!("swagger_ui/initializer.js");

/// `/docs`, `/docs/` and Swagger UI's files, and `/openapi.json` serving `doc`.
pub fn router(doc: OpenApi) -> Router<AppState> {
    // The exact path wins over utoipa's `/docs/{*rest}`.
    Router::new()
        .route(
            "/docs/swagger-initializer.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    INITIALIZER,
                )
            }),
        )
        .merge(SwaggerUi::new("/docs").url(DOCUMENT, doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initializer_loads_the_served_document() {
        assert!(INITIALIZER.contains(&format!("url: \"{DOCUMENT}\"")));
    }
}
