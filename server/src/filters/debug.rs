//! Test-only routes, mounted only with the hidden `--debug-test-routes` flag (or
//! `ChainOptions::debug_routes`): one panics, one sleeps — to exercise panic recovery, the
//! request timeout, the in-flight limits and graceful shutdown with a real slow request.

use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::routing::any;

pub const PANIC_PATH: &str = "/debug/kubecache/panic";
/// `?seconds=N`
pub const SLEEP_PATH: &str = "/debug/kubecache/sleep";

#[derive(serde::Deserialize)]
struct Sleep {
    seconds: u64,
}

pub fn routes(router: Router) -> Router {
    router
        .route(
            PANIC_PATH,
            any(|| async {
                if true {
                    panic!("the test-only panic route was called");
                }
                "unreachable"
            }),
        )
        .route(
            SLEEP_PATH,
            any(|Query(sleep): Query<Sleep>| async move {
                tokio::time::sleep(Duration::from_secs(sleep.seconds)).await;
                "slept"
            }),
        )
}
