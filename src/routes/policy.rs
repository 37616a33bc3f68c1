//! Route policy: who may call a route and how long it may take follow from
//! the group it is mounted in, never from a list of paths. Each group gets
//! its own per-request layer ([`edge`]) and documents its policy in the
//! OpenAPI operations it mounts, so the served behaviour and the document
//! cannot disagree.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Ref, path::Operation};

use crate::auth::Credentials;
use crate::error::ApiError;
use crate::openapi::responses;
use crate::state::AppState;

/// The policy groups of the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// No token needed (health, metrics, documents, the console's files).
    Public,
    /// A bearer token; the request is bounded by `request_timeout_ms`.
    Authenticated,
    /// An admin token (open mode: `admin.allowed_networks`); timed.
    Admin,
    /// Long-lived sockets and event streams: a token or a `?ticket=`, and
    /// no request timeout.
    Streaming,
}

impl Policy {
    pub const ALL: [Policy; 4] = [
        Policy::Public,
        Policy::Authenticated,
        Policy::Admin,
        Policy::Streaming,
    ];

    pub fn credentials(self) -> Credentials {
        match self {
            Policy::Public => Credentials::None,
            Policy::Authenticated | Policy::Admin => Credentials::Token,
            Policy::Streaming => Credentials::TokenOrTicket,
        }
    }

    /// Whether `gateway.http.request_timeout_ms` bounds the request.
    pub fn timed(self) -> bool {
        self != Policy::Streaming
    }

    /// Wraps a group's routes in the group's layers: the admin check for
    /// the admin group, then the per-request layer every group has. The
    /// 405 answer is set first so that it passes the per-request layer
    /// (axum does not layer a fallback added afterwards).
    pub fn mount(self, routes: Router<AppState>, state: &AppState) -> Router<AppState> {
        let routes = if self == Policy::Admin {
            super::admin::guard(routes, state.clone())
        } else {
            routes
        };
        let gate = Gate {
            state: state.clone(),
            policy: self,
        };
        routes
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(gate, edge))
    }

    /// Records the policy in each operation of a group's document: its
    /// security requirement and the responses the layers can give (401,
    /// 403, 429; 408 when timed).
    pub fn document(self, doc: &mut OpenApi) {
        for op in crate::openapi::operations_mut(doc) {
            self.document_operation(op);
        }
    }

    fn document_operation(self, op: &mut Operation) {
        if self == Policy::Public {
            op.security = Some(Vec::new());
            return;
        }
        op.security = Some(bearer());
        let forbidden = match self {
            Policy::Admin => responses::ADMIN_FORBIDDEN,
            Policy::Streaming => responses::SOCKET_FORBIDDEN,
            _ => responses::FORBIDDEN,
        };
        let mut shared = vec![
            ("401", responses::UNAUTHORIZED),
            ("403", forbidden),
            ("429", responses::TOO_MANY_REQUESTS),
        ];
        if self.timed() {
            shared.push(("408", responses::TIMEOUT));
        }
        for (status, (name, _)) in shared {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| Ref::from_response_name(name).into());
        }
    }
}

/// The security requirement of every operation that needs a token.
pub fn bearer() -> Vec<SecurityRequirement> {
    vec![SecurityRequirement::new("bearer", Vec::<String>::new())]
}

#[derive(Clone)]
struct Gate {
    state: AppState,
    policy: Policy,
}

/// The per-request work every route shares, in one layer (each `from_fn`
/// layer costs a boxed future per request): authenticate the caller as the
/// group's policy says, bound the request's time (not the long-lived
/// streams), restate plain-text rejections as problem documents, and count
/// the request by its route template (never the raw path: that would be one
/// label per subject).
async fn edge(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let Gate { state, policy } = gate;
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = request.method().clone();
    let response = match crate::auth::admit(&state.auth, &mut request, policy.credentials()) {
        Err(err) => err.into_response(),
        Ok(()) if !policy.timed() => next.run(request).await,
        Ok(()) => {
            let limit = state.config.gateway.http.request_timeout();
            match tokio::time::timeout(limit, next.run(request)).await {
                Ok(response) => response,
                Err(_) => ApiError::Timeout(limit.as_millis() as u64).into_response(),
            }
        }
    };
    let response = restate_plain_errors(response).await;
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
    let metrics = &state.metrics;
    metrics
        .http_requests
        .with_label_values(&[route, method.as_str(), response.status().as_str()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[route, method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Restates an error response that is not problem+json yet (a rejection
/// from axum or a layer) as one, keeping its status and headers.
async fn restate_plain_errors(response: Response) -> Response {
    let status = response.status();
    // Plain-text or empty bodies are rejections to restate; a JSON body
    // (problem documents, /healthz's 503) is already an answer.
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_owned();
    let detail = if detail.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        detail
    };
    let mut restated = ApiError::Http { status, detail }.into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            restated.headers_mut().append(name, value.clone());
        }
    }
    restated
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
