//! B11: fan-out across many distinct subjects, B5's many-subject twin.
//! 1,000 sockets each subscribe to 10 of 10,000 subjects (each subject has
//! one subscriber) and one publisher spreads messages over all of them,
//! so every message is a different subject's and reaches one socket.

use crate::Env;
use crate::err::Result;
use crate::fanout::{self, Kind, Shape, own_subject};
use crate::reps::pairs;
use crate::stats::{BenchResult, Goal};

const SUBJECTS_PER_SOCKET: usize = 10;
const SIZE: usize = 256;
/// Messages under way over all sockets: about 32 per socket, far below
/// the gateway's per-socket queue, so flow control sets the pace.
const CREDIT: u64 = 32 * 1024;

pub async fn b11(env: &Env, sockets: usize) -> Result<BenchResult> {
    let subjects = sockets * SUBJECTS_PER_SOCKET;
    // Socket i holds subjects i, i + sockets, i + 2·sockets, ...: the
    // publisher's round robin over the subjects visits every socket in turn.
    let of_socket = |i: usize| {
        (0..SUBJECTS_PER_SOCKET)
            .map(|k| own_subject(i + k * sockets))
            .collect()
    };
    let shape = Shape {
        sockets,
        subjects: &of_socket,
        publish: (0..subjects).map(|j| own_subject(j).into()).collect(),
        copies: 1,
        credit: CREDIT,
        size: SIZE,
    };
    let reps = pairs(
        env,
        "B11",
        async || fanout::fanout(env, Kind::Gateway, &shape).await,
        async || fanout::fanout(env, Kind::Native, &shape).await,
    )
    .await?;
    let n = |v: usize| crate::report::thousands(v as u64);
    let mut res = BenchResult::from_reps(
        "B11",
        &format!(
            "many-subject fan-out: {} sockets × {SUBJECTS_PER_SOCKET} of {} subjects, {SIZE} B",
            n(sockets),
            n(subjects)
        ),
        "deliveries/s",
        "the same clients on nats-server's native WebSocket listener",
        Goal::RatioAtLeast,
        1.0,
        reps,
    );
    fanout::keep_server_cpu(&mut res);
    // The second bound: the servers spend no more CPU per delivery
    // than nats-server alone does for its own WebSocket clients.
    let cpu = |key| res.extra.get(key).and_then(serde_json::Value::as_f64);
    if let (Some(gw), Some(native)) = (
        cpu("gateway_server_cpu_ns_per_delivery"),
        cpu("baseline_server_cpu_ns_per_delivery"),
    ) {
        res.pass &= gw <= native;
        res.within_quick_bound &= gw <= native / 0.8;
    }
    res.target_text = "ratio ≥ 1.00 and server CPU per delivery ≤ native".into();
    res.note = Some(format!(
        "publisher round robin over every subject, at most {CREDIT} messages under way; server CPU = gateway + nats-server CPU time per delivery"
    ));
    Ok(res)
}
