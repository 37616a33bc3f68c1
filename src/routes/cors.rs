//! CORS for `cors.allowed_origins`, read from the current auth state on
//! every request so that a reload applies it (an origin taken off the list
//! is refused from the next request on). With no origin configured the
//! layer steps aside entirely: no CORS headers, and a preflight meets the
//! routes like any other request.

use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, Request, Response};
use futures::future::Either;
use tower::{Layer, Service};
use tower_http::cors::{AllowHeaders, AllowOrigin, Cors, CorsLayer};

use crate::state::AppState;

/// Headers a browser script may read from a cross-origin response.
const EXPOSE: [&str; 6] = [
    "nats-stream",
    "nats-sequence",
    "nats-time-stamp",
    "etag",
    "retry-after",
    "x-request-id",
];

/// The router's CORS layer.
pub fn layer(state: AppState) -> ReloadableCorsLayer {
    let current = state.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .is_ok_and(|o| current.auth.load().cors().allows(o))
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(EXPOSE.map(HeaderName::from_static))
        .max_age(Duration::from_secs(600));
    ReloadableCorsLayer { cors, state }
}

#[derive(Clone)]
pub struct ReloadableCorsLayer {
    cors: CorsLayer,
    state: AppState,
}

impl<S: Clone> Layer<S> for ReloadableCorsLayer {
    type Service = ReloadableCors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReloadableCors {
            cors: self.cors.layer(inner.clone()),
            plain: inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ReloadableCors<S> {
    cors: Cors<S>,
    plain: S,
    state: AppState,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ReloadableCors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<tower_http::cors::ResponseFuture<S::Future>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.cors.poll_ready(cx))?;
        self.plain.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if self.state.auth.load().cors().allowed_origins.is_empty() {
            Either::Right(self.plain.call(request))
        } else {
            Either::Left(self.cors.call(request))
        }
    }
}
