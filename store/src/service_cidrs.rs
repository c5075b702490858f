//! The default ServiceCIDR: `kubernetes`, holding `--service-cluster-ip-range`, created at
//! start and marked Ready (kube-apiserver's `kubernetes-service-cidr-controller`, which runs
//! in the apiserver because only it knows the range).
//!
//! The clusterIP allocator allocates from the flag's range, not from the ServiceCIDR objects:
//! further ServiceCIDRs are served and stored but widen nothing (docs/COMPATIBILITY.md).

use kubecache_core::request::Subresource;
use kubecache_core::status::Reason;
use kubecache_core::storage::StorageError;
use serde_json::{Value, json};

use crate::{Context, Store, Writer, startup_error};
use kubecache_apimachinery::objects;

/// The name kube gives the ServiceCIDR of the flag's range.
pub const DEFAULT_NAME: &str = "kubernetes";

/// Who writes it, as kube's controller is named.
const CONTROLLER: &str = "kubernetes-service-cidr-controller";

const READY_MESSAGE: &str = "Kubernetes default Service CIDR is ready";

/// Creates the default ServiceCIDR if it is missing, then marks it Ready if it is not yet.
/// A stored one naming another range is left as it is, with a warning (kube's controller
/// leaves it too and reports an event).
pub async fn bootstrap(context: &impl Context) -> Result<(), StorageError> {
    let Some(resource) = context
        .registry()
        .lookup("networking.k8s.io", "v1", "servicecidrs")
    else {
        return Ok(());
    };
    let store = Store::new(context, &resource);
    let range = context.admission().service_ips.range().to_string();
    let object = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": DEFAULT_NAME},
        "spec": {"cidrs": [range]},
    });
    match store
        .create(&Writer::internal(CONTROLLER), None, object)
        .await
    {
        Ok(_) => {}
        Err(e) if e.reason == Reason::AlreadyExists => {}
        Err(e) => return Err(startup_error(e)),
    }
    let status_writer = Writer {
        subresource: Some(Subresource::Status),
        ..Writer::internal(CONTROLLER)
    };
    let marked = store
        .update(&status_writer, None, DEFAULT_NAME, |current| {
            let mut next = current.clone();
            if current["spec"]["cidrs"] != json!([range]) {
                tracing::warn!(
                    "the ServiceCIDR {DEFAULT_NAME} holds {}, not --service-cluster-ip-range {range}",
                    current["spec"]["cidrs"]
                );
            } else if !is_ready(current) {
                next["status"] = json!({"conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "lastTransitionTime": objects::now_rfc3339(),
                    "reason": "",
                    "message": READY_MESSAGE,
                }]});
            }
            Ok(next)
        })
        .await;
    marked.map(|_| ()).map_err(startup_error)
}

fn is_ready(service_cidr: &Value) -> bool {
    service_cidr["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}
