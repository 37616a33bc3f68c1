//! Subscribing over WebSocket: B5 (fan-out throughput), B6 (latency) and
//! B7 (idle memory), each against the same clients on nats-server's native
//! WebSocket listener.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::Env;
use crate::clients::{self, NativeSub, RawWs, Stop, Tally};
use crate::err::{Context, Result, bail};
use crate::payload;
use crate::procs::{GatewayProc, Nats, discard_dir, gateway_config};
use crate::publish::pair;
use crate::reps::pairs;
use crate::stats::{BenchResult, Goal, Sample, percentile};
use crate::sys;

const FANOUT_SOCKETS: usize = 100;
/// Messages per socket the B5 publisher lets be under way (published but
/// not yet received, on average). Below the gateway's per-socket queue
/// (1,024) so flow control, not the drop policy, sets the pace.
const CREDIT: u64 = 256;
const LATENCY_SOCKETS: usize = 10;
const LATENCY_RATE: f64 = 5_000.0;
const LATENCY_SIZE: usize = 256;
const SUBJECT: &str = "orderbook.binance.perpetual.BTC-USDT";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Gateway,
    Native,
}

/// Subjects socket `i` subscribes to.
pub type Subjects<'a> = &'a dyn Fn(usize) -> Vec<String>;

/// Every socket on `orderbook.>` (B5, B6, B7).
fn shared_subject(_: usize) -> Vec<String> {
    vec!["orderbook.>".to_owned()]
}

/// Opens `n` subscribers and starts reading them into `tally`.
async fn subscribers(
    env: &Env,
    kind: Kind,
    n: usize,
    subjects: Subjects<'_>,
    tally: &Tally,
    stop: &Stop,
) -> Result<Vec<JoinHandle<()>>> {
    let mut readers = Vec::with_capacity(n);
    for i in 0..n {
        let (tally, stop) = (tally.clone(), stop.clone());
        let subjects = subjects(i);
        readers.push(match kind {
            Kind::Gateway => {
                let ws = clients::gateway_subscriber(env.gateway, &subjects, 256 * 1024).await?;
                tokio::spawn(clients::gateway_reader(ws, tally, stop))
            }
            Kind::Native => {
                let sub = NativeSub::connect(env.nats_ws, &subjects, 256 * 1024).await?;
                tokio::spawn(sub.run(tally, stop))
            }
        });
    }
    Ok(readers)
}

async fn close(readers: Vec<JoinHandle<()>>) {
    for r in readers {
        r.abort();
        let _ = r.await;
    }
    // Let the server notice the closed sockets before the next run.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// What a fan-out run subscribes and publishes.
pub struct Shape<'a> {
    pub sockets: usize,
    pub subjects: Subjects<'a>,
    /// The publisher cycles through these.
    pub publish: Vec<async_nats::Subject>,
    /// Sockets each message reaches.
    pub copies: u64,
    /// Messages the publisher lets be under way (published, not yet
    /// delivered to every socket it reaches).
    pub credit: u64,
    pub size: usize,
}

/// One side of B5 or B11: delivered messages per second over all sockets,
/// and the servers' CPU time per delivery.
pub async fn fanout(env: &Env, kind: Kind, shape: &Shape<'_>) -> Result<Sample> {
    let tally = Tally::new(false);
    let stop = Stop::default();
    let readers = subscribers(env, kind, shape.sockets, shape.subjects, &tally, &stop).await?;
    crate::debug(&format!("fan-out {kind:?}: {} sockets open", shape.sockets));
    let body = Bytes::from(payload::sized(shape.size));
    let publisher = {
        let (client, tally, stop) = (env.nats.clone(), tally.clone(), stop.clone());
        let (subjects, copies, credit) = (shape.publish.clone(), shape.copies, shape.credit);
        tokio::spawn(async move {
            let mut published: u64 = 0;
            let mut next = subjects.iter().cycle();
            while !stop.is_set() {
                let delivered = tally.messages.load(Ordering::Relaxed) / copies;
                if published.saturating_sub(delivered) < credit {
                    for _ in 0..16 {
                        let subject = next.next().expect("subjects").clone();
                        client
                            .publish(subject, body.clone())
                            .await
                            .context("publish")?;
                    }
                    published += 16;
                } else {
                    tokio::task::yield_now().await;
                }
            }
            Ok::<_, crate::err::Error>(published)
        })
    };
    tokio::time::sleep(env.warmup).await;
    let ticks = sys::servers_ticks();
    let mut sample = clients::measure(&tally.messages, Duration::ZERO, env.window).await;
    // CPU the servers (gateway and nats-server) spent per delivery: the
    // server-side cost even when the receiving clients' core is the limit.
    let server_s = (sys::servers_ticks() - ticks) as f64 / sys::ticks_per_second();
    let deliveries = sample.value * env.window.as_secs_f64();
    if deliveries > 0.0 {
        sample.extra.insert(
            "server_cpu_ns_per_delivery".into(),
            (server_s * 1e9 / deliveries).round().into(),
        );
    }
    stop.set();
    crate::debug(&format!("fan-out {kind:?}: measured {}", sample.value));
    let published = publisher.await.context("join")??;
    close(readers).await;
    sample.extra.insert("published".into(), published.into());
    let dropped = tally.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        sample.extra.insert("dropped".into(), dropped.into());
    }
    Ok(sample)
}

