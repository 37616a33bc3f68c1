//! Between our stream/consumer specs (YAML and admin JSON: seconds, short
//! names) and async-nats' configs (Durations, NATS field names).

use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};

pub use crate::util::time::{push_rfc3339, rfc3339};

use crate::config::{
    AckPolicySpec, ConsumerSpec, DeliverPolicySpec, DiscardPolicy as Discard, ReplayPolicySpec,
    RepublishSpec, RetentionPolicy as Retention, StorageType as Storage, StreamSpec,
};

/// Applies every key `spec` gives onto `base`; keys it leaves out keep
/// `base`'s value. `strict_subjects` replaces the subject list, otherwise
/// missing subjects are only added.
pub fn apply_stream(spec: &StreamSpec, base: &mut stream::Config, strict_subjects: bool) {
    if strict_subjects {
        if !same_set(&base.subjects, &spec.subjects) {
            base.subjects = spec.subjects.clone();
        }
    } else {
        for subject in &spec.subjects {
            if !base.subjects.contains(subject) {
                base.subjects.push(subject.clone());
            }
        }
    }
    if let Some(d) = &spec.description {
        base.description = Some(d.clone());
    }
    if let Some(r) = spec.retention {
        base.retention = match r {
            Retention::Limits => RetentionPolicy::Limits,
            Retention::Interest => RetentionPolicy::Interest,
            Retention::Workqueue => RetentionPolicy::WorkQueue,
        };
    }
    set(&mut base.max_messages, spec.max_msgs);
    set(&mut base.max_bytes, spec.max_bytes);
    set(
        &mut base.max_messages_per_subject,
        spec.max_msgs_per_subject,
    );
    set(&mut base.max_message_size, spec.max_msg_size);
    set(&mut base.max_consumers, spec.max_consumers);
    set(&mut base.num_replicas, spec.replicas);
    if let Some(age) = spec.max_age {
        base.max_age = Duration::from_secs(age);
    }
    if let Some(window) = spec.duplicate_window {
        base.duplicate_window = Duration::from_secs(window);
    }
    if let Some(s) = spec.storage {
        base.storage = match s {
            Storage::File => StorageType::File,
            Storage::Memory => StorageType::Memory,
        };
    }
    if let Some(d) = spec.discard {
        base.discard = match d {
            Discard::Old => DiscardPolicy::Old,
            Discard::New => DiscardPolicy::New,
        };
    }
    set(&mut base.allow_direct, spec.allow_direct);
    if let Some(r) = &spec.republish {
        base.republish = Some(stream::Republish {
            source: r.src.clone(),
            destination: r.dest.clone(),
            headers_only: r.headers_only,
        });
    }
}

/// A new stream's config: NATS defaults plus what `spec` gives.
pub fn new_stream_config(name: &str, spec: &StreamSpec) -> stream::Config {
    let mut config = stream::Config {
        name: name.to_owned(),
        ..Default::default()
    };
    apply_stream(spec, &mut config, true);
    config
}

/// The full spec of an existing stream (every key filled in).
pub fn stream_spec(config: &stream::Config) -> StreamSpec {
    StreamSpec {
        name: Some(config.name.clone()),
        description: config.description.clone(),
        subjects: config.subjects.clone(),
        retention: Some(match config.retention {
            RetentionPolicy::Limits => Retention::Limits,
            RetentionPolicy::Interest => Retention::Interest,
            RetentionPolicy::WorkQueue => Retention::Workqueue,
        }),
        max_msgs: Some(config.max_messages),
        max_bytes: Some(config.max_bytes),
        max_age: Some(config.max_age.as_secs()),
        max_msgs_per_subject: Some(config.max_messages_per_subject),
        max_msg_size: Some(config.max_message_size),
        max_consumers: Some(config.max_consumers),
        replicas: Some(config.num_replicas),
        storage: Some(match config.storage {
            StorageType::File => Storage::File,
            StorageType::Memory => Storage::Memory,
        }),
        discard: Some(match config.discard {
            DiscardPolicy::Old => Discard::Old,
            DiscardPolicy::New => Discard::New,
        }),
        duplicate_window: Some(config.duplicate_window.as_secs()),
        allow_direct: Some(config.allow_direct),
        republish: config.republish.as_ref().map(|r| RepublishSpec {
            src: r.source.clone(),
            dest: r.destination.clone(),
            headers_only: r.headers_only,
        }),
    }
}

