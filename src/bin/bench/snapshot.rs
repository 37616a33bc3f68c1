//! B12: a snapshot storm. Many sockets ask at once for the newest message
//! of every subject (`deliver=last_per_subject`), as a dashboard fleet does
//! after a deploy; measured until every socket has its `caught_up`, against
//! the same number of direct async-nats clients each reading the snapshot
//! with an ordered consumer (`DeliverPolicy::LastPerSubject`). Meanwhile
//! the stream's consumer count is sampled: the gateway should need none.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::Env;
use crate::clients::RawWs;
use crate::err::{Context, Result, bail};
use crate::payload;
use crate::publish::pair;
use crate::stats::{BenchResult, Goal, Sample};
use crate::sys;

pub const STREAM: &str = "BENCH_SNAP";
const SUBJECTS: usize = 2_000;
const SIZE: usize = 256;
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// A direct client that has its snapshot by then starts over, as a real one
/// would: one of 1,000 ordered consumers created at once now and then
/// never delivers (seen about one run in three), which hung the storm.
const CLIENT_LIMIT: Duration = Duration::from_secs(20);

/// Stores one message on each of the subjects (kept between runs).
async fn prepare(env: &Env) -> Result<()> {
    let mut stream = env
        .js
        .get_stream(STREAM)
        .await
        .context("get snapshot stream")?;
    let info = stream.info().await.context("stream info")?;
    if info.state.subjects_count == SUBJECTS as u64 {
        return Ok(());
    }
    let body = Bytes::from(payload::sized(SIZE));
    let mut acks = FuturesUnordered::new();
    for i in 0..SUBJECTS {
        acks.push(
            env.js
                .publish(format!("bench.snap.binance.perpetual.S{i}"), body.clone())
                .await
                .context("publish")?
                .into_future(),
        );
    }
    while let Some(ack) = acks.next().await {
        ack.context("ack")?;
    }
    Ok(())
}

/// Samples the stream's consumer count until `done`; the most seen.
async fn sample_consumers(env: &Env, done: Rc<Cell<bool>>) -> usize {
    let mut most = 0;
    while !done.get() {
        if let Ok(mut stream) = env.js.get_stream(STREAM).await
            && let Ok(info) = stream.info().await
        {
            most = most.max(info.state.consumer_count);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    most
}

async fn one_socket(env: &Env) -> Result<usize> {
    let mut ws = RawWs::connect(
        env.gateway,
        "/subscribe?subject=bench.snap.%3E&deliver=last_per_subject",
        64 * 1024,
    )
    .await?;
    Ok(ws.count_until_caught_up("snapshot").await? as usize)
}

/// [`one_consumer`], started over (new consumer) when it has not finished
/// within [`CLIENT_LIMIT`]; the storm's time includes the restarts, which
/// `restarts` counts.
async fn one_consumer_restarting(env: &Env, restarts: &Cell<usize>) -> Result<usize> {
    for _ in 0..3 {
        match tokio::time::timeout(CLIENT_LIMIT, one_consumer(env)).await {
            Ok(result) => return result,
            Err(_) => restarts.set(restarts.get() + 1),
        }
    }
    bail!("no snapshot within three attempts")
}

async fn one_consumer(env: &Env) -> Result<usize> {
    let stream = env.js.get_stream(STREAM).await.context("get stream")?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::LastPerSubject,
            filter_subject: "bench.snap.>".into(),
            ..Default::default()
        })
        .await
        .context("create ordered consumer")?;
    let mut messages = consumer.messages().await.context("messages")?;
    let mut count = 0;
    while count < SUBJECTS {
        match messages.next().await {
            Some(Ok(msg)) => {
                count += 1;
                if msg.info().is_ok_and(|i| i.pending == 0) {
                    break;
                }
            }
            Some(Err(e)) => bail!("ordered consumer: {e}"),
            None => bail!("ordered consumer ended after {count}"),
        }
    }
    Ok(count)
}

