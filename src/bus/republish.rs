//! The gateway-owned subject space stored messages are re-published to.
//!
//! A declared stream gets a RePublish of everything it stores to
//! `$MP.stored.<STREAM>.<subject>`: the server adds `Nats-Stream`,
//! `Nats-Sequence` and `Nats-Time-Stamp`, so live frames on stored subjects
//! carry their sequence while still coming from one plain core subscription
//! that the hub shares. `$MP` is a reserved prefix: no client subscribes to
//! it or publishes into it by accident (a wildcard such as `>` skips it and a
//! grant must name it), and it overlaps no stream's subjects.

use std::sync::Arc;

use async_nats::jetstream::stream;

/// First token of the space; reserved like `$JS`.
pub const RESERVED_TOKEN: &str = "$MP";
/// Prefix of every re-published subject.
pub const PREFIX: &str = "$MP.stored";

/// The RePublish the gateway wants on a stream it declares.
pub fn wanted(stream_name: &str) -> stream::Republish {
    stream::Republish {
        source: ">".into(),
        destination: format!("{PREFIX}.{stream_name}.>"),
        headers_only: false,
    }
}

/// The subject prefix (`$MP.stored.<STREAM>`) live subscriptions can use,
/// when the stream re-publishes everything it stores in the gateway's form.
/// Any other RePublish (an operator's own) is left alone and not used.
pub fn live_prefix(config: &stream::Config) -> Option<Arc<str>> {
    let republish = config.republish.as_ref()?;
    let wanted = wanted(&config.name);
    let whole = republish.source.is_empty() || republish.source == ">";
    (whole && !republish.headers_only && republish.destination == wanted.destination)
        .then(|| Arc::from(format!("{PREFIX}.{}", config.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateways_own_form_is_used_for_live_sequences() {
        let config = |republish: Option<stream::Republish>| stream::Config {
            name: "MD".into(),
            republish,
            ..Default::default()
        };
        let own = wanted("MD");
        assert_eq!(own.destination, "$MP.stored.MD.>");
        let cases = [
            (Some(own.clone()), Some("$MP.stored.MD")),
            (
                Some(stream::Republish {
                    source: String::new(),
                    ..own.clone()
                }),
                Some("$MP.stored.MD"),
            ),
            (
                Some(stream::Republish {
                    headers_only: true,
                    ..own.clone()
                }),
                None,
            ),
            (
                Some(stream::Republish {
                    source: "a.>".into(),
                    ..own.clone()
                }),
                None,
            ),
            (
                Some(stream::Republish {
                    destination: "mine.>".into(),
                    ..own.clone()
                }),
                None,
            ),
            (None, None),
        ];
        for (republish, prefix) in cases {
            assert_eq!(
                live_prefix(&config(republish.clone())).as_deref(),
                prefix,
                "{republish:?}"
            );
        }
    }
}
