//! B8: replaying a stored stream to one WebSocket (`deliver=all`) against a
//! direct async-nats ordered consumer reading the same messages.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::Env;
use crate::clients;
use crate::err::{Context, Result, bail};
use crate::payload;
use crate::publish::pair;
use crate::stats::{BenchResult, Goal, Sample};
use crate::sys;

const STREAM: &str = "BENCH_REPLAY";
const SIZE: usize = 256;
/// One run may take this long before it counts as stuck.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// Fills the replay stream with exactly `n` messages (kept between runs of
/// the same size).
pub async fn prepare(env: &Env, n: u64) -> Result<()> {
    let mut stream = env
        .js
        .get_stream(STREAM)
        .await
        .context("get replay stream")?;
    if stream.info().await.context("stream info")?.state.messages == n {
        return Ok(());
    }
    stream.purge().await.context("purge")?;
    let started = Instant::now();
    let body = Bytes::from(payload::sized(SIZE));
    let symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT"];
    let mut acks = FuturesUnordered::new();
    for i in 0..n {
        if acks.len() >= 4096
            && let Some(ack) = acks.next().await
        {
            let _: async_nats::jetstream::publish::PublishAck = ack?;
        }
        let subject = format!(
            "bench.replay.binance.{}",
            symbols[(i % symbols.len() as u64) as usize]
        );
        acks.push(
            env.js
                .publish(subject, body.clone())
                .await
                .context("publish")?
                .into_future(),
        );
    }
    while let Some(ack) = acks.next().await {
        ack.context("ack")?;
    }
    let stored = stream.info().await.context("stream info")?.state.messages;
    if stored != n {
        bail!("replay stream holds {stored} messages, expected {n}");
    }
    eprintln!(
        "  stored {n} messages in {STREAM} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn gateway(env: &Env, n: u64) -> Result<Sample> {
    let load = sys::Load::now();
    let ticks = sys::watched_ticks();
    let started = Instant::now();
    let mut ws = clients::RawWs::connect(
        env.gateway,
        "/subscribe?subject=bench.replay.%3E&deliver=all",
        256 * 1024,
    )
    .await?;
    let count = ws.count_until_caught_up("replay").await?;
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu, foreign) = sys::Load::now().since(&load);
    let extra = sys::cpu_per_item(&ticks, n, "message");
    drop(ws);
    if count != n {
        bail!("gateway replayed {count} messages, expected {n}");
    }
    Ok(Sample {
        value: n as f64 / elapsed,
        cpu,
        foreign,
        extra,
    })
}

async fn direct(env: &Env, n: u64) -> Result<Sample> {
    let load = sys::Load::now();
    let ticks = sys::watched_ticks();
    let started = Instant::now();
    let stream = env.js.get_stream(STREAM).await.context("get stream")?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("create ordered consumer")?;
    let mut messages = consumer.messages().await.context("messages")?;
    let mut count: u64 = 0;
    while count < n {
        match messages.next().await {
            Some(Ok(_)) => count += 1,
            Some(Err(e)) => eprintln!("  ordered consumer: {e}"),
            None => bail!("ordered consumer ended after {count}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu, foreign) = sys::Load::now().since(&load);
    Ok(Sample {
        value: n as f64 / elapsed,
        cpu,
        foreign,
        extra: sys::cpu_per_item(&ticks, n, "message"),
    })
}

pub async fn b8(env: &Env) -> Result<BenchResult> {
    let n = env.replay_messages;
    prepare(env, n).await?;
    let mut reps = Vec::new();
    for rep in 0..env.reps {
        reps.push(
            pair(
                env,
                "B8",
                rep,
                async || limit(gateway(env, n)).await,
                async || limit(direct(env, n)).await,
            )
            .await?,
        );
        // Let the deleted consumers go before the next run.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut res = BenchResult::from_reps(
        "B8",
        &format!(
            "replay of {} stored messages to one socket (deliver=all)",
            crate::report::thousands(n)
        ),
        "msgs/s",
        "direct async-nats ordered pull consumer, default settings",
        Goal::RatioAtLeast,
        1.0,
        reps,
    );
    res.note = Some(format!(
        "{SIZE} B messages; time from connect to the last message"
    ));
    Ok(res)
}

async fn limit(run: impl Future<Output = Result<Sample>>) -> Result<Sample> {
    tokio::time::timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| Err("replay run took too long".into()))
}
