//! The HTTP client: hyper 1's low-level connection API over TCP or rustls, in one of two
//! shapes.
//!
//! - `--http1`: every watch owns one connection (what a fleet of kubelets looks like to the
//!   server); other requests check a keep-alive connection out of a pool and put it back.
//! - `--http2`: a few connections shared by everything, each request a stream (what one
//!   client-go process with many informers looks like). Watches are spread round-robin over
//!   the connections, at most [`STREAMS_PER_CONNECTION`] per connection, because servers cap
//!   concurrent streams (hyper 200, kube-apiserver 250–1000) and a stream over the cap waits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Watches per shared HTTP/2 connection when the pool size is automatic.
pub const STREAMS_PER_CONNECTION: usize = 100;

/// A client-side failure, with enough context to print.
#[derive(Debug)]
pub enum Error {
    /// Connecting, TLS or the HTTP exchange failed.
    Transport(String),
    /// The server answered with a non-success status.
    Status(StatusCode, Option<Duration>, String),
    /// The request did not finish in time.
    Timeout,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "transport: {e}"),
            Error::Status(code, _, body) => {
                let body: String = body.chars().take(300).collect();
                write!(f, "HTTP {code}: {body}")
            }
            Error::Timeout => write!(f, "timed out"),
        }
    }
}

impl Error {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status(code, _, _) => Some(*code),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn transport(e: impl std::fmt::Display) -> Error {
    Error::Transport(e.to_string())
}

/// Where the server is and how to talk to it.
#[derive(Clone)]
pub struct Target {
    pub scheme_https: bool,
    pub host: String,
    pub port: u16,
    pub address: SocketAddr,
    pub token: Option<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub http2: bool,
    pub request_timeout: Duration,
}

/// TLS options from the command line.
pub struct TlsOptions<'a> {
    pub ca_file: Option<&'a std::path::Path>,
    pub insecure: bool,
}

impl Target {
    /// Parses `http://host:port` or `https://host:port` (a path is ignored) and resolves it.
    pub fn parse(
        url: &str,
        token: Option<String>,
        tls: TlsOptions<'_>,
        http2: bool,
        request_timeout: Duration,
    ) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|e| format!("--server {url}: {e}"))?;
        let scheme_https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("--server {url}: the scheme must be http or https")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("--server {url}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme_https { 443 } else { 80 });
        let address = resolve(&host, port)?;
        let tls = if scheme_https {
            Some(Arc::new(tls_config(&tls, http2)?))
        } else {
            None
        };
        Ok(Target {
            scheme_https,
            host,
            port,
            address,
            token,
            tls,
            http2,
            request_timeout,
        })
    }

    fn authority(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {host}: no address"))
}

/// A rustls client config: the CA bundle's roots, or no verification at all.
pub fn tls_config(options: &TlsOptions<'_>, http2: bool) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let path = options.ca_file.ok_or(
            "an https server needs --certificate-authority FILE or --insecure-skip-tls-verify",
        )?;
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("read {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("parse {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("CA in {}: {e}", path.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("no certificate in {}", path.display()));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// `--insecure-skip-tls-verify`: accept any certificate, still check handshake signatures.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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

/// One connection's request half.
enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

async fn connect(target: &Target) -> Result<Sender> {
    let tcp = TcpStream::connect(target.address)
        .await
        .map_err(transport)?;
    let _ = tcp.set_nodelay(true);
    match &target.tls {
        None => handshake(target, tcp).await,
        Some(config) => {
            let name = ServerName::try_from(target.host.clone()).map_err(transport)?;
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(transport)?;
            handshake(target, stream).await
        }
    }
}

async fn handshake<S>(target: &Target, stream: S) -> Result<Sender>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    if target.http2 {
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(32 << 20)
            .max_frame_size(1 << 20)
            .handshake(io)
            .await
            .map_err(transport)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Sender::H2(sender))
    } else {
        let (sender, connection) = http1::handshake(io).await.map_err(transport)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Sender::H1(sender))
    }
}

/// A full, successful response's body.
pub struct Reply {
    /// Empty from [`Client::call_discarding`].
    pub body: Bytes,
    /// Bytes the body had, kept or not.
    pub len: u64,
}

