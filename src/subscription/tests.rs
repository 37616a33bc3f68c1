//! Subscription bookkeeping without a NATS server: everything here is
//! decided before NATS is asked (the bus points at an address nothing
//! listens on, and keeps trying in the background).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::auth::Auth;
use crate::config::Config;
use crate::fanout::Hub;
use crate::metrics::Metrics;

const SECRET: &str = "unit-secret";

/// A config whose one token may subscribe to `md.>` only, hold two
/// connections and three subscriptions per connection.
fn config() -> Config {
    config_granting("md.>")
}

/// The same token with another subscribe grant.
fn config_granting(allow: &str) -> Config {
    let yaml = format!(
        "nats_client: {{nats_url: 'nats://127.0.0.1:1', connect_timeout: 0.1}}\n\
         gateway: {{jetstream: {{api_timeout_ms: 100}}, websocket: {{max_subscriptions_per_socket: 5}}}}\n\
         auth:\n  tokens:\n    - name: unit\n      token_sha256: '{}'\n      \
         subscribe: {{allow: ['{allow}']}}\n      max_connections: 2\n      max_subscriptions: 3\n",
        hex::encode(Sha256::digest(SECRET))
    );
    Config::from_yaml(&yaml, None).expect("valid config").config
}

fn caller(config: &Config) -> Principal {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {SECRET}").parse().unwrap());
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    Auth::from_config(config)
        .authenticate(&headers, None, ip, false)
        .expect("the token authenticates")
}

async fn context(config: &Config, slots: usize) -> Context {
    let metrics = Arc::new(Metrics::new());
    let bus = crate::bus::connect(config, CancellationToken::new(), metrics.clone())
        .await
        .expect("connects in the background");
    let hub = Arc::new(Hub::new(
        bus.clone(),
        Arc::new(crate::replay::HistoryReader(bus.clone())),
        bus.settings().send_timeout,
        metrics.clone(),
    ));
    Context::new(Shared {
        bus,
        hub,
        tasks: TaskTracker::new(),
        shutdown: CancellationToken::new(),
        metrics,
        slots: Arc::new(Semaphore::new(slots)),
        limits: Limits::from_settings(&config.gateway.websocket),
    })
}

fn request(subjects: &[&str], deliver: Deliver) -> SubscribeRequest {
    SubscribeRequest {
        patterns: subjects
            .iter()
            .map(|s| SubjectPattern::parse(s).unwrap())
            .collect(),
        queue: None,
        deliver,
    }
}

#[test]
fn limits_come_from_the_websocket_settings() {
    let config = config();
    let limits = Limits::from_settings(&config.gateway.websocket);
    assert_eq!(limits.max_subscriptions, 5);
    assert!(limits.check_subject_count(5).is_ok());
    let err = limits.check_subject_count(6).unwrap_err();
    assert_eq!(
        (err.code(), err.detail().contains('5')),
        ("too_many_subscriptions", true)
    );
}

#[tokio::test]
async fn admission_takes_a_gateway_slot_and_a_token_slot_and_gives_both_back() {
    let config = config();
    let ctx = context(&config, 1).await;
    let caller = caller(&config);
    let first = ctx.admit(&caller).expect("a free slot");
    let full = ctx.admit(&caller).err().expect("no second slot");
    assert_eq!(full.code(), "too_many_connections", "the gateway holds one");
    drop(first);
    let again = ctx.admit(&caller).expect("the slot came back");
    drop(again);

    // The token's own quota (two) binds before a larger gateway limit.
    let ctx = context(&config, 10).await;
    let held = [ctx.admit(&caller).unwrap(), ctx.admit(&caller).unwrap()];
    let err = ctx.admit(&caller).err().expect("over the token's quota");
    assert_eq!(
        err.code(),
        "quota_exceeded",
        "the token's quota, not the gateway's"
    );
    drop(held);
    assert!(ctx.admit(&caller).is_ok());
}

#[tokio::test]
async fn subscriptions_are_refused_before_nats_is_asked() {
    let config = config();
    let ctx = context(&config, 1).await;
    let mut subs = Subscriptions::new(ctx.clone(), caller(&config), ctx.limits.outbox(None));
    assert!(subs.is_empty());

    let forbidden = subs
        .subscribe(&request(&["trade.x"], Deliver::New), None)
        .await;
    assert_eq!(forbidden.unwrap_err().code(), "forbidden");
    let partly = request(&["md.a", "trade.x"], Deliver::New);
    assert_eq!(
        subs.subscribe(&partly, None).await.unwrap_err().code(),
        "forbidden"
    );

    // The token allows three per connection, fewer than the gateway's five.
    let four = request(&["md.a", "md.b", "md.c", "md.d"], Deliver::New);
    let err = subs.subscribe(&four, None).await.unwrap_err();
    assert_eq!(
        (err.code(), err.detail().contains('3')),
        ("too_many_subscriptions", true)
    );

    let overlapping = request(&["md.>", "md.a"], Deliver::All);
    assert_eq!(
        subs.subscribe(&overlapping, None).await.unwrap_err().code(),
        "invalid_query"
    );
    let mut queued = request(&["md.a"], Deliver::All);
    queued.queue = Some("workers".into());
    assert_eq!(
        subs.subscribe(&queued, None).await.unwrap_err().code(),
        "invalid_query"
    );

    let err = subs.unsubscribe("md.a", None).await.unwrap_err();
    assert_eq!(err.code(), "not_subscribed");
    assert!(subs.is_empty(), "nothing was added by a refusal");
    assert_eq!(subs.outbox().pending(), (0, 0), "refusals queue no frame");
}

