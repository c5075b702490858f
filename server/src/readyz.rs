//! `/readyz`, as kube-apiserver's healthz handlers answer it: a list of named checks, each
//! also served alone at `/readyz/<name>`; `?verbose` lists them, `?exclude=<name>` skips one.
//! The checks are this replica's own: `ping`; `etcd` (storage answers within
//! `--etcd-readycheck-timeout`; called `storage` over the embedded store); `watch-cache`
//! (every cache this replica serves reads from has listed and follows storage).
//!
//! Bodies are kube's: `ok`; with `verbose`, `[+]<name> ok` lines and `readyz check passed`;
//! on failure (500), every check's line with `[-]<name> failed: reason withheld` and
//! `readyz check failed` (the reason goes to the log, as kube logs it).

use std::time::Duration;

use axum::response::Response;
use http::StatusCode;

use crate::api::Api;
use crate::call::{Query, text_response};

/// How long a check waits for the embedded store (etcd's is the flag's).
const STORAGE_TIMEOUT: Duration = Duration::from_secs(3);

/// The names of the checks, in the order they are listed.
fn check_names(api: &Api) -> [&'static str; 3] {
    let storage = if api.etcd.get().is_some() {
        "etcd"
    } else {
        "storage"
    };
    ["ping", storage, "watch-cache"]
}

/// Runs one check: `Err(reason)` when it fails.
async fn run_check(api: &Api, name: &str) -> Result<(), String> {
    let timeout = api
        .etcd
        .get()
        .map_or(STORAGE_TIMEOUT, |etcd| etcd.readycheck_timeout());
    let answer = match name {
        "ping" => return Ok(()),
        "etcd" | "storage" => tokio::time::timeout(timeout, api.backend.health()).await,
        _ => tokio::time::timeout(timeout, api.reads.ready()).await,
    };
    match answer {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Answers `/readyz` or `/readyz/<check>`.
pub async fn serve(api: &Api, path: &str, query: &Query) -> Response {
    let names = check_names(api);
    let single = path.trim_end_matches('/').strip_prefix("/readyz/");
    if let Some(single) = single {
        if !names.contains(&single) {
            return text_response(StatusCode::NOT_FOUND, "404 page not found\n");
        }
        return match run_check(api, single).await {
            Ok(()) => text_response(StatusCode::OK, "ok"),
            Err(reason) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("internal server error: {reason}\n"),
            ),
        };
    }
    let excluded: Vec<&str> = query.all("exclude").collect();
    let verbose = query.get("verbose").is_some();
    let mut lines = String::new();
    let mut failed = false;
    for name in names {
        if excluded.contains(&name) {
            lines.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        match run_check(api, name).await {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(reason) => {
                failed = true;
                tracing::warn!(check = name, %reason, "readyz check failed");
                lines.push_str(&format!("[-]{name} failed: reason withheld\n"));
            }
        }
    }
    if failed {
        text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{lines}readyz check failed\n"),
        )
    } else if verbose {
        text_response(StatusCode::OK, &format!("{lines}readyz check passed\n"))
    } else {
        text_response(StatusCode::OK, "ok")
    }
}
