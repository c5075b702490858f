//! `apps/v1`.

use k8s_openapi::api::apps::v1 as apps;
use kubecache_core::registry::{ALL, NAMESPACED, ResourceInfo};
use kubecache_core::status::Cause;
use serde_json::Value;

use super::{DefaultContext, Strategy, TypedForm, typed_as};
use super::{defaults, validation};
use crate::table::{self, Printer};

pub struct ControllerRevisions;

impl Strategy for ControllerRevisions {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "apps",
            "v1",
            "controllerrevisions",
            "controllerrevision",
            "ControllerRevision",
            NAMESPACED,
        )
    }
    typed_as!(apps::ControllerRevision);
    /// `data` is free-form.
    fn typed_form(&self) -> TypedForm {
        TypedForm::FreeForm
    }
}

pub struct DaemonSets;

impl Strategy for DaemonSets {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "apps",
            "v1",
            "daemonsets",
            "daemonset",
            "DaemonSet",
            NAMESPACED,
        )
        .short(&["ds"])
        .categories(ALL)
        .status()
    }
    typed_as!(apps::DaemonSet);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::daemon_set(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validation::workload("DaemonSet", object)
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        validation::selector_unchanged(new, old)
    }
    fn printer(&self) -> &'static Printer {
        &table::DAEMONSET
    }
}

pub struct Deployments;

impl Strategy for Deployments {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "apps",
            "v1",
            "deployments",
            "deployment",
            "Deployment",
            NAMESPACED,
        )
        .short(&["deploy"])
        .categories(ALL)
        .status()
        .scale()
    }
    typed_as!(apps::Deployment);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::deployment(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validation::workload("Deployment", object)
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        validation::selector_unchanged(new, old)
    }
    fn printer(&self) -> &'static Printer {
        &table::DEPLOYMENT
    }
}

pub struct ReplicaSets;

impl Strategy for ReplicaSets {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "apps",
            "v1",
            "replicasets",
            "replicaset",
            "ReplicaSet",
            NAMESPACED,
        )
        .selectable(&["status.replicas"])
        .short(&["rs"])
        .categories(ALL)
        .status()
        .scale()
    }
    typed_as!(apps::ReplicaSet);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::replica_set(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validation::workload("ReplicaSet", object)
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        validation::selector_unchanged(new, old)
    }
    fn printer(&self) -> &'static Printer {
        &table::REPLICASET
    }
}

pub struct StatefulSets;

impl Strategy for StatefulSets {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "apps",
            "v1",
            "statefulsets",
            "statefulset",
            "StatefulSet",
            NAMESPACED,
        )
        .short(&["sts"])
        .categories(ALL)
        .status()
        .scale()
    }
    typed_as!(apps::StatefulSet);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::stateful_set(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validation::workload("StatefulSet", object)
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        validation::stateful_set_update(new, old)
    }
    fn printer(&self) -> &'static Printer {
        &table::STATEFULSET
    }
}
