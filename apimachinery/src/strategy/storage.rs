//! storage.k8s.io/v1: StorageClasses, CSIDrivers, CSINodes, CSIStorageCapacities and
//! VolumeAttachments (kube 1.33's `pkg/registry/storage/*`).
//!
//! The group's own field rules (kube's `pkg/apis/storage/validation`) live beside its
//! strategies, over the shared checks of [`super::validation`]; its defaults are in
//! [`super::defaults`] with every other kind's.

use std::collections::HashSet;

use k8s_openapi::api::storage::v1 as storage;
use kubecache_core::registry::{CLUSTER, NAMESPACED, ResourceInfo};
use kubecache_core::status::Cause;
use kubecache_core::validation as names;
use serde_json::Value;

use super::validation::{
    duplicate, forbidden, immutable, invalid, not_supported, required, required_because, too_long,
};
use super::{DefaultContext, Strategy, defaults, typed_as};
use crate::objects;
use crate::table::{self, Printer};

pub struct StorageClasses;

impl Strategy for StorageClasses {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            "storageclass",
            "StorageClass",
            CLUSTER,
        )
        .short(&["sc"])
    }
    typed_as!(storage::StorageClass);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::storage_class(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        storage_class(object)
    }
    /// What provisions the class's volumes is fixed once created.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        for key in ["parameters", "provisioner", "reclaimPolicy"] {
            let changed =
                new.get(key).filter(|v| !v.is_null()) != old.get(key).filter(|v| !v.is_null());
            if changed {
                out.push(forbidden(key, &format!("updates to {key} are forbidden.")));
            }
        }
        immutable(
            "volumeBindingMode",
            new.get("volumeBindingMode"),
            old.get("volumeBindingMode"),
            &mut out,
        );
        out
    }
    fn printer(&self) -> &'static Printer {
        &table::STORAGECLASS
    }
    fn delete_returns_object(&self) -> bool {
        true
    }
}

pub struct CsiDrivers;

impl Strategy for CsiDrivers {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "storage.k8s.io",
            "v1",
            "csidrivers",
            "csidriver",
            "CSIDriver",
            CLUSTER,
        )
    }
    typed_as!(storage::CSIDriver);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::csi_driver(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        csi_driver_spec(&object["spec"])
    }
    /// kube names the first path `spec.attachedRequired` (sic), as here.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        for (path, key) in [
            ("spec.attachedRequired", "attachRequired"),
            ("spec.volumeLifecycleModes", "volumeLifecycleModes"),
        ] {
            immutable(path, new["spec"].get(key), old["spec"].get(key), &mut out);
        }
        out
    }
    fn printer(&self) -> &'static Printer {
        &table::CSIDRIVER
    }
    /// kube's store answers a DELETE with the object (`ReturnDeletedObject`).
    fn delete_returns_object(&self) -> bool {
        true
    }
}

pub struct CsiNodes;

impl Strategy for CsiNodes {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "storage.k8s.io",
            "v1",
            "csinodes",
            "csinode",
            "CSINode",
            CLUSTER,
        )
    }
    typed_as!(storage::CSINode);
    fn validate(&self, object: &Value) -> Vec<Cause> {
        csi_node_drivers(&object["spec"]["drivers"])
    }
    /// A driver already registered keeps its entry (kube compares the whole driver).
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        for old_driver in items(&old["spec"]["drivers"]) {
            for new_driver in items(&new["spec"]["drivers"]) {
                if new_driver["name"] == old_driver["name"] {
                    immutable("spec.drivers", Some(new_driver), Some(old_driver), &mut out);
                }
            }
        }
        out
    }
    fn printer(&self) -> &'static Printer {
        &table::CSINODE
    }
    /// kube's store answers a DELETE with the object (`ReturnDeletedObject`).
    fn delete_returns_object(&self) -> bool {
        true
    }
}

pub struct CsiStorageCapacities;

