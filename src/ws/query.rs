//! The query string of `GET /subscribe`: `subject` (repeatable), `queue`,
//! `policy`. Parsed by hand because `subject` repeats, and strictly: an
//! unknown parameter is an error, not silently ignored.

use crate::config::SlowConsumerPolicy;
use crate::error::ApiError;
use crate::replay::Deliver;
use crate::subject::{SubjectError, SubjectPattern};
use crate::subscription::SubscribeRequest;

/// Longest queue group name accepted.
pub const MAX_QUEUE_LEN: usize = 128;

#[derive(Debug)]
pub struct SubscribeQuery {
    pub subjects: Vec<SubjectPattern>,
    pub queue: Option<String>,
    pub policy: Option<SlowConsumerPolicy>,
    pub deliver: Deliver,
}

impl SubscribeQuery {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut out = SubscribeQuery {
            subjects: Vec::new(),
            queue: None,
            policy: None,
            deliver: Deliver::New,
        };
        let (mut deliver, mut start_seq, mut start_time) = (None, None, None);
        let raw = query.unwrap_or("");
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            match key.as_ref() {
                // Read by the auth middleware.
                "ticket" => {}
                "deliver" => deliver = Some(value.into_owned()),
                "start_seq" => start_seq = Some(value.into_owned()),
                "start_time" => start_time = Some(value.into_owned()),
                "subject" => {
                    let pattern = SubjectPattern::parse(&value)
                        .map_err(|e| ApiError::invalid_subject(&value, e))?;
                    if !out.subjects.contains(&pattern) {
                        out.subjects.push(pattern);
                    }
                }
                "queue" => out.queue = Some(parse_queue(&value)?),
                "policy" => {
                    out.policy = Some(match value.as_ref() {
                        "drop" => SlowConsumerPolicy::Drop,
                        "conflate" => SlowConsumerPolicy::Conflate,
                        "close" => SlowConsumerPolicy::Close,
                        other => {
                            return Err(ApiError::InvalidQuery(format!(
                                "policy must be drop, conflate or close, not {other:?}"
                            )));
                        }
                    })
                }
                other => {
                    return Err(ApiError::InvalidQuery(format!(
                        "unknown query parameter {:?}",
                        other.chars().take(64).collect::<String>()
                    )));
                }
            }
        }
        // Percent-decoding can yield bytes that are not UTF-8; form_urlencoded
        // replaces them, and the replacement character is rejected above
        // only if it is whitespace, so check for it explicitly.
        if out.subjects.iter().any(|s| s.as_str().contains('\u{FFFD}')) {
            return Err(ApiError::invalid_subject("", SubjectError::NotUtf8));
        }
        out.deliver = Deliver::parse(
            deliver.as_deref(),
            start_seq.as_deref(),
            start_time.as_deref(),
        )?;
        Ok(out)
    }

    /// Resumes after the SSE `Last-Event-ID` (the last stream sequence seen).
    pub fn resume_after(&mut self, last_event_id: &str) -> Result<(), ApiError> {
        let seq: u64 = last_event_id.trim().parse().map_err(|_| {
            ApiError::InvalidHeader("Last-Event-ID must be a stream sequence".into())
        })?;
        self.deliver = Deliver::StartSeq(seq + 1);
        Ok(())
    }

    /// The subscription this query asks for, if it names any subject.
    pub fn request(&self) -> Option<SubscribeRequest> {
        (!self.subjects.is_empty()).then(|| SubscribeRequest {
            patterns: self.subjects.clone(),
            queue: self.queue.clone(),
            deliver: self.deliver.clone(),
        })
    }
}

/// Queue group names follow the subject character rules, as one token.
pub fn parse_queue(name: &str) -> Result<String, ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_QUEUE_LEN
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ApiError::InvalidQuery(format!(
            "queue must be 1-{MAX_QUEUE_LEN} characters without whitespace"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_raw_and_percent_encoded_wildcards_and_repeated_subjects() {
        let q = SubscribeQuery::parse(Some(
            "subject=orderbook.>&subject=trade.%3E&subject=a.%2A.b&queue=g1&policy=conflate",
        ))
        .unwrap();
        let subjects: Vec<&str> = q.subjects.iter().map(|s| s.as_str()).collect();
        assert_eq!(subjects, ["orderbook.>", "trade.>", "a.*.b"]);
        assert_eq!(q.queue.as_deref(), Some("g1"));
        assert_eq!(q.policy, Some(SlowConsumerPolicy::Conflate));
    }

    #[test]
    fn rejects_bad_subjects_queues_and_unknown_parameters() {
        let cases = [
            ("subject=a..b", "invalid_subject"),
            ("subject=a.>.b", "invalid_subject"),
            ("subject=a%20b", "invalid_subject"),
            ("subject=a%FFb", "invalid_subject"),
            ("subject=", "invalid_subject"),
            ("queue=a%20b", "invalid_query"),
            ("policy=sometimes", "invalid_query"),
            ("subjects=a", "invalid_query"),
        ];
        for (query, code) in cases {
            assert_eq!(
                SubscribeQuery::parse(Some(query)).unwrap_err().code(),
                code,
                "{query}"
            );
        }
    }

    #[test]
    fn no_query_means_no_initial_subscriptions() {
        assert!(SubscribeQuery::parse(None).unwrap().subjects.is_empty());
    }
}