/// A client's own HTTP/1.1 connection (a kubelet LISTs and then WATCHes on one connection).
/// With HTTP/2 it is unused: every request is a stream on a shared connection.
#[derive(Default)]
pub struct Conn {
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

/// Most idle HTTP/1.1 connections kept for reuse; more are closed.
const MAX_IDLE: usize = 256;

/// Connections to one server, shaped by `--http1`/`--http2`.
pub struct Client {
    target: Target,
    /// HTTP/1.1 keep-alive connections not in use (requests without a [`Conn`]).
    idle: std::sync::Mutex<Vec<http1::SendRequest<Full<Bytes>>>>,
    /// HTTP/2: the shared connections (made on first use, remade when closed).
    shared: Vec<tokio::sync::Mutex<Option<http2::SendRequest<Full<Bytes>>>>>,
    next: AtomicUsize,
}

impl Client {
    /// `h2_connections` is only used with HTTP/2.
    pub fn new(target: Target, h2_connections: usize) -> Client {
        let shared = if target.http2 {
            (0..h2_connections.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect()
        } else {
            Vec::new()
        };
        Client {
            target,
            idle: std::sync::Mutex::new(Vec::new()),
            shared,
            next: AtomicUsize::new(0),
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
        accept: Option<&str>,
    ) -> Request<Full<Bytes>> {
        let uri = if self.target.http2 {
            let scheme = if self.target.scheme_https {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}{path}", self.target.authority())
        } else {
            path.to_string()
        };
        let mut builder = Request::builder().method(method).uri(uri);
        let headers = builder.headers_mut().expect("a fresh builder");
        fill_headers(headers, &self.target);
        if let Some(accept) = accept {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_str(accept).expect("a valid Accept header"),
            );
        }
        let body = match body {
            Some((content_type, bytes)) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_str(content_type).expect("a valid content type"),
                );
                bytes
            }
            None => Bytes::new(),
        };
        builder.body(Full::new(body)).expect("a valid request")
    }