impl Strategy for CsiStorageCapacities {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "storage.k8s.io",
            "v1",
            "csistoragecapacities",
            "csistoragecapacity",
            "CSIStorageCapacity",
            NAMESPACED,
        )
    }
    typed_as!(storage::CSIStorageCapacity);
    fn validate(&self, object: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        let class = object["storageClassName"].as_str().unwrap_or("");
        for problem in names::is_dns1123_subdomain(class) {
            out.push(invalid(
                "storageClassName",
                &object["storageClassName"],
                &problem,
            ));
        }
        objects::validate_labels(
            &object["nodeTopology"]["matchLabels"],
            "nodeTopology.matchLabels",
            &mut out,
        );
        if object["capacity"]
            .as_str()
            .is_some_and(is_negative_quantity)
        {
            out.push(invalid(
                "capacity",
                &object["capacity"],
                "must be greater than or equal to 0",
            ));
        }
        out
    }
    /// The inputs of the CSI GetCapacity call are fixed.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        for field in ["nodeTopology", "storageClassName"] {
            immutable(field, new.get(field), old.get(field), &mut out);
        }
        out
    }
    fn printer(&self) -> &'static Printer {
        &table::CSISTORAGECAPACITY
    }
}

pub struct VolumeAttachments;

impl Strategy for VolumeAttachments {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "storage.k8s.io",
            "v1",
            "volumeattachments",
            "volumeattachment",
            "VolumeAttachment",
            CLUSTER,
        )
        .status()
    }
    typed_as!(storage::VolumeAttachment);
    fn validate(&self, object: &Value) -> Vec<Cause> {
        volume_attachment_spec(&object["spec"])
    }
    /// The spec is read-only once created.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        immutable("spec", new.get("spec"), old.get("spec"), &mut out);
        out
    }
    fn printer(&self) -> &'static Printer {
        &table::VOLUMEATTACHMENT
    }
    /// kube's store answers a DELETE with the object (`ReturnDeletedObject`).
    fn delete_returns_object(&self) -> bool {
        true
    }
}

// ---- field rules (kube's pkg/apis/storage/validation) ----

/// kube's `ValidateStorageClass`: a provisioner (a qualified name), at most 512 parameters
/// of at most 256 KiB with non-empty keys, a supported reclaim policy and binding mode.
fn storage_class(class: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let provisioner = class["provisioner"].as_str().unwrap_or("");
    if provisioner.is_empty() {
        out.push(required("provisioner"));
    } else {
        for problem in names::is_qualified_name(&provisioner.to_lowercase()) {
            out.push(invalid("provisioner", &class["provisioner"], &problem));
        }
    }
    if let Some(parameters) = class["parameters"].as_object() {
        if parameters.len() > 512 {
            out.push(too_long("parameters", 512));
        } else {
            let mut size = 0;
            for (key, value) in parameters {
                if key.is_empty() {
                    out.push(invalid(
                        "parameters",
                        &Value::from(""),
                        "field can not be empty.",
                    ));
                }
                size += key.len() + value.as_str().map_or(0, str::len);
            }
            if size > 256 << 10 {
                out.push(too_long("parameters", 256 << 10));
            }
        }
    }
    if let Some(policy) = class["reclaimPolicy"].as_str().filter(|p| !p.is_empty())
        && !matches!(policy, "Delete" | "Retain")
    {
        out.push(not_supported(
            "reclaimPolicy",
            &class["reclaimPolicy"],
            &["Delete", "Retain"],
        ));
    }
    match class["volumeBindingMode"].as_str() {
        None => out.push(required("volumeBindingMode")),
        Some("Immediate" | "WaitForFirstConsumer") => {}
        Some(_) => out.push(not_supported(
            "volumeBindingMode",
            &class["volumeBindingMode"],
            &["Immediate", "WaitForFirstConsumer"],
        )),
    }
    out
}

