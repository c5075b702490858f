//! apiregistration.k8s.io/v1 APIServices (kube-aggregator's `pkg/registry/apiservice`): one
//! per served group-version, named `<version>.<group>`. A local APIService (no `service`)
//! is served by this server; kubecache does not proxy to remote ones.

use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as api;
use kubecache_core::registry::{CLUSTER, ResourceInfo};
use kubecache_core::status::Cause;
use kubecache_core::validation::{self as names, NameRule};
use serde_json::{Value, json};

use super::defaults::{at, set};
use super::validation::{invalid, required_because, str_at};
use super::{DefaultContext, Strategy, typed_as};
use crate::table::{self, Printer};

pub struct ApiServices;

impl Strategy for ApiServices {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "apiregistration.k8s.io",
            "v1",
            "apiservices",
            "apiservice",
            "APIService",
            CLUSTER,
        )
        .categories(&["api-extensions"])
        .status()
        .names(NameRule::PathSegment)
    }
    typed_as!(api::APIService);
    /// `SetDefaults_ServiceReference`.
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        at(object, "spec", |spec| {
            at(spec, "service", |service| set(service, "port", json!(443)))
        });
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        api_service(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::APISERVICE
    }
}

/// kube-aggregator's `ValidateAPIService`.
fn api_service(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let (group, version) = (str_at(spec, "/group"), str_at(spec, "/version"));
    let name = str_at(object, "/metadata/name");
    let expected = format!("{version}.{group}");
    if !name.is_empty() && names::is_path_segment_name(name).is_empty() && name != expected {
        out.push(invalid(
            "metadata.name",
            &json!(name),
            &format!("must be `spec.version+\".\"+spec.group`: \"{expected}\""),
        ));
    }
    if group.is_empty() && version != "v1" {
        out.push(required_because(
            "spec.group",
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() {
        for problem in names::is_dns1123_subdomain(group) {
            out.push(invalid("spec.group", &json!(group), &problem));
        }
    }
    for problem in names::is_dns1035_label(version) {
        out.push(invalid("spec.version", &json!(version), &problem));
    }
    let number = |key: &str| spec.get(key).and_then(Value::as_i64).unwrap_or(0);
    let group_priority = number("groupPriorityMinimum");
    if !(1..=20_000).contains(&group_priority) {
        out.push(invalid(
            "spec.groupPriorityMinimum",
            &json!(group_priority),
            "must be positive and less than 20000",
        ));
    }
    let version_priority = number("versionPriority");
    if !(1..=1000).contains(&version_priority) {
        out.push(invalid(
            "spec.versionPriority",
            &json!(version_priority),
            "must be positive and less than 1000",
        ));
    }
    let ca_bundle = str_at(spec, "/caBundle");
    let insecure = spec.get("insecureSkipTLSVerify").and_then(Value::as_bool) == Some(true);
    let Some(service) = spec.get("service").filter(|s| s.is_object()) else {
        if !ca_bundle.is_empty() {
            out.push(invalid(
                "spec.caBundle",
                &json!(format!("{} bytes", decoded_len(ca_bundle))),
                "local APIServices may not have a caBundle",
            ));
        }
        if insecure {
            out.push(invalid(
                "spec.insecureSkipTLSVerify",
                &json!(true),
                "local APIServices may not have insecureSkipTLSVerify",
            ));
        }
        return out;
    };
    for (key, label) in [("namespace", "namespace"), ("name", "name")] {
        let value = str_at(service, &format!("/{key}"));
        if value.is_empty() {
            out.push(required_because(
                &format!("spec.service.{key}"),
                &format!("service {label} is required"),
            ));
        }
    }
    if let Some(port) = service.get("port").and_then(Value::as_i64) {
        for problem in names::is_valid_port_num(port) {
            out.push(invalid("spec.service.port", &json!(port), &problem));
        }
    }
    if insecure && !ca_bundle.is_empty() {
        out.push(invalid(
            "spec.insecureSkipTLSVerify",
            &json!(true),
            "may not be true if caBundle is present",
        ));
    }
    out
}

/// The number of bytes a base64 `caBundle` holds.
fn decoded_len(encoded: &str) -> usize {
    let padding = encoded.bytes().rev().take_while(|b| *b == b'=').count();
    encoded.len() / 4 * 3 - padding
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_service_is_named_version_dot_group() {
        let service = |name: &str| {
            json!({"metadata": {"name": name}, "spec": {"group": "metrics.k8s.io",
                "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
                "service": {"namespace": "kube-system", "name": "metrics-server"}}})
        };
        assert_eq!(ApiServices.validate(&service("v1beta1.metrics.k8s.io")), []);
        let causes = ApiServices.validate(&service("metrics"));
        assert_eq!(causes.len(), 1);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"metrics\": must be `spec.version+\".\"+spec.group`: \"v1beta1.metrics.k8s.io\""
        );
        let local = json!({"metadata": {"name": "v1."}, "spec": {"version": "v1",
            "groupPriorityMinimum": 18000, "versionPriority": 1, "caBundle": "AAAA"}});
        let causes = ApiServices.validate(&local);
        assert_eq!(causes[0].field, "spec.caBundle");
    }
}