    async fn shared_sender(&self) -> Result<http2::SendRequest<Full<Bytes>>> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.shared.len();
        let mut slot = self.shared[index].lock().await;
        if let Some(sender) = slot.as_ref()
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        let Sender::H2(sender) = connect(&self.target).await? else {
            unreachable!("an HTTP/2 target makes HTTP/2 connections")
        };
        *slot = Some(sender.clone());
        Ok(sender)
    }

    /// An HTTP/1.1 connection ready for a request: `cached` if it still is (a connection
    /// whose last response was abandoned mid-body is closed by hyper), else a new one.
    async fn h1_sender(
        &self,
        cached: Option<http1::SendRequest<Full<Bytes>>>,
    ) -> Result<http1::SendRequest<Full<Bytes>>> {
        if let Some(mut sender) = cached
            && let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(2), sender.ready()).await
        {
            return Ok(sender);
        }
        match connect(&self.target).await? {
            Sender::H1(sender) => Ok(sender),
            Sender::H2(_) => unreachable!("an HTTP/1.1 target makes HTTP/1.1 connections"),
        }
    }

    /// Sends `request`; an HTTP/1.1 connection used goes back to `conn` (or the pool).
    async fn send(
        &self,
        conn: Option<&mut Conn>,
        request: Request<Full<Bytes>>,
    ) -> Result<(
        hyper::Response<Incoming>,
        Option<http1::SendRequest<Full<Bytes>>>,
    )> {
        if self.target.http2 {
            let mut sender = self.shared_sender().await?;
            sender.ready().await.map_err(transport)?;
            let response = sender.send_request(request).await.map_err(transport)?;
            return Ok((response, None));
        }
        let cached = match conn {
            Some(conn) => conn.sender.take(),
            None => self.idle.lock().expect("pool lock").pop(),
        };
        let mut sender = self.h1_sender(cached).await?;
        let response = sender.send_request(request).await.map_err(transport)?;
        Ok((response, Some(sender)))
    }

    /// A request whose whole response is read, bounded by the request timeout. Non-2xx
    /// statuses are errors (with `Retry-After` for 429). With `conn`, HTTP/1.1 requests go
    /// over that connection; without, over a pooled one.
    pub async fn call(
        &self,
        conn: Option<&mut Conn>,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<Reply> {
        self.call_keeping(conn, method, path, body, true, None)
            .await
    }

    /// [`Client::call`] with its own `Accept` header (e.g. aggregated discovery's).
    pub async fn call_accepting(&self, method: Method, path: &str, accept: &str) -> Result<Reply> {
        self.call_keeping(None, method, path, None, true, Some(accept))
            .await
    }

    /// [`Client::call`] for a reply only counted (a LIST's throughput): its body is read
    /// and dropped frame by frame, as a client decoding it as it arrives would, rather than
    /// gathered and copied into one buffer (~135 MB for 50,000 pods) that nobody reads.
    /// Error bodies are kept.
    pub async fn call_discarding(
        &self,
        conn: Option<&mut Conn>,
        method: Method,
        path: &str,
    ) -> Result<Reply> {
        self.call_keeping(conn, method, path, None, false, None)
            .await
    }

    async fn call_keeping(
        &self,
        conn: Option<&mut Conn>,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
        keep: bool,
        accept: Option<&str>,
    ) -> Result<Reply> {
        let request = self.request(method, path, body, accept);
        let call = self.call_inner(conn, request, keep);
        match tokio::time::timeout(self.target.request_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout),
        }
    }

    async fn call_inner(
        &self,
        conn: Option<&mut Conn>,
        request: Request<Full<Bytes>>,
        keep: bool,
    ) -> Result<Reply> {
        let own = conn.is_some();
        let mut conn = conn;
        let (response, sender) = self.send(conn.as_deref_mut(), request).await?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let (body, len) = if keep || !status.is_success() {
            let body = (response.into_body().collect().await)
                .map_err(transport)?
                .to_bytes();
            let len = body.len() as u64;
            (body, len)
        } else {
            let mut incoming = response.into_body();
            let mut len = 0u64;
            while let Some(frame) = incoming.frame().await {
                if let Some(data) = frame.map_err(transport)?.data_ref() {
                    len += data.len() as u64;
                }
            }
            (Bytes::new(), len)
        };
        if let Some(sender) = sender {
            match conn {
                Some(conn) if own => conn.sender = Some(sender),
                _ => {
                    let mut idle = self.idle.lock().expect("pool lock");
                    if idle.len() < MAX_IDLE {
                        idle.push(sender);
                    }
                }
            }
        }
        if status.is_success() {
            Ok(Reply { body, len })
        } else {
            Err(Error::Status(
                status,
                retry_after,
                String::from_utf8_lossy(&body).into_owned(),
            ))
        }
    }

    /// Starts a streaming GET (a watch): with HTTP/1.1 on `conn` (a connection of the
    /// watcher's own), with HTTP/2 as a stream on a shared connection. Returns once the
    /// response head arrived.
    pub async fn stream(&self, conn: &mut Conn, path: &str) -> Result<Incoming> {
        let request = self.request(Method::GET, path, None, None);
        let response =
            match tokio::time::timeout(self.target.request_timeout, self.send(Some(conn), request))
                .await
            {
                Ok(response) => response?,
                Err(_) => return Err(Error::Timeout),
            };
        let (response, sender) = response;
        // The connection is busy until the watch ends; then it can carry the next LIST.
        conn.sender = sender;
        let status = response.status();
        if status.is_success() {
            return Ok(response.into_body());
        }
        let retry_after = retry_after(response.headers());
        let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
            .await
            .ok()
            .and_then(|b| b.ok())
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(Error::Status(
            status,
            retry_after,
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }
}

fn fill_headers(headers: &mut HeaderMap, target: &Target) {
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static("kubecache-loadgen"),
    );
    if !target.http2 {
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&target.authority()).expect("a valid authority"),
        );
    }
    if let Some(token) = &target.token
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        headers.insert(header::AUTHORIZATION, value);
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Percent-encodes a query parameter value (selectors contain `=` and `,`).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode_query("spec.nodeName=lg-node-1"),
            "spec.nodeName%3Dlg-node-1"
        );
        assert_eq!(encode_query("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn server_urls_parse_and_tls_needs_a_trust_decision() {
        let timeout = Duration::from_secs(1);
        let none = || TlsOptions {
            ca_file: None,
            insecure: false,
        };
        let target =
            Target::parse("http://127.0.0.1:8080", None, none(), false, timeout).expect("http URL");
        assert_eq!(target.port, 8080);
        assert!(!target.scheme_https);
        assert!(Target::parse("ftp://127.0.0.1", None, none(), false, timeout).is_err());
        let error = Target::parse("https://127.0.0.1:6443", None, none(), false, timeout)
            .err()
            .expect("https without a CA or --insecure-skip-tls-verify");
        assert!(error.contains("--certificate-authority"), "{error}");
        let insecure = TlsOptions {
            ca_file: None,
            insecure: true,
        };
        let target = Target::parse("https://127.0.0.1:6443", None, insecure, true, timeout)
            .expect("insecure https");
        assert_eq!(
            target.tls.expect("a TLS config").alpn_protocols,
            vec![b"h2".to_vec()]
        );
    }
}
