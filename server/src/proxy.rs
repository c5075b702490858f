//! Passing a request on to an upstream — a kubelet, a pod, a node — as kube's
//! `UpgradeAwareHandler` (`k8s.io/apimachinery/pkg/util/proxy`) does, for the connect
//! subresources (`handlers/connect.rs`).
//!
//! - Bodies stream both ways, without a size cap: the client's request body is the upstream
//!   request's body as it arrives, the upstream response body the client's. hyper moves one
//!   frame at a time, so a slow reader slows the upstream (its TCP window closes) and memory
//!   stays bounded; a client that goes away drops the response body, which drops the
//!   upstream connection at once.
//! - An upgrade (`Connection: Upgrade`: SPDY/3.1 for exec, attach and port-forward,
//!   WebSocket) is sent on with its `Connection`/`Upgrade` headers; a `101 Switching
//!   Protocols` from the upstream is passed back and then bytes are copied both ways
//!   until either side closes. Any other answer to an upgrade is passed back as it is (a
//!   client such as kubectl ≥ 1.30 then falls back from WebSocket to SPDY).
//! - Hop-by-hop headers (RFC 9110 §7.6.1, and those named by `Connection`) are dropped both
//!   ways; the client's credentials (`Authorization`, `Impersonate-*`) never reach the
//!   upstream; `X-Forwarded-For`, `-Host` and `-Proto` say whom the request came from.
//!
//! One connection per request: kubelets and pods are reached rarely compared with the API
//! itself, and an upgraded connection cannot be shared anyway.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use kubecache_core::status::ApiError;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::authn::Connection;

