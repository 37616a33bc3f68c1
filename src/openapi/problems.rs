//! Problem responses in the OpenAPI document.
//!
//! An operation declares an error response with its status and a
//! description naming the codes it can give (`` `nats_unavailable` or
//! `jetstream_unavailable` ``), and no body. [`complete`] turns each such
//! response into an `application/problem+json` response with one example per
//! code named (every code of that status when it names none). The examples
//! are the problem documents of real [`ApiError`] values, so an example's
//! status, `type` and `code` are exactly what the gateway sends.

use std::collections::BTreeMap;
use std::time::Duration;

use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

use crate::error::{ApiError, PROBLEM_JSON};
use crate::subject::{NameError, SubjectError};

/// One representative error per code.
pub fn samples() -> Vec<ApiError> {
    use ApiError::*;
    let stream = || "MARKET_DATA".to_owned();
    vec![
        ApiError::invalid_subject("orders.*", SubjectError::Wildcard('*')),
        InvalidName {
            name: "MARKET.DATA".into(),
            reason: NameError::BadCharacter('.'),
        },
        InvalidHeader(
            "header Nats-Msg-Id: the message id must be 1-1024 visible characters".into(),
        ),
        InvalidBody("line 3: expected `data` or `data_base64`".into()),
        InvalidQuery("ack must be true or false".into()),
        InvalidPath("Invalid URL: Cannot parse `-1` to a `u64`".into()),
        NotReplayable(
            "no stream stores orderbook.>; only live delivery (deliver=new) is possible".into(),
        ),
        InvalidStreamConfig {
            field: "max_age".into(),
            message: "must be a number of seconds".into(),
        },
        InvalidConsumerConfig {
            field: "filter_subject".into(),
            message: "is not a valid subject".into(),
        },
        JetStreamRejected {
            status: 400,
            message: "replicas > 1 not supported in non-clustered mode".into(),
        },
        Unauthorized("missing bearer token".into()),
        Forbidden("dashboard may not publish to funding_rate.binance.perpetual.BTC-USDT".into()),
        AdminForbidden,
        ForbiddenOrigin("https://evil.example".into()),
        NotFound("/no/such/route".into()),
        StreamNotFound(stream()),
        ConsumerNotFound("archiver".into()),
        MessageNotFound("no message with sequence 42 in stream MARKET_DATA".into()),
        NoMessage("no message is stored on funding_rate.binance.perpetual.BTC-USDT".into()),
        MethodNotAllowed,
        Timeout(30_000),
        StreamExists(stream()),
        SubjectsOverlap("funding_rate.> is stored by MARKET_DATA".into()),
        ConsumerExists("archiver".into()),
        PreconditionFailed("wrong last sequence: 41".into()),
        PayloadTooLarge {
            what: "request body",
            limit: 1_048_576,
            unit: "bytes",
        },
        UnsupportedMediaType {
            expected: "application/x-ndjson",
        },
        PublishRejected("maximum messages exceeded".into()),
        UpgradeRequired,
        RateLimited {
            retry_after: Duration::from_millis(250),
        },
        QuotaExceeded("dashboard may hold at most 10 connections".into()),
        NatsUnavailable {
            retry_after: Duration::from_secs(1),
        },
        JetStreamUnavailable("the JetStream API did not answer".into()),
        NoResponders("quotes.binance.BTC-USDT".into()),
        TooManyConnections(10_000),
        RequestTimeout(5_000),
        AckTimeout(5_000),
        Internal(String::new()),
    ]
}

/// Gives every error response that has no body its problem+json content,
/// in the operations and in `components/responses`.
pub fn complete(doc: &mut OpenApi) {
    let samples = samples();
    if let Some(components) = &mut doc.components {
        fill(&samples, &mut components.responses);
    }
    for op in super::operations_mut(doc) {
        fill(&samples, &mut op.responses.responses);
    }
}

/// `responses` is keyed by status in an operation, by name in the
/// components; a component's status is the one its description's codes have.
fn fill(samples: &[ApiError], responses: &mut BTreeMap<String, RefOr<Response>>) {
    for (key, response) in responses {
        let RefOr::T(response) = response else {
            continue;
        };
        let status = key.parse::<u16>().ok().or_else(|| {
            samples
                .iter()
                .find(|e| response.description.contains(&format!("`{}`", e.code())))
                .map(|e| e.status().as_u16())
        });
        if let Some(status) = status.filter(|s| *s >= 400)
            && response.content.is_empty()
        {
            let problems = content(samples, status, response);
            response.content.insert(PROBLEM_JSON.into(), problems);
        }
    }
}

fn content(samples: &[ApiError], status: u16, response: &Response) -> Content {
    let of_status = || samples.iter().filter(|e| e.status().as_u16() == status);
    let named: Vec<&ApiError> = of_status()
        .filter(|e| response.description.contains(&format!("`{}`", e.code())))
        .collect();
    let chosen = if named.is_empty() {
        of_status().collect()
    } else {
        named
    };
    let mut content = Content::new(Some(Ref::from_schema_name("Problem")));
    content.examples = chosen
        .into_iter()
        .map(|err| {
            let value = serde_json::to_value(err.problem()).expect("a problem serializes");
            let example = ExampleBuilder::new().summary(err.code()).value(Some(value));
            (err.code().to_owned(), RefOr::T(example.build()))
        })
        .collect::<BTreeMap<_, _>>();
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_code() {
        let mut codes: Vec<&str> = samples().iter().map(ApiError::code).collect();
        let total = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), total, "a code has two samples");
    }

    #[test]
    fn a_response_gets_the_codes_it_names_or_all_of_its_status() {
        let samples = samples();
        let named = Response::new("`nats_unavailable` or `jetstream_unavailable`");
        let examples = content(&samples, 503, &named).examples;
        assert_eq!(
            examples.keys().collect::<Vec<_>>(),
            ["jetstream_unavailable", "nats_unavailable"]
        );
        let RefOr::T(example) = &examples["nats_unavailable"] else {
            panic!("inline example")
        };
        let value = example.value.as_ref().unwrap();
        assert_eq!(
            (value["status"].as_u64(), value["code"].as_str()),
            (Some(503), Some("nats_unavailable"))
        );
        let unnamed = content(&samples, 409, &Response::new("Conflict")).examples;
        assert_eq!(
            unnamed.len(),
            3,
            "stream_exists, subjects_overlap, consumer_exists"
        );
        // A code of another status is not an example of this one.
        let wrong = content(&samples, 400, &Response::new("`nats_unavailable`")).examples;
        assert!(!wrong.contains_key("nats_unavailable"));
    }
}
