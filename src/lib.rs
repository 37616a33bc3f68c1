//! MarketPrism message broker: an HTTP/WebSocket gateway to NATS JetStream.
//!
//! Module map: [`config`] loads the YAML file, [`bus`] owns the NATS
//! connection (publish, request, routing index), [`routes`] holds one module
//! per HTTP resource and mounts them in policy groups, [`state`] is what
//! every handler shares, [`app`] serves the router, [`error`] renders every
//! failure as problem+json, and [`subject`] validates every name before it
//! reaches NATS.

pub mod app;
pub mod asyncapi;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub mod fanout;
pub mod frame;
pub mod metrics;
pub mod net;
pub mod openapi;
pub mod otlp;
pub mod protocol;
pub mod replay;
pub mod routes;
pub mod sse;
pub mod state;
pub mod stats;
pub mod streams;
pub mod subject;
pub mod subscription;
pub mod swagger_ui;
pub mod telemetry;
pub mod trace_context;
pub mod util;
pub mod ws;

pub use app::{Gateway, build_router};
pub use config::Config;
pub use error::ApiError;
pub use state::AppState;
