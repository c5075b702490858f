//! Version and legacy discovery documents (`/version`, `/api`, `/apis`, `/apis/{g}`,
//! `/api/v1`, `/apis/{g}/{v}`), built from the registry.

use kubecache_apimachinery::registry::Snapshot;
use kubecache_core::KUBE_MINOR;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::request::Subresource;
use serde_json::{Value, json};

/// `/version`: the Kubernetes version kubecache reports; kubectl's dispatcher picks its kubectl
/// by `minor`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "emulationMajor": "1",
        "emulationMinor": KUBE_MINOR,
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": format!("v1.{KUBE_MINOR}.0+kubecache.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

pub fn groups(registry: &Snapshot) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_json(&g, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(registry: &Snapshot, name: &str) -> Value {
    let versions = registry
        .groups()
        .into_iter()
        .find(|(g, _)| *g == name)
        .map(|(_, v)| v)
        .unwrap_or_default();
    let mut group = group_json(name, &versions);
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    group
}

const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

/// A resource's subresources besides status and scale, by name as kube lists them.
fn sorted_subresources(r: &ResourceInfo) -> impl Iterator<Item = Subresource> {
    let mut subresources = r.subresources.clone();
    subresources.sort_by_key(|s| s.as_str());
    subresources.into_iter()
}

pub fn resources(registry: &Snapshot, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in registry.in_group_version(group, version) {
        let mut entry = json!({
            "name": &r.resource,
            "singularName": &r.singular,
            "namespaced": r.namespaced,
            "kind": &r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in sorted_subresources(r) {
            let mut entry = json!({
                "name": format!("{}/{}", r.resource, sub.as_str()),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": &r.kind,
                "verbs": sub.verbs(),
            });
            if let Some(kind) = sub.response_kind(&r.kind) {
                if (kind.group, kind.version) != (r.group.as_str(), r.version.as_str()) {
                    entry["group"] = json!(kind.group);
                    entry["version"] = json!(kind.version);
                }
                entry["kind"] = json!(kind.kind);
            }
            resources.push(entry);
        }
        if r.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", r.resource),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": &r.kind,
                "verbs": SUBRESOURCE_VERBS,
            }));
        }
        if r.scale_subresource {
            resources.push(json!({
                "name": format!("{}/scale", r.resource),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": SUBRESOURCE_VERBS,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// The media type of aggregated discovery (`apidiscovery.k8s.io/v2`). kubectl only decodes
/// an aggregated body whose Content-Type is exactly this; anything else is read as the
/// legacy document, and an aggregated body read that way yields no resources at all.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client takes aggregated discovery (v2) before the legacy documents
/// ([`crate::negotiation`]): plain JSON and wildcards mean legacy; v2beta1, protobuf and
/// other conversions are not offered and skipped.
pub fn wants_aggregated(headers: &http::HeaderMap) -> bool {
    use crate::negotiation::{Accept, Offer};
    const OFFERS: [Offer; 2] = [
        Offer::plain("application/json"),
        Offer::converted(
            "application/json",
            "apidiscovery.k8s.io",
            "v2",
            "APIGroupDiscoveryList",
        ),
    ];
    Accept::from_headers(headers).choose(&OFFERS) == Some(&OFFERS[1])
}

fn response_kind(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

/// The aggregated (`apidiscovery.k8s.io/v2`) resources of one group/version.
fn aggregated_resources(registry: &Snapshot, group: &str, version: &str) -> Vec<Value> {
    registry
        .in_group_version(group, version)
        .map(|r| {
            let mut entry = json!({
                "resource": &r.resource,
                "responseKind": response_kind(&r.group, &r.version, &r.kind),
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": &r.singular,
                "verbs": r.verbs(),
            });
            if !r.short_names.is_empty() {
                entry["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                entry["categories"] = json!(r.categories);
            }
            let mut subresources: Vec<Value> = sorted_subresources(r)
                .map(|sub| {
                    let kind = sub.response_kind(&r.kind);
                    json!({
                        "subresource": sub.as_str(),
                        "responseKind": match kind {
                            Some(k) => response_kind(k.group, k.version, &k.kind),
                            None => response_kind(&r.group, &r.version, &r.kind),
                        },
                        "verbs": sub.verbs(),
                    })
                })
                .collect();
            if r.scale_subresource {
                subresources.push(json!({
                    "subresource": "scale",
                    "responseKind": response_kind("autoscaling", "v1", "Scale"),
                    "verbs": SUBRESOURCE_VERBS,
                }));
            }
            if r.status_subresource {
                subresources.push(json!({
                    "subresource": "status",
                    "responseKind": response_kind(&r.group, &r.version, &r.kind),
                    "verbs": SUBRESOURCE_VERBS,
                }));
            }
            if !subresources.is_empty() {
                entry["subresources"] = json!(subresources);
            }
            entry
        })
        .collect()
}

fn aggregated_group(registry: &Snapshot, group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v,
                "resources": aggregated_resources(registry, group, v),
                "freshness": "Current",
            })
        })
        .collect();
    json!({
        "metadata": {"name": group, "creationTimestamp": null},
        "versions": versions,
    })
}

fn aggregated_list(items: Vec<Value>) -> Value {
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// Aggregated discovery of the core group (`GET /api`): one item named "".
pub fn aggregated_core(registry: &Snapshot) -> Value {
    let items = registry
        .groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty())
        .map(|(g, versions)| aggregated_group(registry, &g, &versions))
        .collect();
    aggregated_list(items)
}

/// Aggregated discovery of every named group (`GET /apis`), preferred version first.
pub fn aggregated_groups(registry: &Snapshot) -> Value {
    let items = registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| aggregated_group(registry, &g, &versions))
        .collect();
    aggregated_list(items)
}

/// The response to `GET /api` (`core: true`) or `GET /apis`: aggregated discovery when the
/// `Accept` header asks for it, else the legacy document; `Vary: Accept` either way.
pub fn root(
    registry: &Snapshot,
    core: bool,
    headers: &http::HeaderMap,
) -> axum::response::Response {
    use http::{HeaderValue, StatusCode, header};

    let aggregated = wants_aggregated(headers);
    let body = match (aggregated, core) {
        (true, true) => aggregated_core(registry),
        (true, false) => aggregated_groups(registry),
        (false, true) => core_versions(),
        (false, false) => groups(registry),
    };
    let mut response = crate::call::json_response(StatusCode::OK, &body, &[]);
    let headers = response.headers_mut();
    if aggregated {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(AGGREGATED_CONTENT_TYPE),
        );
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, header};

    use super::*;

    fn aggregated(accept: &'static str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        wants_aggregated(&headers)
    }

    #[test]
    fn aggregated_only_when_asked_for_first() {
        assert!(aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated(&HeaderMap::new()));
        assert!(!aggregated("*/*"));
        assert!(!aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        // Protobuf is not offered: skipped.
        assert!(aggregated(
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        // Order decides on equal quality, quality before order.
        assert!(!aggregated(
            "application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert!(aggregated(
            "application/json;q=0.9,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert!(!aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json"
        ));
    }
}
