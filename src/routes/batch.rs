//! `POST /publish` with an NDJSON body: many messages in one request.
//!
//! Every line is parsed and validated before anything is sent, so a batch
//! over the line limit publishes nothing. Valid lines are then sent in order
//! with up to `gateway.publish.batch_max_in_flight` JetStream acks pending.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::extract::{ValidQuery, media_type, read_body};
use super::publish::PublishQuery;
use crate::auth::{Caller, Principal};
use crate::bus::{InFlight, Outbound, PublishReceipt, Route};
use crate::error::ApiError;
use crate::protocol::{ItemError, PublishFields};
use crate::state::AppState;
use crate::trace_context::TraceContext;

/// Media types accepted for a batch.
const NDJSON_TYPES: [&str; 3] = [
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
];

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// Lines published successfully.
    pub published: usize,
    /// Lines that failed (see their `error`).
    pub failed: usize,
    /// One entry per non-blank input line, in input order.
    pub results: Vec<LineResult>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LineResult {
    /// 1-based line number in the request body.
    pub line: usize,
    /// The line's `id`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub id: Option<Box<RawValue>>,
    #[serde(flatten)]
    pub outcome: LineOutcome,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LineOutcome {
    Published(PublishReceipt),
    Failed {
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        error: ItemError,
    },
}

/// Publish a batch of messages (NDJSON).
///
/// One JSON object per line: `{"subject": …, "data": <any JSON>}` or
/// `{"subject": …, "data_base64": "…"}`, optionally with `"headers": {name:
/// value}`, `"msg_id"` and a correlation `"id"` (echoed in the result). The response has one result per line in order:
/// the same fields as a single publish, or an `error` with `code` and
/// `message` for that line alone. Status 200 when every line succeeded, 207
/// when some failed. `?ack=false` sends every line over core NATS. A
/// `traceparent` request header (W3C trace context) is carried into every
/// line that has no `traceparent` in its own `headers`.
#[utoipa::path(
    post,
    path = "/publish",
    tag = "publish",
    params(PublishQuery),
    request_body(
        description = "One `PublishLine` JSON object per line (`application/ndjson` and `application/jsonl` are accepted too)",
        content((String = "application/x-ndjson", example = crate::openapi::bodies::ndjson_batch))
    ),
    responses(
        (status = 200, description = "Every line was published", body = BatchResponse),
        (status = 207, description = "Some lines failed; see each result's `error`", body = BatchResponse),
        (status = 400, description = "`invalid_body` (empty batch) or `invalid_query`"),
        (status = 413, description = "`payload_too_large`: over `gateway.publish.batch_max_bytes` or `batch_max_lines`; nothing was published"),
        (status = 415, description = "`unsupported_media_type`: Content-Type is not `application/x-ndjson`"),
        (status = 503, description = "`nats_unavailable`: nothing was published"),
    )
)]
pub async fn publish_batch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ValidQuery(query): ValidQuery<PublishQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let settings = &state.config.gateway.publish;
    if !media_type(&headers).is_some_and(|m| NDJSON_TYPES.contains(&m.as_str())) {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/x-ndjson",
        });
    }
    let body = read_body(&headers, body, settings.batch_max_bytes, "batch body").await?;
    let trace = TraceContext::from_http(&headers);
    let lines = parse_lines(&body, settings.batch_max_lines, &caller, trace.as_ref())?;
    let bytes: usize = lines
        .iter()
        .filter_map(|l| l.parsed.as_ref().ok())
        .map(|m| m.payload.len())
        .sum();
    caller.charge(0, bytes as u64)?;
    state.bus.ensure_connected()?;
    let route = match query.ack {
        Some(false) => Route::CoreOnly,
        _ => Route::Auto,
    };
    let results = publish_lines(&state, lines, route, settings.batch_max_in_flight).await;
    let failed = results
        .iter()
        .filter(|r| matches!(r.outcome, LineOutcome::Failed { .. }))
        .count();
    let status = if failed == 0 {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((
        status,
        Json(BatchResponse {
            published: results.len() - failed,
            failed,
            results,
        }),
    ))
}

/// A parsed line: its number and either a message or why it is invalid.
struct Line {
    number: usize,
    id: Option<Box<RawValue>>,
    subject: Option<String>,
    parsed: Result<Outbound, ApiError>,
}

