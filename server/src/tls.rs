//! TLS for the secure port: the serving certificate (from `--tls-cert-file` and
//! `--tls-private-key-file`, or generated and self-signed like kube-apiserver does when they
//! are missing), ALPN `h2` and `http/1.1`, and client certificates checked against
//! `--client-ca-file` when one is given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// File names of a generated serving certificate, in the directory chosen for it.
pub const GENERATED_CERT: &str = "apiserver.crt";
pub const GENERATED_KEY: &str = "apiserver.key";
/// The CA that signed the generated certificate: what clients should trust.
pub const GENERATED_CA: &str = "ca.crt";

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum ServingCert {
    /// `--tls-cert-file` (the chain, leaf first) and `--tls-private-key-file`.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated once into this directory (and reused from it afterwards).
    Generated { dir: PathBuf },
}

/// The rustls configuration of the secure port, and what was generated, to print.
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    /// The CA certificate file clients should trust, when the certificate was generated.
    pub generated_ca: Option<PathBuf>,
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the TLS configuration for the secure port.
pub fn server_config(serving: &ServingCert, client_ca_file: Option<&Path>) -> Result<Tls, String> {
    let (cert_path, key_path, generated_ca) = match serving {
        ServingCert::Files { cert, key } => (cert.clone(), key.clone(), None),
        ServingCert::Generated { dir } => {
            ensure_generated(dir)?;
            (
                dir.join(GENERATED_CERT),
                dir.join(GENERATED_KEY),
                Some(dir.join(GENERATED_CA)),
            )
        }
    };
    let chain = read_certs(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("cannot read the private key {}: {e}", key_path.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("--client-ca-file {}: {e}", path.display()))?;
            }
            // Ask for a certificate but serve clients without one (they may use a token):
            // kube-apiserver's `RequestClientCert` with verification by the authenticator.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("--client-ca-file {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("the serving certificate {}: {e}", cert_path.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        generated_ca,
    })
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// Generates a CA and a serving certificate signed by it into `dir`, unless they are
/// already there (so clients that trust the CA keep working across restarts).
fn ensure_generated(dir: &Path) -> Result<(), String> {
    if dir.join(GENERATED_CERT).exists() && dir.join(GENERATED_KEY).exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let generated =
        generate_serving_cert().map_err(|e| format!("cannot generate a certificate: {e}"))?;
    let write = |name: &str, contents: &str| {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(GENERATED_CA, &generated.ca_pem)?;
    write(GENERATED_KEY, &generated.key_pem)?;
    restrict_permissions(&dir.join(GENERATED_KEY));
    // The certificate file holds the chain, leaf first, like kube-apiserver's.
    write(
        GENERATED_CERT,
        &format!("{}{}", generated.cert_pem, generated.ca_pem),
    )?;
    Ok(())
}

fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

struct Generated {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// A CA named after the host and a serving certificate for localhost, 127.0.0.1, ::1 and
/// the host name (rcgen's default validity, which does not expire in practice: a
/// development convenience; production sets `--tls-cert-file`).
fn generate_serving_cert() -> Result<Generated, rcgen::Error> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let host_or_localhost = if host.is_empty() {
        "localhost"
    } else {
        host.as_str()
    };
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{host_or_localhost}-ca@{now}"),
    );
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;

    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !host.is_empty() && host != "localhost" {
        names.push(host.clone());
    }
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{host_or_localhost}@{now}"),
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    Ok(Generated {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
