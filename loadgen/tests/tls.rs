//! `https://` servers: the loadgen verifies the server against `--certificate-authority`
//! (or skips verification with `--insecure-skip-tls-verify`), over HTTP/1.1 and HTTP/2 (ALPN).
//! kubecache serves plain HTTP here, so a small rustls terminator in front of it plays the
//! TLS server; the CA and the certificate come from the `openssl` command.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::{Kubecache, assert_correct, loadgen, run_bounded};

fn openssl(dir: &Path, args: &[&str]) {
    let mut command = Command::new("openssl");
    command.current_dir(dir).args(args);
    let output = run_bounded(command, std::time::Duration::from_secs(60));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=loadgen-test-ca",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext.cnf");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// Terminates TLS on a free port and forwards the bytes to `backend`; returns the port.
/// Runs on its own thread and runtime until the test process ends.
fn tls_terminator(dir: &Path, backend: String) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("read server.pem")
        .collect::<Result<_, _>>()
        .expect("parse server.pem");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    // kubecache behind it speaks both on its plain port (HTTP/2 by prior knowledge).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, backend) = (acceptor.clone(), backend.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
    });
    port
}

#[test]
fn fanout_over_https_with_a_ca_bundle_and_insecure() {
    let dir = tempfile::tempdir().expect("a temp dir");
    make_certificates(dir.path());
    let server = Kubecache::start();
    let port = tls_terminator(dir.path(), server.address());
    let url = format!("https://127.0.0.1:{port}");
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().expect("UTF-8 path");
    for (mode, trust) in [
        ("--http1", vec!["--certificate-authority", ca]),
        ("--http2", vec!["--certificate-authority", ca]),
        ("--http2", vec!["--insecure-skip-tls-verify"]),
    ] {
        let mut args = vec!["--server", &url, mode, "--check", "--timeout", "120"];
        args.extend(trust);
        args.extend([
            "fanout",
            "--nodes",
            "5",
            "--informers",
            "1",
            "--rate",
            "10",
            "--duration",
            "2",
        ]);
        let report = loadgen(&args);
        assert_correct(&report);
    }
}

#[test]
fn a_server_not_signed_by_the_given_ca_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    make_certificates(dir.path());
    let other = tempfile::tempdir().expect("a temp dir");
    make_certificates(other.path());
    let server = Kubecache::start();
    let port = tls_terminator(dir.path(), server.address());
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubecache-loadgen"));
    command.args([
        "--server",
        &format!("https://127.0.0.1:{port}"),
        "--certificate-authority",
        other.path().join("ca.pem").to_str().expect("UTF-8 path"),
        "--timeout",
        "30",
        "writes",
        "--concurrency",
        "1",
        "--duration",
        "1",
    ]);
    let output = run_bounded(command, support::LOADGEN_TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stderr:\n{stderr}");
    assert!(stderr.contains("certificate"), "stderr:\n{stderr}");
}
