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
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::authn::Connection;
use crate::filters::drain::Drain;

/// A client that opens a connection must finish the TLS handshake within this (so idle
/// half-open connections do not pile up).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Accepts connections until shutdown, then waits for its connections to close.
async fn accept_loop(listener: Listener, app: Router, drain: Arc<Drain>) {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
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
        let app = app.clone();
        // The router as a hyper service, with the connection's details on every request.
        let service = move |connection: Connection| {
            TowerToHyperService::new(tower::service_fn(
                move |request: http::Request<Incoming>| {
                    let mut request = request.map(Body::new);
                    request.extensions_mut().insert(connection.clone());
                    app.clone().oneshot(request)
                },
            ))
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let connection = Connection {
                        remote,
                        secure: false,
                        client_certs: None,
                    };
                    let service = service(connection);
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
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
                    let client_certs = tls.get_ref().1.peer_certificates().map(|certs| {
                        Arc::new(certs.iter().map(|c| c.clone().into_owned()).collect())
                    });
                    let connection = Connection {
                        remote,
                        secure: true,
                        client_certs,
                    };
                    let service = service(connection);
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener.tcp);
    graceful.shutdown().await;
}
