use super::*;

const SEED: &str = include_str!("../../tests/fixtures/seed/unified_message_broker.yaml");
const SEED_JS_INIT: &str = include_str!("../../tests/fixtures/seed/js_init_market_data.yaml");
const SHIPPED: &str = include_str!("../../config/unified_message_broker.yaml");

fn parse(yaml: &str) -> Result<Loaded, Invalid> {
    Config::from_yaml(yaml, None)
}

#[test]
fn seed_file_loads_unchanged_and_names_unused_sections() {
    let loaded = parse(SEED).expect("seed config loads");
    let c = &loaded.config;
    assert_eq!((c.service.host.as_str(), c.service.port), ("0.0.0.0", 8086));
    assert_eq!(c.nats_client.nats_url.0, vec!["nats://127.0.0.1:4222"]);
    assert_eq!(c.nats_client.max_reconnect_attempts, 10);
    assert_eq!(c.nats_client.reconnect_time_wait, 2.0);
    assert!(c.nats_client.strict_subjects);
    let market = &c.streams["MARKET_DATA"];
    assert_eq!(market.subjects.len(), 18);
    assert_eq!(market.max_msgs, Some(5_000_000));
    assert_eq!(market.max_bytes, Some(2_147_483_648));
    assert_eq!(market.max_age, Some(172_800));
    assert_eq!(market.replicas, Some(1));
    assert_eq!(market.storage, Some(StorageType::File));
    assert_eq!(market.discard, Some(DiscardPolicy::Old));
    assert_eq!(market.retention, Some(RetentionPolicy::Limits));
    assert_eq!(c.logging.level, "INFO");
    assert_eq!(c.logging.format, LogFormat::Json);
    for key in [
        "lsr_subscriber",
        "monitoring",
        "logging.file",
        "service.metrics_port",
    ] {
        assert!(
            loaded.unused_keys.iter().any(|k| k == key),
            "{key} in {:?}",
            loaded.unused_keys
        );
    }
}

#[test]
fn seed_js_init_file_loads_with_num_replicas_alias() {
    let loaded = parse(SEED_JS_INIT).expect("js_init config loads");
    let market = &loaded.config.streams["MARKET_DATA"];
    assert_eq!(market.replicas, Some(1));
    assert_eq!(market.duplicate_window, Some(300));
    assert!(loaded.unused_keys.is_empty(), "{:?}", loaded.unused_keys);
}

#[test]
fn shipped_config_loads_without_unused_keys() {
    let loaded = parse(SHIPPED).expect("shipped config loads");
    assert!(loaded.unused_keys.is_empty(), "{:?}", loaded.unused_keys);
    assert_eq!(loaded.config.nats_client.max_reconnect_attempts, -1);
    assert!(loaded.config.nats_client.reconnect_limit().is_none());
}

#[test]
fn empty_file_gives_defaults() {
    let c = parse("{}").unwrap().config;
    assert_eq!(c.listen_addr(), "0.0.0.0:8086");
    assert_eq!(c.gateway.publish.max_body_bytes, 1024 * 1024);
    assert!(c.streams.is_empty());
}

#[test]
fn nats_url_accepts_one_url_a_comma_list_or_a_yaml_list() {
    let cases: &[(&str, &[&str])] = &[
        (
            "nats_client: {nats_url: 'nats://a:4222'}",
            &["nats://a:4222"],
        ),
        (
            "nats_client: {nats_url: 'nats://a:1, nats://b:2,nats://c:3'}",
            &["nats://a:1", "nats://b:2", "nats://c:3"],
        ),
        (
            "nats_client: {nats_url: ['nats://a:1', 'nats://b:2']}",
            &["nats://a:1", "nats://b:2"],
        ),
    ];
    for (yaml, expected) in cases {
        let urls = parse(yaml).unwrap().config.nats_client.nats_url.0;
        assert_eq!(&urls, expected, "{yaml}");
    }
}

#[test]
fn env_url_overrides_the_file() {
    let loaded = Config::from_yaml(SEED, Some("nats://x:1,nats://y:2")).unwrap();
    assert_eq!(
        loaded.config.nats_client.nats_url.0,
        vec!["nats://x:1", "nats://y:2"]
    );
    let blank = Config::from_yaml(SEED, Some("  ")).unwrap();
    assert_eq!(
        blank.config.nats_client.nats_url.0,
        vec!["nats://127.0.0.1:4222"]
    );
}

