//! External clients the tests drive: curl and the venv's Python (httpx),
//! both installed by scripts/install-test-deps.sh; and a test PKI.

use std::path::PathBuf;
use std::process::{Command, Output};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of `.tools/venv` (override with `TEST_PYTHON`).
pub fn python() -> PathBuf {
    let path = std::env::var_os("TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools/venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        path.display()
    );
    path
}

/// Runs a Python script from `tests/` with arguments (off the async runtime).
pub async fn run_python(script: &str, args: &[&str]) -> Output {
    let mut command = Command::new(python());
    command.arg(root().join("tests").join(script)).args(args);
    run(command).await
}

/// Runs curl (`-s`, no config files) with `args`.
pub async fn curl(args: &[&str]) -> Output {
    let mut command = Command::new("curl");
    command.args(["-q", "-s"]).args(args);
    run(command).await
}

async fn run(mut command: Command) -> Output {
    let shown = format!("{command:?}");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("runner thread")
        .unwrap_or_else(|e| panic!("{shown}: {e} (run scripts/install-test-deps.sh)"))
}

/// A CA and a server certificate for localhost / 127.0.0.1, as PEM files.
pub struct Pki {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca_der: rustls_pki_types::CertificateDer<'static>,
}

pub fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL (curl) takes a leaf whose subject equals its
    // issuer for a self-signed certificate.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gateway test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        cert: write("server.pem", leaf.pem()),
        key: write("server.key", leaf_key.serialize_pem()),
        ca_der: ca_cert.der().clone(),
        _dir: dir,
    }
}
