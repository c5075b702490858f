//! In-flight tracking for graceful shutdown (kube-apiserver's `WithWaitGroup` and watch
//! termination). Requests that are not long-running are counted so shutdown can wait for
//! them; long-running ones (watches) have their response body ended cleanly — the chunked
//! stream closes, the client sees the end of the watch — as soon as shutdown begins.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use tokio::sync::{Notify, watch};

use super::Chain;
use super::info::context_of;

/// Shutdown state shared by the chain and the listeners.
#[derive(Debug)]
pub struct Drain {
    /// Flips to true once, when shutdown begins; listeners stop accepting and watches end.
    draining: watch::Sender<bool>,
    /// Requests being served that shutdown waits for.
    in_flight: AtomicUsize,
    /// Signalled when `in_flight` drops to zero.
    idle: Notify,
}

impl Drain {
    pub fn new() -> Arc<Drain> {
        Arc::new(Drain {
            draining: watch::Sender::new(false),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        })
    }

    /// Starts shutting down.
    pub fn begin(&self) {
        self.draining.send_replace(true);
    }

    /// Resolves when shutdown begins.
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.draining.subscribe();
        async move {
            let _ = receiver.wait_for(|draining| *draining).await;
        }
    }

    /// Requests (not long-running) being served now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Resolves when no counted request is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }
}

/// One counted request; uncounted on drop (also when the request is cancelled).
struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

pub async fn layer(State(chain): State<Arc<Chain>>, request: Request, next: Next) -> Response {
    if context_of(request.extensions()).info.is_long_running() {
        let response = next.run(request).await;
        let (parts, body) = response.into_parts();
        let stream = body
            .into_data_stream()
            .take_until(Box::pin(chain.drain.draining()));
        return Response::from_parts(parts, Body::from_stream(stream));
    }
    let _counted = chain.drain.enter();
    next.run(request).await
}