/// A quantity below zero: a minus sign and a mantissa that is not all zeros.
fn is_negative_quantity(quantity: &str) -> bool {
    quantity.strip_prefix('-').is_some_and(|rest| {
        rest.chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .any(|c| ('1'..='9').contains(&c))
    })
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// kube's `ValidateCSIDriverName` (core validation): a DNS subdomain of at most 63 bytes.
fn csi_driver_name(field: &str, value: &Value, out: &mut Vec<Cause>) {
    let name = value.as_str().unwrap_or("");
    if name.is_empty() {
        out.push(required(field));
    }
    if name.len() > 63 {
        out.push(too_long(field, 63));
    }
    for problem in names::is_dns1123_subdomain(&name.to_lowercase()) {
        out.push(invalid(field, value, &problem));
    }
}

fn csi_driver_spec(spec: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    for (field, key) in [
        ("spec.attachedRequired", "attachRequired"),
        ("spec.podInfoOnMount", "podInfoOnMount"),
        ("spec.storageCapacity", "storageCapacity"),
        ("spec.seLinuxMount", "seLinuxMount"),
    ] {
        if spec.get(key).is_none_or(Value::is_null) {
            out.push(required(field));
        }
    }
    if let Some(policy) = spec.get("fsGroupPolicy").filter(|p| !p.is_null())
        && !matches!(
            policy.as_str(),
            Some("File" | "None" | "ReadWriteOnceWithFSType")
        )
    {
        out.push(not_supported(
            "spec.fsGroupPolicy",
            policy,
            &["File", "None", "ReadWriteOnceWithFSType"],
        ));
    }
    let mut audiences = HashSet::new();
    for (i, request) in items(&spec["tokenRequests"]).iter().enumerate() {
        let audience = request["audience"].as_str().unwrap_or("");
        if !audiences.insert(audience) {
            out.push(duplicate(
                &format!("spec.tokenRequests[{i}].audience"),
                &request["audience"],
            ));
            continue;
        }
        if let Some(seconds) = request["expirationSeconds"].as_i64() {
            let field = format!("spec.tokenRequests[{i}].expirationSeconds");
            if seconds < 600 {
                out.push(invalid(
                    &field,
                    &request["expirationSeconds"],
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if seconds > 1 << 32 {
                out.push(invalid(
                    &field,
                    &request["expirationSeconds"],
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
        }
    }
    for mode in items(&spec["volumeLifecycleModes"]) {
        if !matches!(mode.as_str(), Some("Persistent" | "Ephemeral")) {
            out.push(not_supported(
                "spec.volumeLifecycleModes",
                mode,
                &["Persistent", "Ephemeral"],
            ));
        }
    }
    if let Some(period) = spec["nodeAllocatableUpdatePeriodSeconds"].as_i64()
        && period < 10
    {
        out.push(invalid(
            "spec.nodeAllocatableUpdatePeriodSeconds",
            &spec["nodeAllocatableUpdatePeriodSeconds"],
            "must be greater than or equal to 10 seconds",
        ));
    }
    out
}

/// kube's `validateCSINodeDrivers`: each driver named, once, with a node ID of at most 192
/// bytes and qualified topology keys.
fn csi_node_drivers(drivers: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, driver) in items(drivers).iter().enumerate() {
        let path = format!("spec.drivers[{i}]");
        csi_driver_name(&format!("{path}.name"), &driver["name"], &mut out);
        let node_id = driver["nodeID"].as_str().unwrap_or("");
        if node_id.is_empty() {
            out.push(required(&format!("{path}.nodeID")));
        }
        if node_id.len() > 192 {
            out.push(invalid(
                &format!("{path}.nodeID"),
                &driver["nodeID"],
                "must be 192 characters or less",
            ));
        }
        if let Some(count) = driver["allocatable"]["count"].as_i64()
            && count < 0
        {
            out.push(invalid(
                &format!("{path}.allocatable.count"),
                &driver["allocatable"]["count"],
                "must be greater than or equal to 0",
            ));
        }
        let name = driver["name"].as_str().unwrap_or("");
        if !seen.insert(name) {
            out.push(duplicate(&format!("{path}.name"), &driver["name"]));
        }
        let mut keys = HashSet::new();
        for key in items(&driver["topologyKeys"]) {
            let text = key.as_str().unwrap_or("");
            if text.is_empty() {
                out.push(required(&path));
            }
            if !keys.insert(text) {
                out.push(duplicate(&path, key));
            }
            for problem in names::is_qualified_name(text) {
                out.push(invalid(&path, key, &problem));
            }
        }
    }
    out
}

/// kube's `ValidateVolumeAttachment` and `ValidateVolumeAttachmentV1`: an attacher (a CSI
/// driver name), exactly one source, a node name.
fn volume_attachment_spec(spec: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let attacher = spec["attacher"].as_str().unwrap_or("");
    if attacher.is_empty() {
        out.push(required("spec.attacher"));
    }
    const ONE_SOURCE: &str =
        "must specify exactly one of inlineVolumeSpec and persistentVolumeName";
    let source = &spec["source"];
    let pv_name = source.get("persistentVolumeName").filter(|v| !v.is_null());
    let inline = source.get("inlineVolumeSpec").filter(|v| !v.is_null());
    match (pv_name, inline) {
        (None, None) => out.push(required_because("spec.source", ONE_SOURCE)),
        (Some(_), Some(_)) => out.push(super::validation::forbidden("spec.source", ONE_SOURCE)),
        (Some(name), None) if name.as_str() == Some("") => out.push(required_because(
            "spec.source.persistentVolumeName",
            "must specify non empty persistentVolumeName",
        )),
        _ => {}
    }
    let node = spec["nodeName"].as_str().unwrap_or("");
    for problem in names::is_dns1123_subdomain(node) {
        out.push(invalid("spec.nodeName", &spec["nodeName"], &problem));
    }
    csi_driver_name("spec.attacher", &spec["attacher"], &mut out);
    if let Some(name) = pv_name.and_then(Value::as_str).filter(|n| !n.is_empty()) {
        for problem in names::is_dns1123_subdomain(name) {
            out.push(invalid(
                "spec.source.persistentVolumeName",
                &source["persistentVolumeName"],
                &problem,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn defaulted(strategy: &dyn Strategy, mut object: Value) -> Value {
        let context = DefaultContext {
            create: true,
            old: None,
            ip_family: "IPv4",
        };
        strategy.default(&mut object, &context);
        object
    }

    fn fields(causes: &[Cause]) -> Vec<(&str, &str)> {
        causes
            .iter()
            .map(|c| (c.field.as_str(), c.message.as_str()))
            .collect()
    }

    #[test]
    fn a_csi_driver_is_defaulted_and_validated_as_kube_does() {
        let driver = defaulted(
            &CsiDrivers,
            json!({"metadata": {"name": "csi.example.com"}, "spec": {}}),
        );
        assert_eq!(
            driver["spec"],
            json!({
                "attachRequired": true,
                "podInfoOnMount": false,
                "storageCapacity": false,
                "fsGroupPolicy": "ReadWriteOnceWithFSType",
                "volumeLifecycleModes": ["Persistent"],
                "requiresRepublish": false,
                "seLinuxMount": false,
            })
        );
        assert!(CsiDrivers.validate(&driver).is_empty());
        let mut bad = driver.clone();
        bad["spec"]["fsGroupPolicy"] = json!("Sometimes");
        bad["spec"]["volumeLifecycleModes"] = json!(["Forever"]);
        bad["spec"]["tokenRequests"] =
            json!([{"audience": "a", "expirationSeconds": 60}, {"audience": "a"}]);
        assert_eq!(
            fields(&CsiDrivers.validate(&bad)),
            [
                (
                    "spec.fsGroupPolicy",
                    "Unsupported value: \"Sometimes\": supported values: \"File\", \"None\", \"ReadWriteOnceWithFSType\""
                ),
                (
                    "spec.tokenRequests[0].expirationSeconds",
                    "Invalid value: 60: may not specify a duration less than 10 minutes"
                ),
                ("spec.tokenRequests[1].audience", "Duplicate value: \"a\""),
                (
                    "spec.volumeLifecycleModes",
                    "Unsupported value: \"Forever\": supported values: \"Persistent\", \"Ephemeral\""
                ),
            ]
        );
        let mut changed = driver.clone();
        changed["spec"]["attachRequired"] = json!(false);
        changed["spec"]["podInfoOnMount"] = json!(true);
        assert_eq!(
            fields(&CsiDrivers.validate_update(&changed, &driver)),
            [(
                "spec.attachedRequired",
                "Invalid value: false: field is immutable"
            )]
        );
    }

    #[test]
    fn a_storage_class_keeps_what_provisions_it() {
        let class = defaulted(
            &StorageClasses,
            json!({"metadata": {"name": "fast"}, "provisioner": "ebs.csi.aws.com",
                   "parameters": {"type": "gp3"}}),
        );
        assert!(StorageClasses.validate(&class).is_empty());
        let bad = json!({"provisioner": "", "reclaimPolicy": "Recycle",
                         "volumeBindingMode": "Later"});
        assert_eq!(
            fields(&StorageClasses.validate(&bad)),
            [
                ("provisioner", "Required value"),
                (
                    "reclaimPolicy",
                    "Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\""
                ),
                (
                    "volumeBindingMode",
                    "Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\""
                ),
            ]
        );
        let mut changed = class.clone();
        changed["parameters"]["type"] = json!("io2");
        changed["volumeBindingMode"] = json!("WaitForFirstConsumer");
        assert_eq!(
            fields(&StorageClasses.validate_update(&changed, &class)),
            [
                (
                    "parameters",
                    "Forbidden: updates to parameters are forbidden."
                ),
                (
                    "volumeBindingMode",
                    "Invalid value: \"WaitForFirstConsumer\": field is immutable"
                ),
            ]
        );
    }

    #[test]
    fn csi_node_drivers_are_unique_and_keep_their_entry() {
        let node = json!({"spec": {"drivers": [
            {"name": "csi.example.com", "nodeID": "n1", "topologyKeys": ["topology.example.com/zone"]},
            {"name": "csi.example.com", "nodeID": ""},
        ]}});
        assert_eq!(
            fields(&CsiNodes.validate(&node)),
            [
                ("spec.drivers[1].nodeID", "Required value"),
                (
                    "spec.drivers[1].name",
                    "Duplicate value: \"csi.example.com\""
                ),
            ]
        );
        let old = json!({"spec": {"drivers": [{"name": "a", "nodeID": "n1"}]}});
        let new = json!({"spec": {"drivers": [{"name": "a", "nodeID": "n2"}, {"name": "b", "nodeID": "n"}]}});
        let causes = CsiNodes.validate_update(&new, &old);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.drivers");
    }

    #[test]
    fn a_volume_attachment_needs_one_source_and_keeps_its_spec() {
        let attachment = json!({"spec": {"attacher": "csi.example.com", "nodeName": "node-1",
                                         "source": {"persistentVolumeName": "pv-1"}}});
        assert!(VolumeAttachments.validate(&attachment).is_empty());
        let none = json!({"spec": {"attacher": "", "nodeName": "node-1", "source": {}}});
        assert_eq!(
            fields(&VolumeAttachments.validate(&none)),
            [
                ("spec.attacher", "Required value"),
                (
                    "spec.source",
                    "Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName"
                ),
                ("spec.attacher", "Required value"),
                (
                    "spec.attacher",
                    "Invalid value: \"\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                ),
            ]
        );
        let mut moved = attachment.clone();
        moved["spec"]["nodeName"] = json!("node-2");
        let causes = VolumeAttachments.validate_update(&moved, &attachment);
        assert_eq!(causes[0].field, "spec");
        assert!(causes[0].message.ends_with("field is immutable"));
    }
}
