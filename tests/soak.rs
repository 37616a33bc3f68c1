//! Soak: the gateway binary under steady publish load with WebSocket churn
//! and a slow consumer; its RSS, open file descriptors and task count must
//! stay flat. Not in the default run (it takes `SOAK_SECS`, default 600):
//! `scripts/soak.sh`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: u64,
    rss_kib: u64,
    fds: u64,
    tasks: u64,
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64
}

async fn tasks(http: &reqwest::Client, base: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("marketprism_broker_tokio_tasks "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes 10 minutes: run scripts/soak.sh"]
async fn gateway_memory_fds_and_tasks_stay_flat_under_load_and_churn() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("soak.yaml");
    std::fs::write(
        &config,
        format!(
            "service: {{host: 127.0.0.1, port: 0}}\nnats_client: {{nats_url: '{}'}}\nlogging: {{level: warn, format: json}}\n\
             streams: {{MARKET_DATA: {{subjects: ['funding_rate.>'], max_msgs: 100000, duplicate_window: 60}}}}\n",
            nats.url()
        ),
    )
    .unwrap();
    let (mut child, lines) = spawn_binary(&config, &[("RUST_LOG", "info")]);
    let pid = child.id();
    let addr = wait_for_log(&lines, "listening")["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://{addr}");
    // Idle pooled connections are dropped before the gateway's idle
    // keep-alive timeout (header_read_timeout_ms, 10 s) would close them.
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    wait_until(
        Duration::from_secs(15),
        "the gateway is healthy",
        || async {
            http.get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(secs);

    // Core market data straight into NATS: 1,000 orderbook updates/s.
    let core = tokio::spawn({
        let client = nats.client().await;
        let book = payload("orderbook.binance.perpetual.BTC-USDT");
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while Instant::now() < deadline {
                tick.tick().await;
                for i in 0..10 {
                    let _ = client
                        .publish(
                            format!("orderbook.binance.perpetual.S{i}"),
                            book.clone().into(),
                        )
                        .await;
                }
            }
        }
    });
    // Stored data through the gateway: 100 JetStream publishes/s over HTTP.
    let stored = tokio::spawn({
        let (http, base) = (http.clone(), base.clone());
        let funding = payload("funding_rate.binance.perpetual.BTC-USDT");
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut n = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                n += 1;
                let _ = http
                    .post(format!(
                        "{base}/publish/funding_rate.binance.perpetual.BTC-USDT"
                    ))
                    .header("Nats-Msg-Id", format!("soak-{n}"))
                    .body(funding.clone())
                    .send()
                    .await;
            }
            n
        }
    });
    // Socket churn: a new socket every 200 ms reads a little and leaves.
    let churn = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut opened = 0u64;
            while Instant::now() < deadline {
                let url = format!("ws://{addr}/subscribe?subject=orderbook.%3E");
                if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await {
                    for _ in 0..5 {
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.next()).await;
                    }
                    let _ = ws.close(None).await;
                    opened += 1;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            opened
        }
    });
    // A replay subscriber that resumes by sequence, reconnecting every 30 s.
    let replayer = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut next = 1u64;
            while Instant::now() < deadline {
                let url =
                    format!("ws://{addr}/subscribe?subject=funding_rate.%3E&start_seq={next}");
                let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
                    continue;
                };
                let until = Instant::now() + Duration::from_secs(30);
                while Instant::now() < until.min(deadline) {
                    match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            let f: serde_json::Value = serde_json::from_str(&t).unwrap();
                            assert_documented(&f);
                            if let Some(seq) = f["seq"].as_u64() {
                                next = seq + 1;
                            }
                        }
                        Ok(None) | Ok(Some(Err(_))) => break,
                        _ => {}
                    }
                }
            }
        }
    });
    // A slow consumer that never reads, for the whole run.
    let (_slow, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/subscribe?subject=orderbook.%3E"))
            .await
            .unwrap();

    let started = Instant::now();
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(
            Duration::from_secs(10).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
        samples.push(Sample {
            secs: started.elapsed().as_secs(),
            rss_kib: rss_kib(pid),
            fds: fds(pid),
            tasks: tasks(&http, &base).await,
        });
    }
    core.await.unwrap();
    let published = stored.await.unwrap();
    let sockets = churn.await.unwrap();
    replayer.await.unwrap();
    let _ = child.kill();
    let _ = child.wait();

    println!("| minute | RSS (MiB) | open fds | tokio tasks |");
    println!("|---|---|---|---|");
    for s in samples.iter().filter(|s| s.secs % 60 < 10) {
        println!(
            "| {} | {:.1} | {} | {} |",
            s.secs / 60,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.tasks
        );
    }
    println!(
        "{published} stored publishes over HTTP, {sockets} sockets opened and closed, {} s",
        secs
    );

    // Flat: the last quarter is no higher than the second quarter plus slack.
    let quarter = samples.len() / 4;
    assert!(quarter >= 1, "too short a run to judge");
    let reference = &samples[quarter..2 * quarter];
    let tail = &samples[samples.len() - quarter..];
    let max = |f: fn(&Sample) -> u64, s: &[Sample]| s.iter().map(f).max().unwrap();
    let (rss_ref, rss_end) = (max(|s| s.rss_kib, reference), max(|s| s.rss_kib, tail));
    assert!(
        rss_end <= rss_ref + rss_ref / 4 + 8 * 1024,
        "RSS grew from {rss_ref} KiB to {rss_end} KiB"
    );
    let (fd_ref, fd_end) = (max(|s| s.fds, reference), max(|s| s.fds, tail));
    assert!(
        fd_end <= fd_ref + 20,
        "open fds grew from {fd_ref} to {fd_end}"
    );
    let (t_ref, t_end) = (max(|s| s.tasks, reference), max(|s| s.tasks, tail));
    assert!(
        t_end <= t_ref + t_ref / 5 + 20,
        "tasks grew from {t_ref} to {t_end}"
    );
}
