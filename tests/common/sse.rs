//! A Server-Sent Events client for tests: reads a response block by block,
//! as an EventSource would.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

/// One parsed SSE block: a comment or an event.
#[derive(Debug, Default)]
pub struct Block {
    pub comment: Option<String>,
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

impl Block {
    fn parse(raw: &str) -> Block {
        let mut block = Block::default();
        for line in raw.lines() {
            if let Some(c) = line.strip_prefix(':') {
                block.comment = Some(c.trim().to_owned());
            } else if let Some((field, value)) = line.split_once(':') {
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => block.event = Some(value.to_owned()),
                    "id" => block.id = Some(value.to_owned()),
                    "data" => {
                        if !block.data.is_empty() {
                            block.data.push('\n');
                        }
                        block.data.push_str(value);
                    }
                    _ => {}
                }
            }
        }
        block
    }
}

/// Reads an SSE response block by block, as an EventSource would.
pub struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    pub fn new(res: reqwest::Response) -> Self {
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Self {
            body: res.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next block; `None` once the server has ended the stream.
    pub async fn next_block(&mut self) -> Option<Block> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                return Some(Block::parse(&raw));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event or the end within 10 s")?
                .expect("chunk");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    pub async fn next(&mut self) -> Block {
        self.next_block().await.expect("stream open")
    }

    /// The next event (skipping heartbeat comments).
    pub async fn event(&mut self) -> (String, Option<String>, Value) {
        loop {
            let b = self.next().await;
            if let Some(event) = b.event {
                return (
                    event,
                    b.id,
                    serde_json::from_str(&b.data).expect("JSON data"),
                );
            }
        }
    }

    /// The events left until the server ends the stream (within 10 s of
    /// each other): `(event, data)`.
    pub async fn until_end(&mut self) -> Vec<(String, Value)> {
        let mut events = Vec::new();
        while let Some(b) = self.next_block().await {
            if let Some(event) = b.event {
                events.push((event, serde_json::from_str(&b.data).expect("JSON data")));
            }
        }
        events
    }
}
