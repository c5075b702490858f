//! Calls the server makes to other servers (admission webhooks, a CRD's conversion webhook, and
//! later the aggregation proxy): HTTPS verified against a `caBundle` only, over connections
//! kept per destination and reused (HTTP/1.1 keep-alive, or one multiplexed HTTP/2 connection
//! when the server offers `h2` by ALPN).
//!
//! kubecache has no system roots for these calls: a destination without a `caBundle` trusts
//! no certificate, as kube-apiserver trusts only the bundle when one is given.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// `host:port`, with an IPv6 host in brackets.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `https://host[:port][/path]`: host (without brackets), port (443 by default) and path with
/// its query.
pub fn parse_https_url(url: &str) -> (String, u16, String) {
    let uri: http::Uri = url.parse().unwrap_or_default();
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    (host, uri.port_u16().unwrap_or(443), path)
}

/// A client configuration trusting the PEM certificates of `ca_bundle` (base64, as the API
/// objects carry it) and nothing else; offers HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_config(ca_bundle: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if let Some(bundle) = ca_bundle.filter(|b| !b.is_empty()) {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(bundle.trim())
            .map_err(|e| format!("caBundle: {e}"))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("caBundle: {e}"))?;
            roots.add(cert).map_err(|e| format!("caBundle: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Where one call goes: the address to dial, and the name the certificate must carry (also
/// the `Host` header).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub host: String,
    pub port: u16,
    pub server_name: String,
}

/// A POST's answer: status and body.
pub struct Answer {
    pub status: http::StatusCode,
    pub body: Bytes,
}

/// An open connection, ready for the next request.
enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    /// Shared by every concurrent call (HTTP/2 multiplexes).
    Http2(http2::SendRequest<Full<Bytes>>),
}

/// HTTPS calls under one TLS configuration (one webhook's `caBundle`), with connections kept
/// per destination.
pub struct Client {
    tls: Arc<rustls::ClientConfig>,
    idle: Mutex<HashMap<Destination, Vec<Sender>>>,
    /// Connections opened so far (for tests and metrics: reuse means this stays small).
    dialed: std::sync::atomic::AtomicU64,
}

impl Client {
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Client {
        Client {
            tls,
            idle: Mutex::default(),
            dialed: Default::default(),
        }
    }

    /// How many connections this client has opened.
    pub fn connections_opened(&self) -> u64 {
        self.dialed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// POSTs `body` (JSON) to `path` at `to`, all of it (connecting, sending, reading the
    /// answer) within `timeout`. Errors read as Go's HTTP client's (`dial tcp ...`, `context
    /// deadline exceeded`), without the method and URL, which the caller adds.
    pub async fn post_json(
        &self,
        to: &Destination,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, String> {
        match tokio::time::timeout(timeout, self.exchange(to, path, body)).await {
            Ok(answer) => answer,
            Err(_) => Err("context deadline exceeded".to_string()),
        }
    }

    async fn exchange(&self, to: &Destination, path: &str, body: Bytes) -> Result<Answer, String> {
        let request = || {
            http::Request::post(if path.is_empty() { "/" } else { path })
                .header(http::header::HOST, authority(&to.server_name, to.port))
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "application/json")
                .body(Full::new(body.clone()))
                .map_err(|e| e.to_string())
        };
        // A kept connection the server has closed meanwhile fails at once: then dial.
        if let Some(sender) = self.take_idle(to).await
            && let Ok(answer) = self.send(to, sender, request()?).await
        {
            return Ok(answer);
        }
        let sender = self.dial(to).await?;
        self.send(to, sender, request()?).await
    }

    /// An idle connection to `to` that is still open.
    async fn take_idle(&self, to: &Destination) -> Option<Sender> {
        loop {
            let sender = self.idle.lock().get_mut(to).and_then(Vec::pop)?;
            match sender {
                Sender::Http1(mut s) => {
                    if !s.is_closed() && s.ready().await.is_ok() {
                        return Some(Sender::Http1(s));
                    }
                }
                Sender::Http2(mut s) => {
                    if !s.is_closed() && s.ready().await.is_ok() {
                        // Others may use it meanwhile.
                        self.idle
                            .lock()
                            .entry(to.clone())
                            .or_default()
                            .push(Sender::Http2(s.clone()));
                        return Some(Sender::Http2(s));
                    }
                }
            }
        }
    }

    async fn dial(&self, to: &Destination) -> Result<Sender, String> {
        let stream = tokio::net::TcpStream::connect((to.host.as_str(), to.port))
            .await
            .map_err(|e| format!("dial tcp {}: {e}", authority(&to.host, to.port)))?;
        let _ = stream.set_nodelay(true);
        let name = ServerName::try_from(to.server_name.clone()).map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, stream)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        self.dialed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let sender = Sender::Http2(sender);
            return Ok(sender);
        }
        let (sender, connection) = http1::handshake(io).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Sender::Http1(sender))
    }

    /// Sends, reads the whole answer, and keeps the connection for the next call.
    async fn send(
        &self,
        to: &Destination,
        sender: Sender,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Answer, String> {
        let (response, sender) = match sender {
            Sender::Http1(mut s) => {
                let response = s.send_request(request).await;
                (response, Sender::Http1(s))
            }
            Sender::Http2(mut s) => {
                let response = s.send_request(request).await;
                (response, Sender::Http2(s))
            }
        };
        let response = response.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let mut idle = self.idle.lock();
        let kept = idle.entry(to.clone()).or_default();
        // One HTTP/2 connection per destination is enough; HTTP/1 keeps one per caller.
        if !(matches!(sender, Sender::Http2(_))
            && kept.iter().any(|s| matches!(s, Sender::Http2(_))))
        {
            kept.push(sender);
        }
        Ok(Answer { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_and_path() {
        assert_eq!(
            parse_https_url("https://127.0.0.1:8443/convert?x=1"),
            ("127.0.0.1".to_string(), 8443, "/convert?x=1".to_string())
        );
        assert_eq!(
            parse_https_url("https://[::1]/"),
            ("::1".to_string(), 443, "/".to_string())
        );
        assert_eq!(authority("::1", 443), "[::1]:443");
    }

    #[test]
    fn a_bad_ca_bundle_is_an_error() {
        assert!(tls_config(Some("not base64!")).is_err());
        let not_pem = base64::engine::general_purpose::STANDARD
            .encode("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(tls_config(Some(&not_pem)).is_err());
        assert!(tls_config(None).is_ok());
    }
}