#[test]
fn malformed_values_name_their_key_path() {
    let cases: &[(&str, &str)] = &[
        ("service: {port: 'abc'}", "service.port"),
        ("service: {port: 70000}", "service.port"),
        (
            "nats_client: {nats_url: 'http://x y'}",
            "nats_client.nats_url",
        ),
        ("nats_client: {nats_url: []}", "nats_client.nats_url"),
        (
            "nats_client: {max_reconnect_attempts: -5}",
            "nats_client.max_reconnect_attempts",
        ),
        (
            "nats_client: {reconnect_time_wait: -1}",
            "nats_client.reconnect_time_wait",
        ),
        ("logging: {format: xml}", "logging.format"),
        ("logging: {level: loud}", "logging.level"),
        (
            "streams: {S: {subjects: ['a.>'], storage: disk}}",
            "streams.S.storage",
        ),
        (
            "streams: {S: {subjects: ['a.>'], discard: oldest}}",
            "streams.S.discard",
        ),
        (
            "streams: {S: {subjects: ['a.>'], retention: forever}}",
            "streams.S.retention",
        ),
        (
            "streams: {S: {subjects: ['a..b']}}",
            "streams.S.subjects[0]",
        ),
        ("streams: {S: {subjects: []}}", "streams.S.subjects"),
        (
            "streams: {S: {subjects: ['a.>'], replicas: 9}}",
            "streams.S.replicas",
        ),
        (
            "streams: {S: {subjects: ['a.>'], max_msgs: -2}}",
            "streams.S.max_msgs",
        ),
        (
            "streams: {S: {subjects: ['a.>'], replicas: 1, num_replicas: 1}}",
            "streams.S",
        ),
        (
            "streams: {S: {name: T, subjects: ['a.>']}}",
            "streams.S.name",
        ),
        ("streams: {'A.B': {subjects: ['a.>']}}", "streams.A.B"),
        (
            "streams: {A: {subjects: ['a.>']}, B: {subjects: ['a.b']}}",
            "streams.B.subjects",
        ),
        (
            "gateway: {publish: {max_body_bytes: 0}}",
            "gateway.publish.max_body_bytes",
        ),
        (
            "gateway: {request: {default_timeout_ms: 9, max_timeout_ms: 5}}",
            "gateway.request.default_timeout_ms",
        ),
        (
            "gateway: {publish: {ack_timeout_ms: soon}}",
            "gateway.publish.ack_timeout_ms",
        ),
        (
            "gateway: {http: {max_connections: 0}}",
            "gateway.http.max_connections",
        ),
        (
            "gateway: {websocket: {ping_interval_ms: 0}}",
            "gateway.websocket.ping_interval_ms",
        ),
        (
            "gateway: {websocket: {queue_max_messages: 0}}",
            "gateway.websocket.queue_max_messages",
        ),
        (
            "gateway: {websocket: {read_buffer_bytes: 0}}",
            "gateway.websocket.read_buffer_bytes",
        ),
        (
            "gateway: {sse: {heartbeat_ms: 0}}",
            "gateway.sse.heartbeat_ms",
        ),
        ("auth: {tokens: [{name: a}]}", "auth.tokens[0]"),
        (
            "auth: {tokens: [{name: a, token_sha256: xyz}]}",
            "auth.tokens[0].token_sha256",
        ),
        (
            "auth: {tokens: [{name: a, token_env: MB_TEST_UNSET_VAR_0}]}",
            "auth.tokens[0].token_env",
        ),
        (
            "auth: {tokens: [{name: a, token_sha256: '0000000000000000000000000000000000000000000000000000000000000000', publish: {allow: ['a..b']}}]}",
            "auth.tokens[0].publish.allow[0]",
        ),
        (
            "auth: {tokens: [{name: a, token_sha256: '0000000000000000000000000000000000000000000000000000000000000000'}, {name: a, token_sha256: '1111111111111111111111111111111111111111111111111111111111111111'}]}",
            "auth.tokens[1].name",
        ),
        ("auth: {ticket_ttl_secs: 0}", "auth.ticket_ttl_secs"),
        ("auth: {tokens: [], nonsense: 1}", "auth"),
        (
            "nats_client: {user: u, password: p, token: t}",
            "nats_client",
        ),
        ("nats_client: {user: u}", "nats_client.password"),
        (
            "nats_client: {creds_file: /nonexistent/x.creds}",
            "nats_client.creds_file",
        ),
        (
            "nats_client: {tls: {cert_file: /nonexistent/c.pem}}",
            "nats_client.tls.cert_file",
        ),
        (
            "service: {tls: {cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem}}",
            "service.tls.cert_file",
        ),
    ];
    for (yaml, key) in cases {
        let err = parse(yaml).expect_err(yaml);
        assert!(
            err.key.starts_with(key),
            "{yaml}: key {:?}, want {key:?} ({})",
            err.key,
            err.message
        );
    }
}

#[test]
fn load_error_names_file_and_key() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, "service:\n  port: 'abc'\n").unwrap();
    let message = Config::load(&path).unwrap_err().to_string();
    assert!(
        message.contains("bad.yaml") && message.contains("service.port"),
        "{message}"
    );
    let missing = Config::load(&dir.join("missing.yaml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing.yaml"), "{missing}");
}
