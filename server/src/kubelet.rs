//! Reaching a node's kubelet, as kube-apiserver's `NodeConnectionInfoGetter` and kubelet
//! client do (`pkg/kubelet/client`): the address is the first of the Node's
//! `status.addresses` by `--kubelet-preferred-address-types`, the port its
//! `status.daemonEndpoints.kubeletEndpoint.Port` (10250 when unset), always HTTPS, with
//! `--kubelet-client-certificate`/`--kubelet-client-key` as the client certificate and the
//! kubelet's serving certificate verified against `--kubelet-certificate-authority` (not
//! verified without it, as kube-apiserver).
//!
//! Also where a proxy may go (kube's `IsProxyableIP`/`IsProxyableHostname`): a pod's or a
//! node's proxy refuses loopback and link-local targets ("address not allowed") unless
//! `--allow-loopback-proxy-targets` says otherwise (development and tests, where every
//! kubelet is on loopback).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kubecache_core::status::ApiError;
use rustls::RootCertStore;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::Value;

use crate::tls::{provider, read_certs};

/// kube-apiserver's default `--kubelet-preferred-address-types`.
pub const DEFAULT_ADDRESS_TYPES: &str = "Hostname,InternalDNS,InternalIP,ExternalDNS,ExternalIP";

/// The kubelet port when a Node does not report one (kube's `--kubelet-port` default).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// The kubelet flags of `kubecache serve`.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// `--kubelet-preferred-address-types`, in order.
    pub preferred_address_types: Vec<String>,
    /// `--kubelet-client-certificate` and `--kubelet-client-key`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `--kubelet-certificate-authority`.
    pub certificate_authority: Option<PathBuf>,
    /// `--allow-loopback-proxy-targets`.
    pub allow_loopback_proxy_targets: bool,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        KubeletOptions {
            preferred_address_types: DEFAULT_ADDRESS_TYPES
                .split(',')
                .map(str::to_string)
                .collect(),
            client_cert: None,
            certificate_authority: None,
            allow_loopback_proxy_targets: false,
        }
    }
}

/// How kubecache connects to kubelets and which proxy targets it accepts.
pub struct Kubelets {
    preferred_address_types: Vec<String>,
    /// The TLS client configuration of every kubelet connection (ALPN http/1.1: upgrades).
    pub tls: Arc<rustls::ClientConfig>,
    /// TLS that verifies nothing and presents no certificate: `https` pods and node ports
    /// (kube's proxy transport), and `insecureSkipTLSVerifyBackend` logs.
    pub insecure_tls: Arc<rustls::ClientConfig>,
    pub allow_loopback_proxy_targets: bool,
}

/// Where a node's kubelet listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletAddress {
    pub host: String,
    pub port: u16,
}

impl KubeletAddress {
    /// `host:port`, with an IPv6 host in brackets.
    pub fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }
}