/// How long connecting (TCP and TLS) to an upstream may take (kube's dialer: 30 s).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a request goes.
pub struct Upstream {
    /// `host:port` (what is dialed, and the `Host` header).
    pub authority: String,
    /// The host alone, for TLS's server name.
    pub host: String,
    /// TLS with this configuration (`https`), or plain HTTP (`None`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The request target: path and query.
    pub path_and_query: String,
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a request asks to upgrade its connection (`Connection: Upgrade` and an
/// `Upgrade` header, as Go's `httpstream.IsUpgradeRequest`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Drops the hop-by-hop headers of `headers` (the fixed list and those `Connection`
/// names); with `keep_upgrade`, `Connection: Upgrade` and `Upgrade` stay.
fn drop_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    let upgrade = headers.get(header::UPGRADE).cloned();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if let (true, Some(upgrade)) = (keep_upgrade, upgrade) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// The client's headers as the upstream gets them.
pub(crate) fn upstream_headers(parts: &Parts, upstream: &Upstream, upgrade: bool) -> HeaderMap {
    let mut headers = parts.headers.clone();
    drop_hop_by_hop(&mut headers, upgrade);
    // The API server's credentials are its own business, not the upstream's.
    headers.remove(header::AUTHORIZATION);
    let impersonation: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for name in impersonation {
        headers.remove(name);
    }
    let client = parts
        .extensions
        .get::<Connection>()
        .map(|c: &Connection| c.remote);
    append_forwarded(&mut headers, client, parts);
    if let Ok(host) = HeaderValue::from_str(&upstream.authority) {
        headers.insert(header::HOST, host);
    }
    headers
}

/// `X-Forwarded-For` (the client's address appended to any the client sent), and
/// `X-Forwarded-Host`/`-Proto` unless already set (kube's proxy keeps a client's).
fn append_forwarded(headers: &mut HeaderMap, client: Option<SocketAddr>, parts: &Parts) {
    if let Some(client) = client {
        let previous = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let value = match previous {
            Some(previous) => format!("{previous}, {}", client.ip()),
            None => client.ip().to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert("x-forwarded-for", value);
        }
    }
    if let (false, Some(host)) = (
        headers.contains_key("x-forwarded-host"),
        parts.headers.get(header::HOST).cloned(),
    ) {
        headers.insert("x-forwarded-host", host);
    }
    if !headers.contains_key("x-forwarded-proto") {
        let secure = parts
            .extensions
            .get::<Connection>()
            .is_some_and(|c| c.secure);
        let proto = if secure { "https" } else { "http" };
        headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    }
}

/// A connection to the upstream, TLS or not.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Dials the upstream: kube's "error dialing backend" on failure (500).
async fn dial(upstream: &Upstream) -> Result<Box<dyn Io>, ApiError> {
    let failed = |e: &dyn std::fmt::Display| {
        ApiError::internal(format!(
            "error dialing backend: dial tcp {}: {e}",
            upstream.authority
        ))
    };
    let connect = async {
        let tcp = TcpStream::connect(&upstream.authority)
            .await
            .map_err(|e| failed(&e))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &upstream.tls else {
            return Ok(Box::new(tcp) as Box<dyn Io>);
        };
        let name = ServerName::try_from(upstream.host.clone())
            .map_err(|e| failed(&format!("invalid server name: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| ApiError::internal(format!("error dialing backend: {e}")))?;
        Ok(Box::new(stream) as Box<dyn Io>)
    };
    tokio::time::timeout(DIAL_TIMEOUT, connect)
        .await
        .map_err(|_| failed(&"i/o timeout"))?
}

/// Sends `request` (origin-form target) to `upstream` on a connection of its own, kept
/// open for an upgrade; the answer's body streams from that connection.
pub async fn send(
    upstream: &Upstream,
    request: Request<Body>,
) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
    let io = dial(upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ApiError::internal(format!("error dialing backend: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!("upstream connection: {e}");
        }
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| ApiError::internal(format!("error trying to reach backend: {e}")))
}

/// The client's side of an upgrade it asked for (`Connection: Upgrade`), taken from the
/// request; `None` for a request that asks for none. HTTP/2 has no upgrades: 400.
pub fn client_upgrade(parts: &mut Parts) -> Result<Option<hyper::upgrade::OnUpgrade>, ApiError> {
    if !is_upgrade(&parts.headers) {
        return Ok(None);
    }
    match parts.extensions.remove::<hyper::upgrade::OnUpgrade>() {
        Some(on_upgrade) => Ok(Some(on_upgrade)),
        None => Err(ApiError::bad_request("Upgrade request required")),
    }
}

/// Sends the request to `upstream` and answers with what it answered, streaming.
pub async fn forward(
    upstream: Upstream,
    mut parts: Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let client_upgrade = client_upgrade(&mut parts)?;
    let upgrade = client_upgrade.is_some();
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(&upstream.path_and_query)
        .body(if upgrade { Body::empty() } else { body })
        .map_err(|e| ApiError::bad_request(format!("invalid proxy request: {e}")))?;
    *request.headers_mut() = upstream_headers(&parts, &upstream, upgrade);
    let mut response = send(&upstream, request).await?;
    if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, response.status()) {
        let backend = hyper::upgrade::on(&mut response);
        tokio::spawn(splice(client, backend));
        let (head, _) = response.into_parts();
        return Ok(Response::from_parts(head, Body::empty()));
    }
    let (mut head, incoming) = response.into_parts();
    drop_hop_by_hop(&mut head.headers, false);
    Ok(Response::from_parts(head, Body::new(incoming)))
}

/// Copies bytes both ways between the client's and the upstream's upgraded connections
/// until one side closes (then the other is shut down).
async fn splice(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!("upgrade failed: {e}");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!("upgraded stream ended: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        drop_hop_by_hop(&mut headers, false);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept"]);
    }

    #[test]
    fn an_upgrade_keeps_its_connection_and_upgrade_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(is_upgrade(&headers));
        drop_hop_by_hop(&mut headers, true);
        assert_eq!(headers[header::CONNECTION], "Upgrade");
        assert_eq!(headers[header::UPGRADE], "SPDY/3.1");
        headers.remove(header::CONNECTION);
        assert!(!is_upgrade(&headers));
    }
}
