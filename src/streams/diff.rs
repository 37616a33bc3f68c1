//! Field-by-field comparison of stream and consumer configs, in the terms
//! of our specs (so a reported difference names a YAML key).

use async_nats::jetstream::stream;
use serde::Serialize;
use serde_json::Value;

use super::convert::stream_spec;
use super::reconcile::Difference;

/// Keys whose values differ between two stream configs, in spec terms.
pub fn differences(current: &stream::Config, desired: &stream::Config) -> Vec<Difference> {
    spec_differences(&stream_spec(current), &stream_spec(desired))
}

pub fn spec_differences<T: Serialize>(current: &T, desired: &T) -> Vec<Difference> {
    let (Value::Object(cur), Value::Object(des)) = (
        serde_json::to_value(current).unwrap_or_default(),
        serde_json::to_value(desired).unwrap_or_default(),
    ) else {
        return Vec::new();
    };
    des.into_iter()
        .filter(|(field, value)| field != "subjects" || !same_members(cur.get(field), value))
        .filter(|(field, value)| cur.get(field) != Some(value))
        .map(|(field, desired)| Difference {
            current: cur.get(&field).cloned().unwrap_or(Value::Null),
            field,
            desired,
            error: None,
        })
        .collect()
}

fn same_members(a: Option<&Value>, b: &Value) -> bool {
    match (a.and_then(Value::as_array), b.as_array()) {
        (Some(a), Some(b)) => a.len() == b.len() && a.iter().all(|v| b.contains(v)),
        _ => false,
    }
}

/// `base` with `top`'s given keys laid over it.
pub fn overlay<T: Serialize + serde::de::DeserializeOwned + Clone>(base: &T, top: &T) -> T {
    let (Value::Object(mut merged), Value::Object(over)) = (
        serde_json::to_value(base).unwrap_or_default(),
        serde_json::to_value(top).unwrap_or_default(),
    ) else {
        return base.clone();
    };
    merged.extend(over);
    serde_json::from_value(Value::Object(merged)).unwrap_or_else(|_| base.clone())
}

/// `base` with one field (in spec terms) copied from `desired`.
pub fn with_field(base: &stream::Config, desired: &stream::Config, field: &str) -> stream::Config {
    let mut next = base.clone();
    match field {
        "subjects" => next.subjects = desired.subjects.clone(),
        "description" => next.description = desired.description.clone(),
        "retention" => next.retention = desired.retention,
        "max_msgs" => next.max_messages = desired.max_messages,
        "max_bytes" => next.max_bytes = desired.max_bytes,
        "max_age" => next.max_age = desired.max_age,
        "max_msgs_per_subject" => next.max_messages_per_subject = desired.max_messages_per_subject,
        "max_msg_size" => next.max_message_size = desired.max_message_size,
        "max_consumers" => next.max_consumers = desired.max_consumers,
        "replicas" => next.num_replicas = desired.num_replicas,
        "storage" => next.storage = desired.storage,
        "discard" => next.discard = desired.discard,
        "duplicate_window" => next.duplicate_window = desired.duplicate_window,
        "allow_direct" => next.allow_direct = desired.allow_direct,
        "republish" => next.republish = desired.republish.clone(),
        _ => {}
    }
    next
}
