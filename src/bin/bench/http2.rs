//! B1-H2: B1 over HTTP/2: the same core publish as B1, sent as h2c streams
//! multiplexed on a few connections, against B1's own HTTP/1.1 load
//! measured in the same repetition (the ratio is HTTP/2 ÷ HTTP/1.1).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use crate::Env;
use crate::clients::{Counter, Post, Stop, counter, measure};
use crate::err::{Context, Result, bail};
use crate::payload;
use crate::publish::http_load;
use crate::reps::pairs;
use crate::stats::{BenchResult, Goal, Sample};

/// HTTP/2 connections, and requests in flight on each: 64 in all, as B1.
const CONNS: usize = 8;
const STREAMS: usize = 8;
const SIZE: usize = 256;

/// One request/response on an h2 connection; the status.
async fn exchange(
    send: &mut h2::client::SendRequest<Bytes>,
    request: &http::Request<()>,
    body: &Bytes,
) -> Result<u16> {
    let mut ready = send.clone().ready().await.context("h2 stream capacity")?;
    let (response, mut stream) = ready
        .send_request(request.clone(), false)
        .context("h2 request")?;
    stream.send_data(body.clone(), true).context("h2 body")?;
    let response = response.await.context("h2 response")?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.context("h2 response body")?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(status)
}

async fn h2_load(env: &Env, path: &str, expect: u16) -> Result<Sample> {
    let done = counter();
    let errors = counter();
    let stop = Stop::default();
    let body = Bytes::from(payload::sized(SIZE));
    let request = http::Request::post(format!("http://{}{path}", env.gateway))
        .header("content-type", "application/json")
        .body(())
        .context("request")?;
    let mut workers = Vec::new();
    for _ in 0..CONNS {
        let tcp = tokio::net::TcpStream::connect(env.gateway)
            .await
            .context("connect")?;
        tcp.set_nodelay(true).context("nodelay")?;
        let (send, conn) = h2::client::handshake(tcp).await.context("h2 handshake")?;
        tokio::spawn(conn);
        for _ in 0..STREAMS {
            let (mut send, request, body) = (send.clone(), request.clone(), body.clone());
            let (done, errors, stop): (Counter, Counter, Stop) =
                (done.clone(), errors.clone(), stop.clone());
            workers.push(tokio::spawn(async move {
                while !stop.is_set() {
                    if exchange(&mut send, &request, &body).await? == expect {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                Ok::<_, crate::err::Error>(())
            }));
        }
    }
    let mut sample = measure(&done, env.warmup, env.window).await;
    stop.set();
    for w in workers {
        match tokio::time::timeout(Duration::from_secs(10), w).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => bail!("HTTP/2 worker for {path}: {e}"),
            _ => bail!("HTTP/2 worker for {path} did not stop"),
        }
    }
    let errors = errors.load(Ordering::Relaxed);
    if errors > 0 {
        sample.extra.insert("errors".into(), errors.into());
    }
    Ok(sample)
}

pub async fn b1_h2(env: &Env) -> Result<BenchResult> {
    let post = Post {
        path: Arc::from("/publish/bench.core.b1"),
        content_type: "application/json",
        body: Bytes::from(payload::sized(SIZE)),
        expect: 202,
        weight: 1,
    };
    let reps = pairs(
        env,
        "B1-H2",
        async || h2_load(env, "/publish/bench.core.b1", 202).await,
        async || http_load(env, post.clone(), 64).await,
    )
    .await?;
    Ok(BenchResult::from_reps(
        "B1-H2",
        "HTTP/2 (h2c) core publish, 256 B, 8 connections × 8 streams",
        "msgs/s",
        "the same publish over HTTP/1.1, 64 keep-alive connections (B1's gateway load)",
        Goal::RatioAtLeast,
        0.75,
        reps,
    ))
}