/// Runs `clients` at once; the time until the last is served, how many
/// were, and the most consumers seen meanwhile.
async fn storm<F: Future<Output = Result<usize>>>(
    env: &Env,
    clients: usize,
    client: impl Fn() -> F,
) -> Result<Sample> {
    let load = sys::Load::now();
    let started = Instant::now();
    let done = Rc::new(Cell::new(false));
    let sampler = sample_consumers(env, done.clone());
    let all = async {
        let runs: FuturesUnordered<_> = (0..clients).map(|_| client()).collect();
        let results: Vec<Result<usize>> = runs.collect().await;
        crate::debug("B12: all clients done");
        done.set(true);
        results
    };
    crate::debug(&format!("B12: {clients} clients start"));
    let (results, most) = tokio::time::timeout(RUN_LIMIT, futures::future::join(all, sampler))
        .await
        .map_err(|_| "snapshot storm took too long")?;
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu, foreign) = sys::Load::now().since(&load);
    let mut served = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(n) if n == SUBJECTS => served += 1,
            Ok(n) => {
                first_error.get_or_insert(format!("a snapshot of {n} subjects"));
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = &first_error {
        eprintln!(
            "  B12: {} of {clients} clients not served; first: {e}",
            clients - served
        );
    }
    let mut extra = serde_json::Map::new();
    extra.insert("served".into(), served.into());
    extra.insert("consumers_max".into(), most.into());
    extra.insert("seconds".into(), elapsed.into());
    Ok(Sample {
        value: served as f64 / elapsed,
        cpu,
        foreign,
        extra,
    })
}

async fn no_consumers_left(env: &Env) -> Result<()> {
    let stream = env.js.get_stream(STREAM).await.context("get stream")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names: Vec<String> = stream
            .consumer_names()
            .filter_map(|n| async { n.ok() })
            .collect()
            .await;
        if names.is_empty() {
            return Ok(());
        }
        for name in names {
            let _ = stream.delete_consumer(&name).await;
        }
        if Instant::now() > deadline {
            bail!("the baseline's consumers were not deleted");
        }
    }
}

pub async fn b12(env: &Env) -> Result<BenchResult> {
    prepare(env).await?;
    let clients = env.snapshot_clients;
    let reps = if env.quick { 1 } else { env.reps };
    let mut all = Vec::new();
    for rep in 0..reps {
        all.push(
            pair(
                env,
                "B12",
                rep,
                async || storm(env, clients, || one_socket(env)).await,
                async || {
                    let restarts = Cell::new(0);
                    let mut sample =
                        storm(env, clients, || one_consumer_restarting(env, &restarts)).await;
                    no_consumers_left(env).await?;
                    if let Ok(s) = &mut sample {
                        s.extra.insert("restarts".into(), restarts.get().into());
                    }
                    sample
                },
            )
            .await?,
        );
        // The baseline's consumers expire; the next gateway run must not
        // count them.
        no_consumers_left(env).await?;
    }
    let mut res = BenchResult::from_reps(
        "B12",
        &format!(
            "snapshot storm: {} sockets at once, deliver=last_per_subject over {} subjects",
            crate::report::thousands(clients as u64),
            crate::report::thousands(SUBJECTS as u64)
        ),
        "snapshots/s",
        "as many direct async-nats clients, each an ordered consumer (LastPerSubject)",
        Goal::RatioAtLeast,
        1.0,
        all,
    );
    // The goal proper: every socket served, with no consumer at all.
    let unserved = res
        .reps
        .iter()
        .any(|r| r.extra.get("gateway_served").and_then(|v| v.as_u64()) != Some(clients as u64));
    let consumers = res
        .reps
        .iter()
        .filter_map(|r| {
            r.extra
                .get("gateway_consumers_max")
                .and_then(|v| v.as_u64())
        })
        .max()
        .unwrap_or(0);
    for key in [
        "gateway_seconds",
        "baseline_seconds",
        "baseline_consumers_max",
    ] {
        if let Some(v) = res.median_extra(key) {
            res.extra.insert(key.into(), v.into());
        }
    }
    res.extra
        .insert("gateway_consumers_max".into(), consumers.into());
    if unserved || consumers > 0 {
        res.pass = false;
        res.within_quick_bound = false;
    }
    res.note = Some(format!(
        "{SIZE} B messages; time from the first connect to the last caught_up; the gateway must \
         serve every socket with 0 JetStream consumers (sampled every 50 ms)"
    ));
    Ok(res)
}
