//! `consumers:`: durable JetStream consumers the gateway declares. The same
//! struct is the JSON body of `POST /admin/streams/{name}/consumers`, and
//! its fields follow the seed's `lsr_subscriber.consumer_config`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;
use crate::subject::{ConsumerName, StreamName, SubjectPattern};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicySpec {
    All,
    Last,
    New,
    LastPerSubject,
    ByStartSequence,
    ByStartTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AckPolicySpec {
    Explicit,
    None,
    All,
    /// NATS 2.14 flow-controlled acks.
    #[serde(rename = "flow_control")]
    FlowControl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplayPolicySpec {
    Instant,
    Original,
}

/// A durable consumer. Keys left out keep NATS defaults; durations in seconds.
/// Without `deliver_subject` it is a pull consumer, with it a push consumer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    /// The stream the consumer reads (required in the config file; taken
    /// from the URL in the admin API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Durable name; defaults to the map key in the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_subjects: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_policy: Option<DeliverPolicySpec>,
    /// Start sequence for `deliver_policy: by_start_sequence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_seq: Option<u64>,
    /// Start time (RFC 3339) for `deliver_policy: by_start_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_policy: Option<AckPolicySpec>,
    /// Seconds before an unacknowledged message is redelivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_wait: Option<u64>,
    /// Deliveries per message; -1 for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deliver: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ack_pending: Option<i64>,
    /// Pull consumers: most outstanding pull requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_waiting: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_policy: Option<ReplayPolicySpec>,
    /// Push consumers: the subject messages are pushed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_subject: Option<String>,
    /// Push consumers: queue group of the subscribers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_group: Option<String>,
    /// Seconds of inactivity after which the server removes the consumer; 0 never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_threshold: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<usize>,
}

impl ConsumerSpec {
    /// Checks one spec; `key` is the path prefix used in error messages.
    pub fn validate(&self, key: &str) -> Result<(), Invalid> {
        if let Some(name) = &self.durable_name {
            ConsumerName::parse(name)
                .map_err(|e| Invalid::new(format!("{key}.durable_name"), e.to_string()))?;
        }
        if let Some(stream) = &self.stream {
            StreamName::parse(stream)
                .map_err(|e| Invalid::new(format!("{key}.stream"), e.to_string()))?;
        }
        if self.filter_subject.is_some() && self.filter_subjects.is_some() {
            return Err(Invalid::new(
                format!("{key}.filter_subjects"),
                "give filter_subject or filter_subjects, not both",
            ));
        }
        let filters = self
            .filter_subject
            .iter()
            .chain(self.filter_subjects.iter().flatten());
        for (i, subject) in filters.enumerate() {
            SubjectPattern::parse(subject)
                .map_err(|e| Invalid::new(format!("{key}.filter_subjects[{i}]"), e.to_string()))?;
        }
        let needs = |field: &str, present: bool| {
            if present {
                Ok(())
            } else {
                Err(Invalid::new(
                    format!("{key}.{field}"),
                    "required by the deliver_policy",
                ))
            }
        };
        match self.deliver_policy {
            Some(DeliverPolicySpec::ByStartSequence) => {
                needs("opt_start_seq", self.opt_start_seq.is_some())?
            }
            Some(DeliverPolicySpec::ByStartTime) => {
                needs("opt_start_time", self.opt_start_time.is_some())?
            }
            _ => {}
        }
        if let Some(time) = &self.opt_start_time {
            time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
                .map_err(|e| {
                    Invalid::new(
                        format!("{key}.opt_start_time"),
                        format!("not an RFC 3339 time: {e}"),
                    )
                })?;
        }
        if self.deliver_group.is_some() && self.deliver_subject.is_none() {
            return Err(Invalid::new(
                format!("{key}.deliver_group"),
                "only push consumers (with deliver_subject) have a deliver_group",
            ));
        }
        if let Some(subject) = &self.deliver_subject {
            crate::subject::Subject::parse(subject)
                .map_err(|e| Invalid::new(format!("{key}.deliver_subject"), e.to_string()))?;
        }
        if self.max_deliver.is_some_and(|v| v == 0 || v < -1) {
            return Err(Invalid::new(
                format!("{key}.max_deliver"),
                "must be -1 or >= 1",
            ));
        }
        Ok(())
    }
}

/// Validates every declared consumer: each needs a stream.
pub(super) fn validate_all(
    consumers: &indexmap::IndexMap<String, ConsumerSpec>,
) -> Result<(), Invalid> {
    for (name, spec) in consumers {
        let key = format!("consumers.{name}");
        ConsumerName::parse(name).map_err(|e| Invalid::new(key.clone(), e.to_string()))?;
        if spec.durable_name.as_deref().is_some_and(|n| n != name) {
            return Err(Invalid::new(
                format!("{key}.durable_name"),
                format!("must equal the map key {name:?} when given"),
            ));
        }
        if spec.stream.is_none() {
            return Err(Invalid::new(
                format!("{key}.stream"),
                "names the stream to consume; required",
            ));
        }
        spec.validate(&key)?;
    }
    Ok(())
}
