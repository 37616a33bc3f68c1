//! Keeps declared streams and consumers in the shape the config gives.
//!
//! Runs after every (re)connect, so a server that lost its state is
//! provisioned again. Missing streams are created; existing ones get every
//! configured key enforced. When NATS refuses an update, each differing
//! field is retried alone so every change it can apply is applied, and the
//! ones it cannot (storage type, say) are reported as drift; a stream that
//! holds data is never deleted to force a change.

use std::collections::BTreeMap;
use std::sync::RwLock;

use async_nats::jetstream;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::convert::{apply_stream, consumer_config, consumer_spec, new_stream_config};
use super::diff::{differences, overlay, spec_differences, with_field};
use super::errors::About;
use crate::bus::Bus;
use crate::config::{Config, ConsumerSpec, RepublishSpec, StreamSpec};
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Not reconciled yet (no connection so far).
    Pending,
    Created,
    Updated,
    InSync,
    /// Some configured keys could not be applied; see `drift`.
    Drift,
    /// The stream or consumer could not be created or read.
    Error,
}

/// One configured key whose live value differs from the config.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Difference {
    pub field: String,
    #[schema(value_type = serde_json::Value)]
    pub current: Value,
    #[schema(value_type = serde_json::Value)]
    pub desired: Value,
    /// Why NATS refused the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of the last reconciliation of one stream or consumer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncReport {
    pub status: SyncStatus,
    /// Fields changed by the last run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Difference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SyncReport {
    fn of(status: SyncStatus) -> Self {
        Self {
            status,
            applied: Vec::new(),
            drift: Vec::new(),
            error: None,
        }
    }

    fn failed(err: &ApiError) -> Self {
        Self {
            error: Some(err.detail()),
            ..Self::of(SyncStatus::Error)
        }
    }
}

pub struct Reconciler {
    streams: IndexMap<String, StreamSpec>,
    consumers: IndexMap<String, ConsumerSpec>,
    strict_subjects: bool,
    stream_reports: RwLock<BTreeMap<String, SyncReport>>,
    consumer_reports: RwLock<BTreeMap<String, SyncReport>>,
}

impl Reconciler {
    pub fn new(config: &Config) -> Self {
        let pending = |names: Vec<&String>| {
            names
                .into_iter()
                .map(|n| (n.clone(), SyncReport::of(SyncStatus::Pending)))
                .collect()
        };
        Self {
            streams: config
                .streams
                .iter()
                .map(|(name, spec)| (name.clone(), with_gateway_needs(name, spec)))
                .collect(),
            consumers: config.consumers.clone(),
            strict_subjects: config.nats_client.strict_subjects,
            stream_reports: RwLock::new(pending(config.streams.keys().collect())),
            consumer_reports: RwLock::new(pending(config.consumers.keys().collect())),
        }
    }

    pub fn is_declared(&self, stream: &str) -> bool {
        self.streams.contains_key(stream)
    }

    pub fn is_consumer_declared(&self, durable: &str) -> bool {
        self.consumers.contains_key(durable)
    }