/// Carries the medians of the servers' CPU per delivery into the result.
pub fn keep_server_cpu(res: &mut BenchResult) {
    for key in [
        "gateway_server_cpu_ns_per_delivery",
        "baseline_server_cpu_ns_per_delivery",
    ] {
        if let Some(v) = res.median_extra(key) {
            res.extra.insert(key.into(), v.into());
        }
    }
}

pub async fn b5(env: &Env) -> Result<Vec<BenchResult>> {
    let mut out = Vec::new();
    for (size, label) in [(128, "128 B"), (1024, "1 KiB")] {
        let shape = Shape {
            sockets: FANOUT_SOCKETS,
            subjects: &shared_subject,
            publish: vec![SUBJECT.into()],
            copies: FANOUT_SOCKETS as u64,
            credit: CREDIT,
            size,
        };
        let reps = pairs(
            env,
            &format!("B5 {label}"),
            async || fanout(env, Kind::Gateway, &shape).await,
            async || fanout(env, Kind::Native, &shape).await,
        )
        .await?;
        let mut res = BenchResult::from_reps(
            &format!("B5 ({label})"),
            &format!("WebSocket fan-out, 1 publisher → 100 sockets on orderbook.>, {label}"),
            "deliveries/s",
            "the same 100 clients on nats-server's native WebSocket listener",
            Goal::RatioAtLeast,
            1.0,
            reps,
        );
        keep_server_cpu(&mut res);
        res.note = Some(format!(
            "publisher paced by delivery: at most {CREDIT} messages per socket under way; server CPU = gateway + nats-server CPU time per delivery"
        ));
        out.push(res);
    }
    Ok(out)
}

/// B6, one side: latency percentiles in µs (value = p99).
async fn latency(env: &Env, kind: Kind) -> Result<Sample> {
    let tally = Tally::new(true);
    let stop = Stop::default();
    let readers = subscribers(env, kind, LATENCY_SOCKETS, &shared_subject, &tally, &stop).await?;
    let template = payload::timestamped(LATENCY_SIZE);
    let publisher = {
        let (client, origin, stop) = (env.nats.clone(), tally.origin, stop.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let mut sent: u64 = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while !stop.is_set() {
                tick.tick().await;
                let due = (start.elapsed().as_secs_f64() * LATENCY_RATE) as u64;
                while sent < due {
                    let mut p = template.clone();
                    payload::stamp(&mut p, origin.elapsed().as_nanos() as u64);
                    client
                        .publish(SUBJECT, Bytes::from(p))
                        .await
                        .context("publish")?;
                    sent += 1;
                }
            }
            Ok::<_, crate::err::Error>(sent)
        })
    };
    tokio::time::sleep(env.warmup).await;
    let lat = tally.latencies.clone().expect("latency tally");
    lat.lock().expect("lock").clear();
    let m0 = tally.messages.load(Ordering::Relaxed);
    let load = sys::Load::now();
    let t0 = Instant::now();
    // p99 needs enough samples: at least 2 s (10,000 per socket).
    tokio::time::sleep(env.window.max(Duration::from_secs(2))).await;
    let mut values = std::mem::take(&mut *lat.lock().expect("lock"));
    let received = tally.messages.load(Ordering::Relaxed) - m0;
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu, foreign) = sys::Load::now().since(&load);
    stop.set();
    publisher.await.context("join")??;
    close(readers).await;
    values.sort_unstable();
    if values.is_empty() {
        bail!("no timestamped messages arrived");
    }
    let mut extra = serde_json::Map::new();
    extra.insert("p50_us".into(), percentile(&values, 50.0).into());
    extra.insert("p99_us".into(), percentile(&values, 99.0).into());
    extra.insert("p999_us".into(), percentile(&values, 99.9).into());
    extra.insert("max_us".into(), (*values.last().expect("non-empty")).into());
    extra.insert(
        "deliveries_per_s".into(),
        ((received as f64 / elapsed).round()).into(),
    );
    Ok(Sample {
        value: percentile(&values, 99.0) as f64,
        cpu,
        foreign,
        extra,
    })
}

pub async fn b6(env: &Env) -> Result<BenchResult> {
    let reps = pairs(
        env,
        "B6",
        async || latency(env, Kind::Gateway).await,
        async || latency(env, Kind::Native).await,
    )
    .await?;
    let mut res = BenchResult::from_reps(
        "B6",
        "publish→WebSocket latency at 5,000 msgs/s, 10 sockets (p99)",
        "µs",
        "direct NATS subscriber over nats-server's native WebSocket",
        Goal::RatioAtMost,
        2.0,
        reps,
    );
    // The second bound: gateway p99 at most 1 ms.
    let p99_ok = res.gateway <= 1_000.0;
    res.pass &= p99_ok;
    for key in [
        "gateway_p50_us",
        "gateway_max_us",
        "baseline_p50_us",
        "baseline_max_us",
    ] {
        if let Some(v) = res.median_extra(key) {
            res.extra.insert(key.into(), v.into());
        }
    }
    res.target_text = "p99 ≤ 1000 µs and ratio ≤ 2.00".into();
    res.note = Some(format!(
        "core NATS publisher at {LATENCY_RATE} msgs/s, {LATENCY_SIZE} B; latency = receive − send on one clock"
    ));
    Ok(res)
}