/// A consumer config from a spec; `name` is the durable name.
pub fn consumer_config(name: &str, spec: &ConsumerSpec) -> Result<consumer::Config, String> {
    let mut config = consumer::Config {
        durable_name: Some(name.to_owned()),
        description: spec.description.clone(),
        deliver_subject: spec.deliver_subject.clone(),
        deliver_group: spec.deliver_group.clone(),
        headers_only: spec.headers_only.unwrap_or(false),
        ..Default::default()
    };
    if let Some(subject) = &spec.filter_subject {
        config.filter_subject = subject.clone();
    }
    if let Some(subjects) = &spec.filter_subjects {
        config.filter_subjects = subjects.clone();
    }
    if let Some(policy) = spec.deliver_policy {
        config.deliver_policy = match policy {
            DeliverPolicySpec::All => DeliverPolicy::All,
            DeliverPolicySpec::Last => DeliverPolicy::Last,
            DeliverPolicySpec::New => DeliverPolicy::New,
            DeliverPolicySpec::LastPerSubject => DeliverPolicy::LastPerSubject,
            DeliverPolicySpec::ByStartSequence => DeliverPolicy::ByStartSequence {
                start_sequence: spec.opt_start_seq.ok_or("opt_start_seq is required")?,
            },
            DeliverPolicySpec::ByStartTime => {
                let text = spec
                    .opt_start_time
                    .as_deref()
                    .ok_or("opt_start_time is required")?;
                DeliverPolicy::ByStartTime {
                    start_time: time::OffsetDateTime::parse(
                        text,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_err(|e| format!("opt_start_time: {e}"))?,
                }
            }
        };
    }
    if let Some(policy) = spec.ack_policy {
        config.ack_policy = match policy {
            AckPolicySpec::Explicit => AckPolicy::Explicit,
            AckPolicySpec::None => AckPolicy::None,
            AckPolicySpec::All => AckPolicy::All,
            AckPolicySpec::FlowControl => AckPolicy::FlowControl,
        };
    }
    if let Some(policy) = spec.replay_policy {
        config.replay_policy = match policy {
            ReplayPolicySpec::Instant => ReplayPolicy::Instant,
            ReplayPolicySpec::Original => ReplayPolicy::Original,
        };
    }
    if let Some(wait) = spec.ack_wait {
        config.ack_wait = Duration::from_secs(wait);
    }
    if let Some(idle) = spec.inactive_threshold {
        config.inactive_threshold = Duration::from_secs(idle);
    }
    set(&mut config.max_deliver, spec.max_deliver);
    set(&mut config.max_ack_pending, spec.max_ack_pending);
    set(&mut config.max_waiting, spec.max_waiting);
    set(&mut config.num_replicas, spec.replicas);
    Ok(config)
}

/// The full spec of an existing consumer.
pub fn consumer_spec(stream: &str, config: &consumer::Config) -> ConsumerSpec {
    let (deliver_policy, opt_start_seq, opt_start_time) = match &config.deliver_policy {
        DeliverPolicy::All => (DeliverPolicySpec::All, None, None),
        DeliverPolicy::Last => (DeliverPolicySpec::Last, None, None),
        DeliverPolicy::New => (DeliverPolicySpec::New, None, None),
        DeliverPolicy::LastPerSubject => (DeliverPolicySpec::LastPerSubject, None, None),
        DeliverPolicy::ByStartSequence { start_sequence } => (
            DeliverPolicySpec::ByStartSequence,
            Some(*start_sequence),
            None,
        ),
        DeliverPolicy::ByStartTime { start_time } => (
            DeliverPolicySpec::ByStartTime,
            None,
            Some(rfc3339(start_time)),
        ),
    };
    let filter_subjects =
        (!config.filter_subjects.is_empty()).then(|| config.filter_subjects.clone());
    ConsumerSpec {
        stream: Some(stream.to_owned()),
        durable_name: config.durable_name.clone().or_else(|| config.name.clone()),
        description: config.description.clone(),
        filter_subject: (!config.filter_subject.is_empty()).then(|| config.filter_subject.clone()),
        filter_subjects,
        deliver_policy: Some(deliver_policy),
        opt_start_seq,
        opt_start_time,
        ack_policy: Some(match config.ack_policy {
            AckPolicy::Explicit => AckPolicySpec::Explicit,
            AckPolicy::None => AckPolicySpec::None,
            AckPolicy::All => AckPolicySpec::All,
            AckPolicy::FlowControl => AckPolicySpec::FlowControl,
        }),
        ack_wait: Some(config.ack_wait.as_secs()),
        max_deliver: Some(config.max_deliver),
        max_ack_pending: Some(config.max_ack_pending),
        max_waiting: Some(config.max_waiting),
        replay_policy: Some(match config.replay_policy {
            ReplayPolicy::Instant => ReplayPolicySpec::Instant,
            ReplayPolicy::Original => ReplayPolicySpec::Original,
        }),
        deliver_subject: config.deliver_subject.clone(),
        deliver_group: config.deliver_group.clone(),
        inactive_threshold: Some(config.inactive_threshold.as_secs()),
        headers_only: Some(config.headers_only),
        replicas: Some(config.num_replicas),
    }
}

fn set<T: Copy>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|s| b.contains(s))
}