    pub fn stream_reports(&self) -> BTreeMap<String, SyncReport> {
        self.stream_reports
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the last run left a stream or consumer in `error`: not
    /// applied for a reason that may pass, such as a cluster that has no
    /// placement for an R3 stream until its peers have joined.
    pub fn has_errors(&self) -> bool {
        let failed = |reports: &RwLock<BTreeMap<String, SyncReport>>| {
            reports
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .any(|r| r.status == SyncStatus::Error)
        };
        failed(&self.stream_reports) || failed(&self.consumer_reports)
    }

    pub fn consumer_reports(&self) -> BTreeMap<String, SyncReport> {
        self.consumer_reports
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reconciles everything once. Errs only when JetStream did not answer,
    /// so the caller retries on its next tick.
    pub async fn run(&self, bus: &Bus) -> Result<(), ApiError> {
        if self.streams.is_empty() && self.consumers.is_empty() {
            return Ok(());
        }
        bus.ensure_connected()?;
        let js = bus.jetstream();
        let mut changed = 0;
        for (name, spec) in &self.streams {
            let report = self.sync_stream(bus, js, name, spec).await;
            if let Some(err) = unreachable(&report) {
                return Err(err);
            }
            changed += record("stream", name, report, &self.stream_reports);
        }
        for (name, spec) in &self.consumers {
            let report = self.sync_consumer(bus, js, name, spec).await;
            changed += record("consumer", name, report, &self.consumer_reports);
        }
        if changed == 0 {
            tracing::info!(
                "declared streams and consumers already match the config; nothing changed"
            );
        }
        bus.request_refresh();
        Ok(())
    }

    async fn sync_stream(
        &self,
        bus: &Bus,
        js: &jetstream::Context,
        name: &str,
        spec: &StreamSpec,
    ) -> SyncReport {
        let about = About::Stream(name);
        let current = match bus.api(js.get_stream(name), about).await {
            Ok(stream) => stream.cached_info().config.clone(),
            Err(ApiError::StreamNotFound(_)) => {
                return match bus
                    .api(js.create_stream(new_stream_config(name, spec)), about)
                    .await
                {
                    Ok(stream) => {
                        route(bus, &stream.cached_info().config);
                        SyncReport::of(SyncStatus::Created)
                    }
                    Err(err) => SyncReport::failed(&err),
                };
            }
            Err(err) => return SyncReport::failed(&err),
        };
        let mut desired = current.clone();
        apply_stream(spec, &mut desired, self.strict_subjects);
        let diffs = differences(&current, &desired);
        if diffs.is_empty() {
            return SyncReport::of(SyncStatus::InSync);
        }
        let fields: Vec<String> = diffs.iter().map(|d| d.field.clone()).collect();
        if let Ok(info) = bus.api(js.update_stream(desired.clone()), about).await {
            route(bus, &info.config);
            return SyncReport {
                applied: fields,
                ..SyncReport::of(SyncStatus::Updated)
            };
        }
        // Something was refused: apply the fields one at a time.
        let mut working = current;
        let mut report = SyncReport::of(SyncStatus::Drift);
        for mut diff in diffs {
            let candidate = with_field(&working, &desired, &diff.field);
            match bus.api(js.update_stream(candidate.clone()), about).await {
                Ok(info) => {
                    route(bus, &info.config);
                    working = candidate;
                    report.applied.push(diff.field);
                }
                Err(err) => {
                    diff.error = Some(err.detail());
                    report.drift.push(diff);
                }
            }
        }
        report
    }

    async fn sync_consumer(
        &self,
        bus: &Bus,
        js: &jetstream::Context,
        name: &str,
        spec: &ConsumerSpec,
    ) -> SyncReport {
        let stream_name = spec.stream.as_deref().unwrap_or_default();
        let about = About::Consumer(stream_name, name);
        let stream = match bus.stream_handle(stream_name, about).await {
            Ok(stream) => stream,
            Err(err) => return SyncReport::failed(&err),
        };
        let info = match bus.api(stream.consumer_info(name), about).await {
            Ok(info) => info,
            Err(ApiError::ConsumerNotFound(_)) => {
                let config = match consumer_config(name, spec) {
                    Ok(config) => config,
                    Err(message) => {
                        return SyncReport {
                            error: Some(message),
                            ..SyncReport::of(SyncStatus::Error)
                        };
                    }
                };
                return match bus.api(stream.create_consumer(config), about).await {
                    Ok(_) => SyncReport::of(SyncStatus::Created),
                    Err(err) => SyncReport::failed(&err),
                };
            }
            Err(err) => return SyncReport::failed(&err),
        };
        let current = consumer_spec(stream_name, &info.config);
        let desired = overlay(&current, spec);
        let diffs = spec_differences(&current, &desired);
        if diffs.is_empty() {
            return SyncReport::of(SyncStatus::InSync);
        }
        let update = consumer_config(name, &desired).map_err(|m| ApiError::InvalidConsumerConfig {
            field: "consumer".into(),
            message: m,
        });
        let result = match update {
            Ok(config) => bus
                .api(js.update_consumer_on_stream(config, stream_name), about)
                .await
                .map(|_| ()),
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => SyncReport {
                applied: diffs.into_iter().map(|d| d.field).collect(),
                ..SyncReport::of(SyncStatus::Updated)
            },
            Err(err) => SyncReport {
                drift: diffs
                    .into_iter()
                    .map(|d| Difference {
                        error: Some(err.detail()),
                        ..d
                    })
                    .collect(),
                ..SyncReport::of(SyncStatus::Drift)
            },
        }
    }
}

/// A declared stream's spec plus what the gateway needs from a stream it
/// owns, where the spec leaves it out: Direct Get (replay without a
/// consumer per client) and the RePublish that gives live frames their
/// sequence. Both are then enforced and reported like any other key.
fn with_gateway_needs(name: &str, spec: &StreamSpec) -> StreamSpec {
    let mut spec = spec.clone();
    spec.allow_direct.get_or_insert(true);
    spec.republish.get_or_insert_with(|| {
        let wanted = crate::bus::republish::wanted(name);
        RepublishSpec {
            src: wanted.source,
            dest: wanted.destination,
            headers_only: wanted.headers_only,
        }
    });
    spec
}

/// An error that means JetStream did not answer at all (retry later).
fn unreachable(report: &SyncReport) -> Option<ApiError> {
    let error = report.error.as_ref()?;
    (report.status == SyncStatus::Error
        && (error.contains("no answer") || error.contains("not connected")))
    .then(|| ApiError::JetStreamUnavailable(error.clone()))
}

/// Logs and keeps the report of one stream or consumer: 0 when it was in
/// sync, else 1 (what the run counts as changed).
fn record(
    kind: &str,
    name: &str,
    report: SyncReport,
    reports: &RwLock<BTreeMap<String, SyncReport>>,
) -> usize {
    let changed = usize::from(report.status != SyncStatus::InSync);
    log_report(kind, name, &report);
    reports
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_owned(), report);
    changed
}

fn log_report(kind: &str, name: &str, report: &SyncReport) {
    match report.status {
        SyncStatus::InSync => tracing::info!(kind, name, "matches its declaration"),
        SyncStatus::Created => tracing::info!(kind, name, "created from the config"),
        SyncStatus::Updated => {
            tracing::info!(kind, name, fields = ?report.applied, "updated to match the config")
        }
        SyncStatus::Drift => tracing::warn!(
            kind,
            name,
            applied = ?report.applied,
            drift = %serde_json::to_string(&report.drift).unwrap_or_default(),
            "cannot be brought in line with the config; serving with the live settings"
        ),
        SyncStatus::Error => {
            tracing::error!(kind, name, error = ?report.error, "reconciliation failed")
        }
        SyncStatus::Pending => {}
    }
}

/// The routing index learns a stream's subjects the moment reconciliation
/// changed them, before its status says so: a publish right after a
/// `created` report is acked by the stream rather than sent to core NATS
/// until the next refresh.
fn route(bus: &Bus, config: &jetstream::stream::Config) {
    bus.routing()
        .upsert(crate::bus::routing::StreamRoute::from_config(config));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StorageType, StreamSpec};

    #[test]
    fn differences_name_each_changed_key_and_ignore_subject_order() {
        let spec = StreamSpec {
            subjects: vec!["b.>".into(), "a.>".into()],
            max_msgs: Some(10),
            storage: Some(StorageType::Memory),
            ..Default::default()
        };
        let current = new_stream_config(
            "S",
            &StreamSpec {
                subjects: vec!["a.>".into(), "b.>".into()],
                ..Default::default()
            },
        );
        let mut desired = current.clone();
        apply_stream(&spec, &mut desired, true);
        let fields: Vec<String> = differences(&current, &desired)
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, ["max_msgs", "storage"]);
    }

    #[test]
    fn non_strict_subjects_only_add() {
        let mut config = new_stream_config(
            "S",
            &StreamSpec {
                subjects: vec!["legacy.>".into()],
                ..Default::default()
            },
        );
        let spec = StreamSpec {
            subjects: vec!["a.>".into()],
            ..Default::default()
        };
        apply_stream(&spec, &mut config, false);
        assert_eq!(config.subjects, ["legacy.>", "a.>"]);
        apply_stream(&spec, &mut config, true);
        assert_eq!(config.subjects, ["a.>"]);
    }
}
