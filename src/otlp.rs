//! Optional export of spans over OTLP/HTTP (protobuf), off unless
//! `gateway.tracing.otlp_endpoint` is set: a `publish` span (producer) per
//! message with an `ack wait` child for JetStream acks, and a `request`
//! span (client) per NATS request.
//!
//! A span is the child of the message's `traceparent` (its own or the
//! request's, see [`crate::trace_context`]), and the message leaves with a
//! `traceparent` naming the span instead: consumers then hang off the
//! gateway's span. Without export the gateway is transparent and forwards
//! the `traceparent` it was given.
//!
//! Spans go out in batches from the SDK's own thread; the HTTP POST runs on
//! the gateway's runtime with its own hyper client (plain `http://` only: a
//! collector sidecar or agent is the usual place for it).

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};

use crate::config::Config;
use crate::error::ApiError;
use crate::trace_context::{TRACEPARENT, TRACESTATE, TraceParent};

/// The exporter and the tracer the bus starts its spans with.
pub struct Spans {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl std::fmt::Debug for Spans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spans")
    }
}

impl Spans {
    /// The exporter `gateway.tracing` asks for; `None` when export is off.
    /// Must be called on the gateway's runtime.
    pub fn from_config(config: &Config) -> Result<Option<Arc<Spans>>, String> {
        let settings = &config.gateway.tracing;
        let Some(endpoint) = settings.otlp_endpoint.as_deref() else {
            return Ok(None);
        };
        let timeout = settings.export_timeout();
        let client = RuntimeClient {
            runtime: tokio::runtime::Handle::current(),
            timeout,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .build()
            .map_err(|e| format!("gateway.tracing.otlp_endpoint: {e}"))?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(settings.export_interval())
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(config.service.name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("message-broker");
        Ok(Some(Arc::new(Spans { provider, tracer })))
    }

    /// Sends the spans still queued (bounded), at shutdown.
    pub fn shutdown(&self, limit: Duration) {
        if let Err(err) = self.provider.shutdown_with_timeout(limit) {
            tracing::warn!(%err, "spans not all exported at shutdown");
        }
    }

    /// Starts a span for a message about to go to `subject`, as the child of
    /// its `traceparent` (a new trace without one), and points the message's
    /// `traceparent` at the span.
    pub fn start(
        &self,
        name: &'static str,
        kind: SpanKind,
        subject: &str,
        headers: &mut Option<HeaderMap>,
    ) -> MessageSpan {
        let parent = headers.as_ref().and_then(remote_parent);
        let cx = parent.map_or_else(Context::new, |p| Context::new().with_remote_span_context(p));
        let mut attributes = vec![
            KeyValue::new("messaging.system", "nats"),
            KeyValue::new("messaging.destination.name", subject.to_owned()),
            KeyValue::new("messaging.operation.name", name),
        ];
        if let Some(id) = headers.as_ref().and_then(|h| h.get(crate::util::MSG_ID)) {
            attributes.push(KeyValue::new(
                "messaging.message.id",
                id.as_str().to_owned(),
            ));
        }
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &cx);
        let own = span.span_context().clone();
        headers
            .get_or_insert_with(HeaderMap::new)
            .insert(TRACEPARENT, traceparent(&own).as_str());
        // The log line of the HTTP request names the trace (new or not).
        tracing::Span::current().record("trace_id", own.trace_id().to_string());
        MessageSpan {
            cx: cx.with_span(span),
            tracer: self.tracer.clone(),
        }
    }
}

/// A span in progress; ended by [`MessageSpan::end`] (or when dropped).
pub struct MessageSpan {
    cx: Context,
    tracer: SdkTracer,
}

impl MessageSpan {
    /// A child span for waiting on the stream's ack.
    pub fn child(&self, name: &'static str) -> MessageSpan {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .start_with_context(&self.tracer, &self.cx);
        MessageSpan {
            cx: self.cx.with_span(span),
            tracer: self.tracer.clone(),
        }
    }

    /// Adds an attribute (the stream and sequence an ack reported).
    pub fn set(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// Ends the span, marked as failed with the error's code if any.
    pub fn end(self, error: Option<&ApiError>) {
        let span = self.cx.span();
        if let Some(err) = error {
            span.set_attribute(KeyValue::new("error.type", err.code()));
            span.set_status(Status::error(err.detail()));
        }
        span.end();
    }
}

fn remote_parent(headers: &HeaderMap) -> Option<SpanContext> {
    let parent = TraceParent::parse(headers.get(TRACEPARENT)?.as_str())?;
    let text = parent.as_str();
    let flags = u8::from_str_radix(&text[53..55], 16).ok()?;
    let state = headers
        .get(TRACESTATE)
        .and_then(|s| s.as_str().parse::<TraceState>().ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        TraceId::from_hex(&text[3..35]).ok()?,
        SpanId::from_hex(&text[36..52]).ok()?,
        TraceFlags::new(flags),
        true,
        state,
    ))
}

fn traceparent(cx: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8()
    )
}

/// Posts the exporter's requests on the gateway's runtime: the SDK exports
/// from its own thread, where no runtime runs.
#[derive(Debug)]
struct RuntimeClient {
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let limit = self.timeout;
        self.runtime
            .spawn(async move {
                tokio::time::timeout(limit, post(request))
                    .await
                    .map_err(|_| HttpError::from("OTLP export timed out"))?
            })
            .await?
    }
}

/// One request on a new HTTP/1.1 connection (exports are seconds apart).
async fn post(request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    let uri = request.uri().clone();
    if uri.scheme_str() != Some("http") {
        return Err("the OTLP endpoint must be an http:// URL".into());
    }
    let host = uri.host().ok_or("the OTLP endpoint has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let (mut parts, body) = request.into_parts();
    parts.uri = uri.path_and_query().map_or("/", |p| p.as_str()).parse()?;
    parts
        .headers
        .entry(hyper::header::HOST)
        .or_insert(hyper::header::HeaderValue::from_str(&format!(
            "{host}:{port}"
        ))?);
    let response = sender
        .send_request(hyper::Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    // A collector answers with a small protobuf; bound what is read.
    let body = Limited::new(body, 1024 * 1024).collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_through_a_span_context() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, value);
        headers.insert(TRACESTATE, "k=v");
        let cx = remote_parent(&headers).unwrap();
        assert!(cx.is_remote() && cx.is_sampled());
        assert_eq!(cx.trace_state().header(), "k=v");
        assert_eq!(traceparent(&cx), value);
    }
}
