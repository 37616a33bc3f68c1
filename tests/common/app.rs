//! The gateway under test, started in-process on an OS-assigned port.

use std::net::SocketAddr;
use std::time::Duration;

use message_broker::app::RunError;
use message_broker::{AppState, Config, Gateway};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::wait_until;

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub shutdown: CancellationToken,
    pub handle: Option<JoinHandle<Result<(), RunError>>>,
}

/// A config for tests: the given NATS URL, quick reconnects and refreshes,
/// and no streams declared.
pub fn test_config(nats_url: &str) -> Config {
    let mut config = Config::default();
    config.service.host = "127.0.0.1".into();
    config.service.port = 0;
    config.nats_client.nats_url = message_broker::config::NatsUrls(vec![nats_url.to_owned()]);
    config.nats_client.reconnect_time_wait = 0.1;
    config.nats_client.connect_timeout = 1.0;
    config.nats_client.ping_interval = 2.0;
    config.gateway.jetstream.refresh_interval_ms = 200;
    config.gateway.jetstream.api_timeout_ms = 2_000;
    config
}

/// Starts the gateway against `nats_url` with [`test_config`].
pub async fn spawn_app(nats_url: &str) -> TestApp {
    spawn_app_with(nats_url, |_| {}).await
}

/// Starts the gateway after letting the test adjust the config.
/// A ready gateway that declares MARKET_DATA on `funding_rate.>`, returned
/// once it has created the stream and loaded its routes.
pub async fn spawn_app_with_market_data(nats_url: &str) -> TestApp {
    let app = spawn_app_with(nats_url, |c| {
        c.streams.insert(
            "MARKET_DATA".into(),
            message_broker::config::StreamSpec {
                subjects: vec!["funding_rate.>".into()],
                ..Default::default()
            },
        );
    })
    .await
    .ready()
    .await;
    wait_until(
        Duration::from_secs(10),
        "the stream is declared",
        || async { app.healthz().await.1["streams"]["MARKET_DATA"]["status"] == "created" },
    )
    .await;
    app.refresh_routes().await;
    app
}

pub async fn spawn_app_with(nats_url: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(nats_url);
    adjust(&mut config);
    config.validate().expect("test config is valid");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let gateway = Gateway::with_listener(config, listener)
        .await
        .expect("gateway starts");
    let addr = gateway.local_addr().expect("local addr");
    let state = gateway.state();
    let shutdown = gateway.shutdown_token();
    let handle = tokio::spawn(gateway.run());
    TestApp {
        addr,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client"),
        state,
        shutdown,
        handle: Some(handle),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    /// `POST /publish/{subject}` with a body.
    pub async fn publish(
        &self,
        subject: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/publish/{subject}")))
            .body(body)
            .send()
            .await
            .expect("POST /publish")
    }

    /// `POST /publish` with an NDJSON body.
    pub async fn publish_batch(&self, ndjson: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(self.url("/publish"))
            .header("content-type", "application/x-ndjson")
            .body(ndjson)
            .send()
            .await
            .expect("POST /publish (batch)")
    }

    pub async fn healthz(&self) -> (StatusCode, Value) {
        let res = self.get("/healthz").await;
        let status = res.status();
        (status, res.json().await.expect("healthz JSON"))
    }

    /// Waits until `/healthz` answers `status`.
    pub async fn wait_for_health(&self, status: StatusCode, within: Duration) {
        wait_until(within, &format!("/healthz answers {status}"), || async {
            self.healthz().await.0 == status
        })
        .await;
    }

    /// Waits until the gateway is connected to NATS.
    pub async fn ready(self) -> Self {
        self.wait_for_health(StatusCode::OK, Duration::from_secs(10))
            .await;
        self
    }

    /// Reloads the routing index now (after creating a stream behind the
    /// gateway's back).
    pub async fn refresh_routes(&self) {
        self.state.bus.refresh_now().await;
    }

    /// Shuts the gateway down and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), RunError> {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("running");
        tokio::time::timeout(Duration::from_secs(15), handle)
            .await
            .expect("gateway stops within 15 s")
            .expect("gateway task did not panic")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Reads a problem+json response: asserts the media type and returns
/// `(status, code, document)`.
pub async fn problem(res: reqwest::Response) -> (StatusCode, String, Value) {
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        content_type, "application/problem+json",
        "problem media type for {status}"
    );
    let doc: Value = res.json().await.expect("problem JSON");
    assert_eq!(
        doc["status"].as_u64(),
        Some(u64::from(status.as_u16())),
        "status member"
    );
    let code = doc["code"].as_str().expect("code member").to_owned();
    assert_eq!(
        doc["type"].as_str(),
        Some(format!("urn:marketprism:problem:{code}").as_str())
    );
    assert!(doc["title"].is_string() && doc["detail"].is_string());
    (status, code, doc)
}
