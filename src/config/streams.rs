//! `streams:`: JetStream streams the gateway declares and keeps in shape.
//!
//! The same struct is the JSON body of the admin stream routes, so an operator
//! can copy a stream definition between the YAML file and the API unchanged.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;
use crate::subject::{StreamName, SubjectPattern};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RetentionPolicy {
    Limits,
    Interest,
    Workqueue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    File,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiscardPolicy {
    Old,
    New,
}

/// A stream definition. Every key is optional except `subjects`; a key left
/// out keeps the NATS server's default. Sizes in bytes, ages in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamSpec {
    /// Stream name; defaults to the map key in YAML and must equal it if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Subjects (wildcards allowed) the stream captures.
    pub subjects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    /// Maximum messages kept; -1 for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_msgs: Option<i64>,
    /// Maximum bytes kept; -1 for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
    /// Maximum age in seconds; 0 for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    /// Maximum messages kept per subject; -1 for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_msgs_per_subject: Option<i64>,
    /// Largest message accepted, in bytes; -1 for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_msg_size: Option<i32>,
    /// Maximum consumers; -1 for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_consumers: Option<i32>,
    /// Replica count (1-5); `num_replicas` is accepted as an alias.
    #[serde(
        default,
        alias = "num_replicas",
        skip_serializing_if = "Option::is_none"
    )]
    pub replicas: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard: Option<DiscardPolicy>,
    /// Window in seconds in which a repeated `Nats-Msg-Id` is a duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_window: Option<u64>,
    /// Whether every replica answers Direct Get. The gateway reads history
    /// with it (no consumer per client); declared streams default to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_direct: Option<bool>,
    /// Re-publish stored messages. Declared streams default to the
    /// gateway's own (`{src: ">", dest: "$MP.stored.<STREAM>.>"}`), which
    /// gives live frames their stream sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republish: Option<RepublishSpec>,
}

/// A stream's RePublish: stored messages matching `src` are published
/// again to `dest` with `Nats-Stream`, `Nats-Sequence` and friends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepublishSpec {
    /// Stored subjects to re-publish (default `>`: all).
    #[serde(default = "all_subjects")]
    pub src: String,
    /// Destination subject (mapping), e.g. `$MP.stored.MARKET_DATA.>`.
    pub dest: String,
    /// Re-publish headers only (with `Nats-Msg-Size`), not the payload.
    #[serde(default)]
    pub headers_only: bool,
}

fn all_subjects() -> String {
    ">".into()
}

impl StreamSpec {
    /// Checks one spec; `key` is the path prefix used in error messages.
    pub fn validate(&self, key: &str) -> Result<(), Invalid> {
        if self.subjects.is_empty() {
            return Err(Invalid::new(
                format!("{key}.subjects"),
                "needs at least one subject",
            ));
        }
        for (i, subject) in self.subjects.iter().enumerate() {
            SubjectPattern::parse(subject)
                .map_err(|e| Invalid::new(format!("{key}.subjects[{i}]"), e.to_string()))?;
        }
        let limits = [
            ("max_msgs", self.max_msgs),
            ("max_bytes", self.max_bytes),
            ("max_msgs_per_subject", self.max_msgs_per_subject),
            ("max_msg_size", self.max_msg_size.map(i64::from)),
            ("max_consumers", self.max_consumers.map(i64::from)),
        ];
        for (field, value) in limits {
            if value.is_some_and(|v| v < -1) {
                return Err(Invalid::new(
                    format!("{key}.{field}"),
                    "must be -1 (no limit) or >= 0",
                ));
            }
        }
        if let Some(r) = self.replicas
            && !(1..=5).contains(&r)
        {
            return Err(Invalid::new(
                format!("{key}.replicas"),
                "must be between 1 and 5",
            ));
        }
        if let Some(republish) = &self.republish {
            for (field, subject) in [("src", &republish.src), ("dest", &republish.dest)] {
                SubjectPattern::parse(subject)
                    .map_err(|e| Invalid::new(format!("{key}.republish.{field}"), e.to_string()))?;
            }
        }
        if let (Some(window), Some(age)) = (self.duplicate_window, self.max_age)
            && age > 0
            && window > age
        {
            return Err(Invalid::new(
                format!("{key}.duplicate_window"),
                "must not exceed max_age",
            ));
        }
        Ok(())
    }
}

/// Validates every declared stream: names, specs, and that no two streams
/// claim overlapping subjects (NATS would refuse the second one).
pub(super) fn validate_all(
    streams: &indexmap::IndexMap<String, StreamSpec>,
) -> Result<(), Invalid> {
    let mut claimed: Vec<(SubjectPattern, &str)> = Vec::new();
    for (name, spec) in streams {
        let key = format!("streams.{name}");
        StreamName::parse(name).map_err(|e| Invalid::new(key.clone(), e.to_string()))?;
        if spec.name.as_deref().is_some_and(|n| n != name) {
            return Err(Invalid::new(
                format!("{key}.name"),
                format!("must equal the map key {name:?} when given"),
            ));
        }
        spec.validate(&key)?;
        for subject in &spec.subjects {
            let pattern = SubjectPattern::parse(subject).expect("validated above");
            if let Some((_, other)) = claimed.iter().find(|(p, _)| p.overlaps(&pattern)) {
                return Err(Invalid::new(
                    format!("{key}.subjects"),
                    format!("{subject:?} overlaps a subject of stream {other}"),
                ));
            }
            claimed.push((pattern, name));
        }
    }
    Ok(())
}