fn parse_lines(
    body: &Bytes,
    max_lines: usize,
    caller: &Principal,
    trace: Option<&TraceContext>,
) -> Result<Vec<Line>, ApiError> {
    let mut lines = Vec::new();
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if lines.len() == max_lines {
            return Err(ApiError::PayloadTooLarge {
                what: "batch",
                limit: max_lines,
                unit: "lines",
            });
        }
        let (id, subject, parsed) = match serde_json::from_slice::<PublishFields>(raw) {
            Ok(fields) => (
                fields.id.map(ToOwned::to_owned),
                Some(fields.subject.clone()),
                fields
                    .into_outbound_traced(body, trace)
                    .and_then(|msg| caller.check_publish(&msg.subject).map(|()| msg)),
            ),
            Err(err) => (
                None,
                None,
                Err(ApiError::InvalidBody(format!(
                    "line is not a valid publish object: {err}"
                ))),
            ),
        };
        lines.push(Line {
            number: index + 1,
            id,
            subject,
            parsed,
        });
    }
    if lines.is_empty() {
        return Err(ApiError::InvalidBody("the batch has no lines".into()));
    }
    Ok(lines)
}

async fn publish_lines(
    state: &AppState,
    lines: Vec<Line>,
    route: Route,
    max_in_flight: usize,
) -> Vec<LineResult> {
    let mut outcomes: Vec<Option<Result<PublishReceipt, ApiError>>> =
        (0..lines.len()).map(|_| None).collect();
    let mut pending = FuturesUnordered::new();
    let mut meta = Vec::with_capacity(lines.len());
    for (slot, line) in lines.into_iter().enumerate() {
        meta.push((line.number, line.id, line.subject));
        let msg = match line.parsed {
            Ok(msg) => msg,
            Err(err) => {
                outcomes[slot] = Some(Err(err));
                continue;
            }
        };
        if pending.len() >= max_in_flight
            && let Some((done, result)) = pending.next().await
        {
            outcomes[done] = Some(result);
        }
        match state.bus.start_publish(msg, route).await {
            // A core publish is done once sent: no future to keep.
            Ok(InFlight::Done(receipt)) => outcomes[slot] = Some(Ok(receipt)),
            Ok(in_flight) => pending.push(async move { (slot, in_flight.finish().await) }),
            Err(err) => outcomes[slot] = Some(Err(err)),
        }
    }
    while let Some((done, result)) = pending.next().await {
        outcomes[done] = Some(result);
    }
    meta.into_iter()
        .zip(outcomes)
        .map(|((line, id, subject), outcome)| {
            let outcome = outcome.expect("every line has an outcome");
            state
                .metrics
                .publish("batch", &outcome, PublishReceipt::is_stored);
            LineResult {
                line,
                id,
                outcome: match outcome {
                    Ok(receipt) => LineOutcome::Published(receipt),
                    Err(err) => LineOutcome::Failed {
                        subject,
                        error: ItemError::from(&err),
                    },
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn anyone() -> Principal {
        Principal::Anonymous {
            ip: std::net::Ipv4Addr::LOCALHOST.into(),
            limiter: None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// Arbitrary bytes never panic the parser; it never returns more
        /// than the line limit, and every accepted line is a valid message.
        #[test]
        fn ndjson_parser_survives_any_input(body in prop::collection::vec(any::<u8>(), 0..2_000)) {
            let body = Bytes::from(body);
            if let Ok(lines) = parse_lines(&body, 50, &anyone(), None) {
                prop_assert!(lines.len() <= 50);
                for line in lines.iter().filter_map(|l| l.parsed.as_ref().ok()) {
                    prop_assert!(crate::subject::Subject::parse(line.subject.as_str()).is_ok());
                }
            }
        }

        /// Lines built from JSON fragments exercise the object paths.
        #[test]
        fn ndjson_lines_of_json_fragments(lines in prop::collection::vec(
            prop_oneof![
                Just(r#"{"subject":"a.b","data":1}"#.to_owned()),
                Just(r#"{"subject":"a.*","data":1}"#.to_owned()),
                Just(r#"{"subject":"a","data_base64":"@@"}"#.to_owned()),
                Just(r#"{"subject":"a","data":{"x":[1,{"y":null}]},"headers":{"K":"v"},"msg_id":"m"}"#.to_owned()),
                "[ -~]{0,40}",
            ],
            0..30,
        )) {
            let body = Bytes::from(lines.join("\n"));
            if let Ok(parsed) = parse_lines(&body, 1_000, &anyone(), None) {
                let non_blank = lines.iter().filter(|l| !l.trim().is_empty()).count();
                prop_assert_eq!(parsed.len(), non_blank);
            }
        }
    }
}
