//! Max in-flight (kube-apiserver's `WithMaxInFlightLimit`): at most
//! `--max-requests-inflight` read-only and `--max-mutating-requests-inflight` mutating
//! requests at once; beyond that 429 with `Retry-After: 1`. Long-running requests are
//! not counted, and `system:masters` is never turned away.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kubecache_core::authz::GROUP_MASTERS;
use kubecache_core::status::{ApiError, Reason};
use tokio::sync::Semaphore;

use super::info::context_of;
use super::{Chain, user_of};
use crate::status_response;

/// A pool of `size` slots.
#[derive(Debug)]
struct Pool {
    slots: Arc<Semaphore>,
    size: usize,
}

impl Pool {
    fn new(size: usize) -> Option<Pool> {
        (size > 0).then(|| Pool {
            slots: Arc::new(Semaphore::new(size)),
            size,
        })
    }

    fn in_flight(&self) -> usize {
        self.size - self.slots.available_permits()
    }
}

/// The two pools; `None` is unlimited.
#[derive(Debug)]
pub struct Limits {
    read_only: Option<Pool>,
    mutating: Option<Pool>,
}

impl Limits {
    pub fn new(read_only: usize, mutating: usize) -> Limits {
        Limits {
            read_only: Pool::new(read_only),
            mutating: Pool::new(mutating),
        }
    }

    /// Read-only requests holding a slot now (zero when unlimited). Lets a test observe
    /// that a request has taken its slot instead of hoping it has.
    pub fn read_only_in_flight(&self) -> usize {
        self.read_only.as_ref().map_or(0, Pool::in_flight)
    }
}

pub async fn layer(State(chain): State<Arc<Chain>>, request: Request, next: Next) -> Response {
    let info = context_of(request.extensions()).info;
    if info.is_long_running() {
        return next.run(request).await;
    }
    let pool = if info.is_mutating() {
        &chain.limits.mutating
    } else {
        &chain.limits.read_only
    };
    let Some(pool) = pool else {
        return next.run(request).await;
    };
    match pool.slots.clone().try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) if user_of(request.extensions()).in_group(GROUP_MASTERS) => next.run(request).await,
        Err(_) => {
            let mut err = ApiError::new(
                429,
                Reason::TooManyRequests,
                "Too many requests, please try again later.",
            );
            err.retry_after_seconds = Some(1);
            status_response::json(&err)
        }
    }
}