/// Opens idle sockets `range`, subscribed to their `subjects` (64
/// handshakes at a time).
pub async fn idle_sockets(
    kind: Kind,
    addr: std::net::SocketAddr,
    range: std::ops::Range<usize>,
    subjects: Subjects<'_>,
) -> Result<Vec<RawWs>> {
    let opened: Vec<Result<RawWs>> = futures::stream::iter(range)
        .map(|i| async move {
            let subjects = subjects(i);
            match kind {
                Kind::Gateway => clients::gateway_subscriber(addr, &subjects, 4096).await,
                Kind::Native => Ok(NativeSub::connect(addr, &subjects, 4096).await?.into_ws()),
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    opened.into_iter().collect()
}

/// RSS growth of `pid` per socket, in KiB, for `n` idle subscribed sockets
/// that `open(range)` opens (and keeps open while it holds what it returns).
pub async fn per_socket<T>(
    pid: u32,
    n: usize,
    open: impl AsyncFn(std::ops::Range<usize>) -> Result<T>,
) -> Result<Sample> {
    // Warm up: the first sockets pay one-time costs (the shared NATS
    // subscription, lazily built tables) that are not per socket. Subjects
    // of their own, so the measured sockets find none of theirs in place.
    drop(open(n..n + 100).await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sys::rss_bytes(pid).context("read RSS")?;
    let started = Instant::now();
    let sockets = open(0..n).await?;
    let open_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = sys::rss_bytes(pid).context("read RSS")?;
    drop(sockets);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kib = (after.saturating_sub(before)) as f64 / n as f64 / 1024.0;
    let mut extra = serde_json::Map::new();
    extra.insert("rss_before_kib".into(), (before / 1024).into());
    extra.insert("rss_after_kib".into(), (after / 1024).into());
    extra.insert("open_seconds".into(), open_s.into());
    Ok(Sample {
        value: kib,
        extra,
        ..Sample::default()
    })
}

/// A subject of its own for socket `i` (B7d, B10, B11): MarketPrism's
/// shape, a symbol per socket.
pub fn own_subject(i: usize) -> String {
    format!("orderbook.bench.perpetual.S{i:05}-USDT")
}

/// B7: every socket on `orderbook.>`. B7d: each on a subject of its own,
/// so each also costs a NATS subscription (target also ≤ 0.25× native).
pub async fn b7(env: &Env, distinct: bool) -> Result<BenchResult> {
    let n = env.idle_sockets;
    let id = if distinct { "B7d" } else { "B7" };
    let own = |i| vec![own_subject(i)];
    let subjects: Subjects<'_> = if distinct { &own } else { &shared_subject };
    let mut reps = Vec::new();
    for rep in 0..env.reps {
        // Fresh servers each time: memory freed by earlier runs would be
        // reused and hide the cost.
        let dir = env.dir.join(format!("{id}-{rep}"));
        let nats = Nats::start(&dir.join("nats"), env.placement)?;
        let gw = GatewayProc::start(
            &dir.join("gateway"),
            &gateway_config(&nats.url, "warn"),
            env.placement,
        )?;
        crate::wait_ready(gw.addr).await?;
        reps.push(
            pair(
                env,
                id,
                rep,
                async || {
                    let open = async |r| idle_sockets(Kind::Gateway, gw.addr, r, subjects).await;
                    per_socket(gw.pid(), n, open).await
                },
                async || {
                    let open = async |r| idle_sockets(Kind::Native, nats.ws, r, subjects).await;
                    per_socket(nats.pid(), n, open).await
                },
            )
            .await?,
        );
        drop(gw);
        drop(nats);
        discard_dir(&dir);
    }
    let count = crate::report::thousands(n as u64);
    let (name, max_ratio) = if distinct {
        (
            format!("idle WebSocket memory, one distinct subject per socket, {count} sockets"),
            Some(0.25),
        )
    } else {
        (
            format!("idle subscribed WebSocket memory at {count} sockets"),
            None,
        )
    };
    let mut res = BenchResult::from_reps(
        id,
        &name,
        "KiB/socket",
        "nats-server native WebSocket (RSS growth of the nats-server process)",
        Goal::ValueAtMost,
        8.0,
        reps,
    );
    if let Some(max) = max_ratio {
        res.also_ratio_at_most(max);
    }
    res.note = Some(format!(
        "RSS growth of the server process (VmRSS) divided by {n}; kernel socket buffers are not in RSS"
    ));
    Ok(res)
}
