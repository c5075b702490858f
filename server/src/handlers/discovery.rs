//! Version and legacy discovery documents (`/version`, `/api`, `/apis`, `/apis/{g}`,
//! `/api/v1`, `/apis/{g}/{v}`), built from the registry.

use kubecache_core::registry::Registry;
use serde_json::{Value, json};

/// The Kubernetes version kubecache reports; kubectl's dispatcher picks its kubectl by `minor`.
pub const KUBE_MINOR: &str = "33";

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

fn group_json(name: &str, versions: &[&str]) -> Value {
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

pub fn groups(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_json(g, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(registry: &Registry, name: &str) -> Value {
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

pub fn resources(registry: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in registry.in_group_version(group, version) {
        let mut entry = json!({
            "name": r.resource,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        if r.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", r.resource),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
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
