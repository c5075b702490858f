//! node.k8s.io/v1: RuntimeClasses (kube 1.33's `pkg/registry/node/runtimeclass`), with the
//! group's field rules (kube's `pkg/apis/node/validation`).

use k8s_openapi::api::node::v1 as node;
use kubecache_core::registry::{CLUSTER, ResourceInfo};
use kubecache_core::status::Cause;
use kubecache_core::validation as names;
use serde_json::Value;

use super::validation::{immutable, invalid};
use super::{Strategy, typed_as};
use crate::objects;
use crate::table::{self, Printer};

pub struct RuntimeClasses;

impl Strategy for RuntimeClasses {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "node.k8s.io",
            "v1",
            "runtimeclasses",
            "runtimeclass",
            "RuntimeClass",
            CLUSTER,
        )
    }
    typed_as!(node::RuntimeClass);
    /// The handler names a CRI configuration: a DNS label (an empty one is refused with the
    /// label's message, as kube does, not as missing); the node selector is labels.
    fn validate(&self, object: &Value) -> Vec<Cause> {
        let handler = object["handler"].as_str().unwrap_or("");
        let mut out: Vec<Cause> = names::is_dns1123_label(handler)
            .iter()
            .map(|problem| invalid("handler", &object["handler"], problem))
            .collect();
        objects::validate_labels(
            &object["scheduling"]["nodeSelector"],
            "scheduling.nodeSelector",
            &mut out,
        );
        out
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        immutable("handler", new.get("handler"), old.get("handler"), &mut out);
        out
    }
    fn printer(&self) -> &'static Printer {
        &table::RUNTIMECLASS
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_handler_is_a_dns_label_that_never_changes() {
        let class = json!({"metadata": {"name": "gvisor"}, "handler": "runsc"});
        assert!(RuntimeClasses.validate(&class).is_empty());
        let causes = RuntimeClasses.validate(&json!({"handler": "Run_SC"}));
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "handler");
        assert!(
            causes[0]
                .message
                .starts_with("Invalid value: \"Run_SC\": a lowercase RFC 1123 label")
        );
        let causes = RuntimeClasses.validate(&json!({"handler": "runsc",
            "scheduling": {"nodeSelector": {"runtime": "g visor"}}}));
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "scheduling.nodeSelector");
        let changed = json!({"handler": "runc"});
        let causes = RuntimeClasses.validate_update(&changed, &class);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"runc\": field is immutable"
        );
    }
}
