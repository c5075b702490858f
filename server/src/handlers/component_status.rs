//! `v1 componentstatuses`: computed on each GET and LIST, never stored, as kube-apiserver's
//! `pkg/registry/core/componentstatus` computes them.
//!
//! kube-apiserver probes each etcd server (`etcd-0`, `etcd-1`, …) and the scheduler and
//! controller-manager on their localhost health ports. kubecache reports the one component it
//! depends on: its storage, as `etcd-0` (etcd, or the embedded store in its place), Healthy
//! with message `ok` when it answers within the probe's timeout. It runs no scheduler or
//! controller-manager of its own and does not assume one beside it (docs/COMPATIBILITY.md).

use std::time::Duration;

use kubecache_core::status::ApiError;
use serde_json::{Value, json};

use super::{not_found, path_name};
use crate::call::{Call, Reply};
use kubecache_core::request::Verb;

/// How long the storage probe may take (kube's etcd health check waits as long).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

const STORAGE: &str = "etcd-0";

pub async fn serve(call: &Call<'_>) -> Result<Reply, ApiError> {
    if call.request.subresource.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let statuses = match call.request.verb {
        Verb::Get if path_name(call) == STORAGE => vec![storage(call).await],
        Verb::Get => return Err(not_found(call)),
        Verb::List => vec![storage(call).await],
        _ => return Err(ApiError::method_not_allowed()),
    };
    let resource = &call.request.resource;
    if let Some(include) = crate::edge::table::requested(&call.headers, &call.query)? {
        return Ok(crate::edge::table::reply(
            resource,
            statuses,
            json!({}),
            include,
        ));
    }
    Ok(Reply::ok(match call.request.verb {
        Verb::Get => statuses.into_iter().next().expect("one status"),
        _ => json!({
            "kind": resource.list_kind(),
            "apiVersion": resource.api_version(),
            "metadata": {},
            "items": statuses,
        }),
    }))
}

/// The storage's ComponentStatus: its `Healthy` condition from a probe.
async fn storage(call: &Call<'_>) -> Value {
    let probe = tokio::time::timeout(PROBE_TIMEOUT, call.api.backend.health()).await;
    let condition = match probe {
        Ok(Ok(())) => json!({"type": "Healthy", "status": "True", "message": "ok"}),
        Ok(Err(e)) => json!({"type": "Healthy", "status": "False", "error": e.to_string()}),
        Err(_) => json!({"type": "Healthy", "status": "False",
            "error": format!("storage did not answer within {}s", PROBE_TIMEOUT.as_secs())}),
    };
    json!({
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": {"name": STORAGE},
        "conditions": [condition],
    })
}
