//! Span export over OTLP/HTTP to a real receiver (a small protobuf
//! collector in the test), and the trace context the spans put on messages.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use reqwest::StatusCode;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Spans a receiver got, with the service name of their resource.
#[derive(Default, Clone)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        self.0.lock().unwrap().clone()
    }

    async fn wait_for(&self, name: &str, trace_id: &str) -> (String, Span) {
        wait_for(
            Duration::from_secs(10),
            &format!("a {name} span"),
            || async {
                self.spans()
                    .into_iter()
                    .find(|(_, s)| s.name == name && hex::encode(&s.trace_id) == trace_id)
            },
        )
        .await
    }
}

/// An OTLP/HTTP traces receiver on a free port: POST /v1/traces with an
/// `application/x-protobuf` `ExportTraceServiceRequest`.
async fn receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let received = Received::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        assert_eq!(req.uri().path(), "/v1/traces");
                        assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                        let body = req.into_body().collect().await?.to_bytes();
                        let export =
                            ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                        for resource in export.resource_spans {
                            let service = resource
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|a| a.key == "service.name")
                                .and_then(|a| a.value.clone())
                                .map(|v| format!("{:?}", v.value))
                                .unwrap_or_default();
                            for scope in resource.scope_spans {
                                for span in scope.spans {
                                    store.0.lock().unwrap().push((service.clone(), span));
                                }
                            }
                        }
                        let reply = ExportTraceServiceResponse::default().encode_to_vec();
                        Ok::<_, hyper::Error>(
                            hyper::Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(bytes::Bytes::from(reply)))
                                .unwrap(),
                        )
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
            );
        }
    });
    (url, received)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .map(|v| format!("{:?}", v.value))
}

fn header(msg: &async_nats::Message, name: &str) -> String {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn publish_spans_are_exported_and_become_the_messages_parent() {
    let (url, received) = receiver().await;
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.service.name = "broker-under-test".into();
        c.gateway.tracing.otlp_endpoint = Some(url);
        c.gateway.tracing.export_interval_ms = 100;
        c.streams.insert(
            "MARKET_DATA".into(),
            message_broker::config::StreamSpec {
                subjects: vec!["funding_rate.>".into()],
                ..Default::default()
            },
        );
    })
    .await
    .ready()
    .await;
    wait_until(
        Duration::from_secs(10),
        "the stream is declared",
        || async { app.healthz().await.1["streams"]["MARKET_DATA"]["status"] == "created" },
    )
    .await;
    app.refresh_routes().await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "funding_rate.>").await;

    let res = app
        .http
        .post(app.url("/publish/funding_rate.okx.perpetual.BTC-USDT"))
        .header("traceparent", PARENT)
        .header("Nats-Msg-Id", "m-1")
        .body(payload("funding_rate.binance.perpetual.BTC-USDT"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let msg = next_message(&mut sub, Duration::from_secs(5)).await;

    let (service, publish) = received.wait_for("publish", TRACE_ID).await;
    let (_, ack) = received.wait_for("ack wait", TRACE_ID).await;
    assert!(service.contains("broker-under-test"), "{service}");
    assert_eq!(publish.kind, SpanKind::Producer as i32);
    assert_eq!(hex::encode(&publish.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(
        ack.parent_span_id, publish.span_id,
        "ack wait is the publish span's child"
    );
    assert!(
        attribute(&publish, "messaging.destination.name")
            .unwrap()
            .contains("funding_rate.okx.perpetual.BTC-USDT")
    );
    assert!(
        attribute(&publish, "messaging.message.id")
            .unwrap()
            .contains("m-1")
    );
    assert!(
        attribute(&publish, "nats.stream")
            .unwrap()
            .contains("MARKET_DATA")
    );
    // The message carries the gateway's span as its parent, same trace.
    let expected = format!("00-{TRACE_ID}-{}-01", hex::encode(&publish.span_id));
    assert_eq!(header(&msg, "traceparent"), expected);
}

#[tokio::test]
async fn untraced_publishes_start_a_trace_and_requests_get_client_spans() {
    let (url, received) = receiver().await;
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.gateway.tracing.otlp_endpoint = Some(url);
        c.gateway.tracing.export_interval_ms = 100;
    })
    .await
    .ready()
    .await;
    let client = nats.client().await;
    let mut sub = subscribe(&client, "otlp.>").await;
    assert_eq!(
        app.publish("otlp.core", "1").await.status(),
        StatusCode::ACCEPTED
    );
    let msg = next_message(&mut sub, Duration::from_secs(5)).await;
    let traceparent = header(&msg, "traceparent");
    let trace_id = traceparent.get(3..35).expect("a traceparent").to_owned();
    let (_, publish) = received.wait_for("publish", &trace_id).await;
    assert!(
        publish.parent_span_id.is_empty(),
        "a new trace starts at the gateway"
    );
    assert_eq!(
        format!("00-{trace_id}-{}-01", hex::encode(&publish.span_id)),
        traceparent
    );

    // No responder: the request span records the failure.
    let res = app
        .http
        .post(app.url("/request/nobody.listens"))
        .header("traceparent", PARENT)
        .body("q")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (_, request) = received.wait_for("request", TRACE_ID).await;
    assert_eq!(request.kind, SpanKind::Client as i32);
    assert!(
        attribute(&request, "error.type")
            .unwrap()
            .contains("no_responders")
    );
}
