//! Listeners: the secure (TLS) port and the insecure (plain HTTP) port, both serving the
//! same filtered router over HTTP/1.1 and HTTP/2, and graceful shutdown.
//!
//! Shutdown (SIGTERM/SIGINT): the listeners stop accepting, watches end cleanly (the
//! drain layer closes their streams), requests in flight finish, connections close
//! (HTTP/2 GOAWAY, HTTP/1.1 after the current response), all within `timeout`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::authn::Connection;
use crate::filters::drain::Drain;

/// A client that opens a connection must finish the TLS handshake within this (so idle
/// half-open connections do not pile up).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A plain-port connection must send its first bytes within this (kube-apiserver's
/// `ReadHeaderTimeout`), or it is closed before an engine is chosen for it.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(32);

/// One port.
pub struct Listener {
    pub tcp: TcpListener,
    /// TLS for the secure port; `None` for the insecure port.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Serves `app` on every listener until `shutdown` resolves, then shuts down gracefully
/// within `timeout`.
pub async fn run(
    listeners: Vec<Listener>,
    app: Router,
    drain: Arc<Drain>,
    shutdown: impl Future<Output = ()>,
    timeout: Duration,
) {
    let mut servers = JoinSet::new();
    for listener in listeners {
        servers.spawn(accept_loop(listener, app.clone(), drain.clone()));
    }
    shutdown.await;
    tracing::info!("shutting down: no new connections; waiting for requests in flight");
    drain.begin();
    let finished = tokio::time::timeout(timeout, async {
        drain.idle().await;
        while servers.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            "requests still in flight after the shutdown timeout ({timeout:?}); exiting anyway"
        );
    }
}

/// The protocol engines, configured once per listener.
struct Engines {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    /// For a TLS connection that negotiated no protocol (ALPN): sniffs the HTTP/2 preface.
    auto: auto::Builder<TokioExecutor>,
}

/// The HTTP/2 connection preface (RFC 9113 §3.4): a plain-text connection that starts with it
/// speaks HTTP/2 with prior knowledge (h2c); any other, HTTP/1.1.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain-text connection opens with the HTTP/2 preface, found by peeking at the
/// socket so that nothing is consumed: hyper's HTTP/1.1 reader then starts from an empty
/// buffer. (hyper-util's auto-detection reads the first bytes and replays them through a
/// wrapper; the replayed prefix makes hyper grow its read buffer from 8 KiB to 16 KiB on every
/// connection, which for thousands of long-running watches is most of their memory.)
async fn opens_with_h2_preface(stream: &tokio::net::TcpStream) -> std::io::Result<bool> {
    let mut head = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut head).await?;
        if n == 0 || head[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // Part of the preface so far: peek again once more has arrived.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The router as a hyper service, with the connection's details on every request.
#[derive(Clone)]
struct App {
    router: Router,
    connection: Connection,
}

impl hyper::service::Service<http::Request<Incoming>> for App {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = tower::util::Oneshot<Router, http::Request<Body>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(self.connection.clone());
        self.router.clone().oneshot(request)
    }
}

/// Which engine serves a connection.
enum Protocol {
    Http1,
    Http2,
    Detect,
}

/// Spawns the task that serves one connection with one engine until it closes; shutdown
/// closes it gracefully. Each engine has a task function of its own, so that the task, which
/// for a watch lives up to an hour, holds only that engine's state.
fn spawn_serving<I>(
    engines: Arc<Engines>,
    io: I,
    app: App,
    protocol: Protocol,
    graceful: Watcher,
    drain: Arc<Drain>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    match protocol {
        Protocol::Http1 => {
            tokio::spawn(async move {
                // hyper-util has no graceful wrapper for an HTTP/1.1 connection with
                // upgrades: the watcher is held (shutdown waits for it to drop) and the drain
                // signal starts the graceful close.
                let conn = engines.http1.serve_connection(io, app).with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = drain.draining() => conn.as_mut().graceful_shutdown(),
                }
                let _ = conn.await;
                drop(graceful);
            });
        }
        Protocol::Http2 => {
            tokio::spawn(async move {
                let _ = graceful
                    .watch(engines.http2.serve_connection(io, app))
                    .await;
            });
        }
        Protocol::Detect => {
            tokio::spawn(async move {
                let _ = graceful
                    .watch(engines.auto.serve_connection_with_upgrades(io, app))
                    .await;
            });
        }
    }
}

/// Accepts connections until shutdown, then waits for its connections to close.
async fn accept_loop(listener: Listener, router: Router, drain: Arc<Drain>) {
    let graceful = GracefulShutdown::new();
    let engines = Arc::new(Engines {
        http1: hyper::server::conn::http1::Builder::new(),
        http2: hyper::server::conn::http2::Builder::new(TokioExecutor::new()),
        auto: auto::Builder::new(TokioExecutor::new()),
    });
    let acceptor = listener.tls.map(TlsAcceptor::from);
    let draining = drain.draining();
    tokio::pin!(draining);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut draining => break,
            accepted = listener.tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let engines = engines.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let drain = drain.clone();
        // The handshake (protocol sniffing or TLS) runs in a task of its own, which hands the
        // connection to a serving task sized for its protocol alone.
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let sniffed =
                        tokio::time::timeout(FIRST_BYTES_TIMEOUT, opens_with_h2_preface(&stream));
                    let protocol = match sniffed.await {
                        Ok(Ok(true)) => Protocol::Http2,
                        Ok(Ok(false)) => Protocol::Http1,
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, "reading the connection failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "no request within {FIRST_BYTES_TIMEOUT:?}");
                            return;
                        }
                    };
                    let app = App {
                        router,
                        connection: Connection {
                            remote,
                            secure: false,
                            client_certs: None,
                        },
                    };
                    let io = TokioIo::new(stream);
                    spawn_serving(engines, io, app, protocol, watcher, drain);
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let tls = match handshake.await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake timed out");
                            return;
                        }
                    };
                    let session = tls.get_ref().1;
                    let client_certs = session.peer_certificates().map(|certs| {
                        Arc::new(certs.iter().map(|c| c.clone().into_owned()).collect())
                    });
                    // ALPN decides, as in kube-apiserver (Go's net/http); without it, sniff.
                    let protocol = match session.alpn_protocol() {
                        Some(b"h2") => Protocol::Http2,
                        Some(_) => Protocol::Http1,
                        None => Protocol::Detect,
                    };
                    let app = App {
                        router,
                        connection: Connection {
                            remote,
                            secure: true,
                            client_certs,
                        },
                    };
                    let io = TokioIo::new(tls);
                    spawn_serving(engines, io, app, protocol, watcher, drain);
                }
            }
        });
    }
    drop(listener.tcp);
    graceful.shutdown().await;
}