/// Records a live subscription as held, as a successful join would (the
/// join itself needs NATS).
fn hold_live(subs: &mut Subscriptions, subject: &str) {
    let pattern = SubjectPattern::parse(subject).unwrap();
    let topic = TopicKey {
        pattern: pattern.clone(),
        queue: None,
    };
    let gauge = subs.gauge("live");
    subs.active
        .insert(key(&pattern, &None), Active::Live(topic, gauge));
}

async fn frame_types(outbox: &Outbox) -> Vec<String> {
    let mut frames = Vec::new();
    if outbox.pending() != (0, 0) {
        outbox.next_batch(&mut frames, 100).await;
    }
    frames.iter().map(|f| f.kind.to_string()).collect()
}

#[tokio::test]
async fn held_subjects_are_confirmed_again_and_only_new_ones_count_against_the_limit() {
    let config = config();
    let ctx = context(&config, 1).await;
    let live = || ctx.metrics.subscriptions.with_label_values(&["live"]).get();
    let mut subs = Subscriptions::new(ctx.clone(), caller(&config), ctx.limits.outbox(None));
    for subject in ["md.a", "md.b", "md.c"] {
        hold_live(&mut subs, subject);
    }
    assert_eq!(live(), 3);

    // At the token's limit of three: subjects already held are no new
    // subscriptions (each is confirmed again), a fourth is refused.
    let again = request(&["md.a", "md.c"], Deliver::New);
    subs.subscribe(&again, None).await.expect("already held");
    assert_eq!(
        frame_types(subs.outbox()).await,
        ["subscribed", "subscribed"]
    );
    let fourth = request(&["md.a", "md.d"], Deliver::New);
    let err = subs.subscribe(&fourth, None).await.unwrap_err();
    assert_eq!(err.code(), "too_many_subscriptions");
    assert_eq!(live(), 3, "a refusal adds nothing");

    subs.unsubscribe("md.b", None).await.expect("held");
    assert_eq!(live(), 2, "the gauge follows");
    let err = subs.unsubscribe("md.b", None).await.unwrap_err();
    assert_eq!(err.code(), "not_subscribed", "removed once");
    assert_eq!(
        subs.unsubscribe("md.a", Some("q"))
            .await
            .unwrap_err()
            .code(),
        "not_subscribed"
    );

    subs.leave_all().await;
    assert!(subs.is_empty());
    assert_eq!(live(), 0);
}

#[tokio::test]
async fn a_narrowed_grant_ends_what_it_no_longer_covers_and_a_removed_token_closes() {
    let config = config();
    let ctx = context(&config, 1).await;
    let mut subs = Subscriptions::new(ctx.clone(), caller(&config), ctx.limits.outbox(None));
    hold_live(&mut subs, "md.a");
    hold_live(&mut subs, "md.b");
    for subject in ["md.b", "md.a"] {
        let subject = async_nats::Subject::from(subject);
        subs.outbox()
            .push_message(Frame::message(&subject, b"1", None, None));
    }
    let admission = Admission::new([127, 0, 0, 1].into(), &axum::http::Request::new(()));

    let narrowed = Auth::from_config(&config_granting("md.a"));
    subs.recheck(&narrowed, &admission)
        .await
        .expect("the token stays");
    let mut frames = Vec::new();
    subs.outbox().next_batch(&mut frames, 100).await;
    let seen: Vec<(&str, Option<&str>)> =
        frames.iter().map(|f| (f.kind, f.subject_key())).collect();
    assert_eq!(seen, [("message", Some("md.a")), ("unsubscribed", None)]);
    assert!(frames[1].text.contains(r#""subject":"md.b""#) && frames[1].text.contains("forbidden"));
    assert_eq!(ctx.metrics.revoked_subscription.get(), 1);
    assert!(subs.unsubscribe("md.a", None).await.is_ok(), "md.a stays");

    let mut other = config_granting("md.>");
    other.auth.as_mut().unwrap().tokens[0].name = "someone-else".into();
    let closed = subs.recheck(&Auth::from_config(&other), &admission).await;
    assert_eq!(closed.unwrap_err().code, 1008);
    assert_eq!(ctx.metrics.revoked_connection.get(), 1);
}
