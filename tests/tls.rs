//! TLS on both sides (HTTPS for clients, TLS toward NATS) and the NATS
//! authentication methods, with certificates made by the test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use message_broker::config::ServiceTls;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

#[tokio::test]
async fn gateway_serves_https_with_the_configured_certificate() {
    let pki = pki();
    let nats = NatsServer::start().await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.service.tls = Some(ServiceTls {
            cert_file: pki.cert.clone(),
            key_file: pki.key.clone(),
        });
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the gateway");
    tls.write_all(b"GET /livez HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.80}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(app.url("/livez"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != StatusCode::OK);
}

#[tokio::test]
async fn gateway_connects_to_nats_over_tls_trusting_the_configured_ca() {
    let pki = pki();
    let config = format!(
        "tls {{ cert_file: {:?}, key_file: {:?} }}\n",
        pki.cert, pki.key
    );
    let nats = NatsServer::start_with_config(&config).await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.nats_client.tls.required = true;
        c.nats_client.tls.ca_file = Some(pki.ca.clone());
    })
    .await;
    app.wait_for_health(StatusCode::OK, Duration::from_secs(10))
        .await;
    assert_eq!(
        app.publish("tls.ok", "1").await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn gateway_authenticates_to_nats_with_user_password_token_or_nkey() {
    // user / password
    let nats =
        NatsServer::start_with_config("authorization { user: gw, password: s3cret }\n").await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.nats_client.user = Some("gw".into());
        c.nats_client.password = Some("s3cret".into());
    })
    .await;
    app.wait_for_health(StatusCode::OK, Duration::from_secs(10))
        .await;

    // token
    let nats = NatsServer::start_with_config("authorization { token: t0ken }\n").await;
    let app = spawn_app_with(&nats.url(), |c| c.nats_client.token = Some("t0ken".into())).await;
    app.wait_for_health(StatusCode::OK, Duration::from_secs(10))
        .await;

    // NKey
    let user = nkeys::KeyPair::new_user();
    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, user.seed().unwrap()).unwrap();
    let config = format!(
        "authorization {{ users: [ {{ nkey: {} }} ] }}\n",
        user.public_key()
    );
    let nats = NatsServer::start_with_config(&config).await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.nats_client.nkey_seed_file = Some(seed_file.clone())
    })
    .await;
    app.wait_for_health(StatusCode::OK, Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn refused_nats_credentials_show_in_healthz() {
    let nats =
        NatsServer::start_with_config("authorization { user: gw, password: s3cret }\n").await;
    let app = spawn_app_with(&nats.url(), |c| {
        c.nats_client.user = Some("gw".into());
        c.nats_client.password = Some("wrong".into());
    })
    .await;
    let error = wait_for(
        Duration::from_secs(10),
        "healthz reports the refusal",
        || async {
            let (status, body) = app.healthz().await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            body["nats"]["last_error"].as_str().map(str::to_owned)
        },
    )
    .await;
    assert!(error.to_lowercase().contains("authorization"), "{error}");
}
