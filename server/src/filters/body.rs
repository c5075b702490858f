//! Request bodies that are answered before they are read to the end (kube-apiserver gets this
//! from Go's net/http server).
//!
//! A handler may answer without reading the whole body: a 413 for a body over the limit (by
//! its Content-Length, or once the limit is passed), any error found before the body is read.
//! Over HTTP/1.1 the client may still be sending it: a client such as Python's `http.client`
//! writes the whole body before it reads anything. Left alone, hyper closes the connection
//! with the body's rest unread, the client's writes fail (broken pipe, connection reset) and
//! it never sees the answer. So the rest of such a body is read and thrown away after the
//! response, up to [`DRAIN_LIMIT_BYTES`] and [`DRAIN_TIMEOUT`], and the response says
//! `Connection: close` (as Go's server does when the handler left a body unread): the client
//! sends its body, reads the answer, and the connection closes once the body is in. A body
//! beyond the bound is cut off (the connection closes) — a bound on what a client can make
//! the server read for nothing.
//!
//! A request that sent `Expect: 100-continue` and was answered before its body was asked
//! for never got its `100 Continue`: it sends no body, and there is nothing to drain.
//!
//! Over HTTP/2 the stream's rest is drained the same way (no `Connection` header there): a
//! stream answered early would otherwise be reset (RST_STREAM) while the client is still
//! sending, which the protocol allows but which some clients (curl 7.88) report as a failed
//! transfer, without the response. Past the bound the stream is reset; the connection and
//! its other streams go on.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderValue, Version, header};
use http_body::{Frame, SizeHint};

use kubecache_core::status::MAX_REQUEST_BODY_BYTES;

/// How much of an unread body is read and discarded after the response: a few times the
/// largest body the server accepts.
pub const DRAIN_LIMIT_BYTES: usize = 4 * MAX_REQUEST_BODY_BYTES;

/// How long the rest of an unread body may take to arrive.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn layer(request: Request, next: Next) -> Response {
    let http1 = request.version() < Version::HTTP_2;
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let finished = Arc::new(AtomicBool::new(false));
    let request =
        request.map(|body| Body::new(DrainOnDrop::new(body, expects_continue, finished.clone())));
    let mut response = next.run(request).await;
    if http1 && !finished.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that, dropped before its end, goes on being read in the background.
struct DrainOnDrop {
    inner: Option<Body>,
    /// Whether anyone asked for the body (which is when hyper sends `100 Continue`).
    polled: bool,
    expects_continue: bool,
    /// Set once the body has been read to its end.
    finished: Arc<AtomicBool>,
}

impl DrainOnDrop {
    fn new(body: Body, expects_continue: bool, finished: Arc<AtomicBool>) -> DrainOnDrop {
        if body.is_end_stream() {
            finished.store(true, Ordering::Release);
        }
        DrainOnDrop {
            inner: Some(body),
            polled: false,
            expects_continue,
            finished,
        }
    }
}

impl HttpBody for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.polled = true;
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.as_ref().is_some_and(Body::is_end_stream),
            _ => false,
        };
        if ended {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(Body::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.finished.load(Ordering::Acquire) || body.is_end_stream() {
            return;
        }
        if self.expects_continue && !self.polled {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body));
        }
    }
}

/// Reads and discards what is left of `body`, within the bounds; dropping it then lets hyper
/// finish (or close) the connection.
async fn drain(body: Body) {
    let mut data = body.into_data_stream();
    let mut discarded = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(Ok(chunk)) = data.next().await {
            discarded += chunk.len();
            if discarded > DRAIN_LIMIT_BYTES {
                tracing::debug!(
                    "an unread request body goes past {DRAIN_LIMIT_BYTES} bytes: closing"
                );
                break;
            }
        }
    })
    .await;
}