/// `host:port`, with an IPv6 host in brackets (Go's `net.JoinHostPort`).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Kubelets {
    pub fn new(options: &KubeletOptions) -> Result<Kubelets, String> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("kubelet TLS setup: {e}"))?;
        let builder = match &options.certificate_authority {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path)? {
                    roots.add(cert).map_err(|e| {
                        format!("--kubelet-certificate-authority {}: {e}", path.display())
                    })?;
                }
                builder.with_root_certificates(roots)
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider()))),
        };
        let mut config = match &options.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    format!("cannot read --kubelet-client-key {}: {e}", key.display())
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("--kubelet-client-certificate: {e}"))?
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut insecure = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("proxy TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth();
        insecure.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Kubelets {
            preferred_address_types: options.preferred_address_types.clone(),
            tls: Arc::new(config),
            insecure_tls: Arc::new(insecure),
            allow_loopback_proxy_targets: options.allow_loopback_proxy_targets,
        })
    }

    /// The kubelet of `node` (a v1 Node), as kube's `GetConnectionInfo`: no address of a
    /// preferred type is kube's `NoMatchError`, an internal error.
    pub fn address(&self, node: &Value) -> Result<KubeletAddress, ApiError> {
        let addresses = node
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let of_type = |wanted: &str| {
            addresses.iter().find_map(|a| {
                let address = a.get("address").and_then(Value::as_str)?;
                (a.get("type").and_then(Value::as_str) == Some(wanted) && !address.is_empty())
                    .then(|| address.to_string())
            })
        };
        let host = self
            .preferred_address_types
            .iter()
            .find_map(|wanted| of_type(wanted))
            .ok_or_else(|| {
                let known: Vec<String> = addresses
                    .iter()
                    .map(|a| {
                        format!(
                            "{{{} {}}}",
                            a.get("type").and_then(Value::as_str).unwrap_or(""),
                            a.get("address").and_then(Value::as_str).unwrap_or("")
                        )
                    })
                    .collect();
                ApiError::internal(format!(
                    "no preferred addresses found; known addresses: [{}]",
                    known.join(" ")
                ))
            })?;
        let port = node
            .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_KUBELET_PORT);
        Ok(KubeletAddress { host, port })
    }

    /// Refuses a proxy target that is a loopback or link-local address (or a name that
    /// resolves to one), unless `--allow-loopback-proxy-targets`; kube's 400
    /// "address not allowed".
    pub async fn check_proxy_target(&self, host: &str) -> Result<(), ApiError> {
        if self.allow_loopback_proxy_targets {
            return Ok(());
        }
        let not_allowed = || ApiError::bad_request("address not allowed");
        let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| ApiError::bad_request(e.to_string()))?
                .map(|a| a.ip())
                .collect(),
        };
        if ips.is_empty() || ips.iter().any(|ip| !is_proxyable(*ip)) {
            return Err(not_allowed());
        }
        Ok(())
    }
}

/// kube's `IsProxyableIP`: not loopback, not link-local unicast or multicast, not
/// interface-local multicast.
pub fn is_proxyable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()),
        IpAddr::V6(v6) => {
            let segment = v6.segments()[0];
            let link_local_unicast = segment & 0xffc0 == 0xfe80;
            let multicast_scope = (segment & 0xff00 == 0xff00).then_some(segment & 0x000f);
            !(v6.is_loopback()
                || v6.is_unspecified()
                || link_local_unicast
                || matches!(multicast_scope, Some(1 | 2)))
                && v6
                    .to_ipv4_mapped()
                    .is_none_or(|v4| is_proxyable(IpAddr::V4(v4)))
        }
    }
}

/// Without `--kubelet-certificate-authority`, kube-apiserver does not verify the kubelet's
/// serving certificate (the kubelet's default certificate is self-signed); the handshake's
/// signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kubelets() -> Kubelets {
        Kubelets::new(&KubeletOptions::default()).unwrap()
    }

    #[test]
    fn the_first_preferred_address_type_wins_and_the_port_defaults() {
        let node = json!({"status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.7"},
            {"type": "Hostname", "address": "node-a"},
        ]}});
        let address = kubelets().address(&node).unwrap();
        assert_eq!(address.host, "node-a");
        assert_eq!(address.port, DEFAULT_KUBELET_PORT);
        let node = json!({"status": {
            "addresses": [{"type": "ExternalIP", "address": "fd00::1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10255}},
        }});
        assert_eq!(
            kubelets().address(&node).unwrap().authority(),
            "[fd00::1]:10255"
        );
    }

    #[test]
    fn a_node_without_a_preferred_address_is_an_internal_error() {
        let node = json!({"status": {"addresses": [{"type": "Other", "address": "x"}]}});
        let err = kubelets().address(&node).unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "Internal error occurred: no preferred addresses found; known addresses: [{Other x}]"
        );
    }

    #[test]
    fn loopback_and_link_local_are_not_proxyable() {
        for ip in [
            "127.0.0.1",
            "169.254.1.1",
            "::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_proxyable(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.1.2.3", "8.8.8.8", "fd00::1", "2001:db8::1"] {
            assert!(is_proxyable(ip.parse().unwrap()), "{ip}");
        }
    }
}
