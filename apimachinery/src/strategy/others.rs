//! The other built-in groups, each with few resources: apiextensions.k8s.io,
//! authentication.k8s.io and authorization.k8s.io (reviews, never stored),
//! coordination.k8s.io, discovery.k8s.io, events.k8s.io, policy, rbac.authorization.k8s.io
//! and scheduling.k8s.io. (networking.k8s.io, node.k8s.io and storage.k8s.io have files of
//! their own.)

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use kubecache_core::registry::{CLUSTER, NAMESPACED, ResourceInfo};
use kubecache_core::status::Cause;
use kubecache_core::validation::NameRule;
use serde_json::Value;

use super::defaults;
use super::events;
use super::{DefaultContext, Deletion, Strategy, TypedForm, typed_as};
use crate::objects;
use crate::table::{self, Printer};
use kubecache_apiextensions::crd;

pub struct CustomResourceDefinitions;

impl Strategy for CustomResourceDefinitions {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            CLUSTER,
        )
        .short(&["crd", "crds"])
        .categories(&["api-extensions"])
        .status()
        .stored_at("apiextensions.k8s.io/customresourcedefinitions")
    }
    typed_as!(apiextensions::CustomResourceDefinition);
    /// Its schemas are free-form JSON.
    fn typed_form(&self) -> TypedForm {
        TypedForm::FreeForm
    }
    fn tracks_generation(&self) -> bool {
        true
    }
    /// kube's decoding defaults (`singular`, `listKind`, conversion strategy `None`, ...).
    fn default(&self, object: &mut Value, _context: &DefaultContext<'_>) {
        crd::apply_defaults(object);
    }
    /// The status is the server's; `storedVersions` records the storage version.
    fn prepare_for_create(&self, _info: &ResourceInfo, object: &mut Value) {
        crd::prepare_for_create(object);
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        crd::prepare_for_update(new, old);
    }
    /// Its objects are deleted before it (the CRD controller removes the finalizer then).
    fn deletion(&self) -> Deletion {
        Deletion::Finalized
    }
    /// kube's CRD storage on the first DELETE: the cleanup finalizer and a `Terminating`
    /// condition.
    fn mark_deleting(&self, object: &mut Value) {
        crd::mark_deleting(object, &objects::now_rfc3339());
    }
    /// kube's `ValidateCustomResourceDefinition`: names, group, versions, subresources,
    /// printer columns, conversion, and each schema (structural, CEL rules that compile).
    fn validate(&self, object: &Value) -> Vec<Cause> {
        crd::validation::validate_create(object)
    }
    /// What only an update can get wrong (immutable names and scope, removed stored
    /// versions); what a create would refuse is [`Strategy::validate`]'s to report.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let on_create = crd::validation::validate_create(new);
        crd::validation::validate_update(new, old)
            .into_iter()
            .filter(|cause| !on_create.contains(cause))
            .collect()
    }
}

/// A review: created, answered and forgotten (`authz::reviews`).
macro_rules! review {
    ($name:ident, $info:expr, $type:ty) => {
        pub struct $name;

        impl Strategy for $name {
            fn info(&self) -> ResourceInfo {
                $info
            }
            typed_as!($type);
        }
    };
}

review!(
    SelfSubjectReviews,
    ResourceInfo::new(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        CLUSTER
    )
    .create_only(),
    api::authentication::v1::SelfSubjectReview
);
review!(
    TokenReviews,
    ResourceInfo::new(
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "tokenreview",
        "TokenReview",
        CLUSTER
    )
    .create_only(),
    api::authentication::v1::TokenReview
);
review!(
    LocalSubjectAccessReviews,
    ResourceInfo::new(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        "LocalSubjectAccessReview",
        NAMESPACED
    )
    .create_only(),
    api::authorization::v1::LocalSubjectAccessReview
);
review!(
    SelfSubjectAccessReviews,
    ResourceInfo::new(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        CLUSTER
    )
    .create_only(),
    api::authorization::v1::SelfSubjectAccessReview
);
review!(
    SelfSubjectRulesReviews,
    ResourceInfo::new(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
        CLUSTER
    )
    .create_only(),
    api::authorization::v1::SelfSubjectRulesReview
);
review!(
    SubjectAccessReviews,
    ResourceInfo::new(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        CLUSTER
    )
    .create_only(),
    api::authorization::v1::SubjectAccessReview
);

pub struct Leases;

impl Strategy for Leases {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "coordination.k8s.io",
            "v1",
            "leases",
            "lease",
            "Lease",
            NAMESPACED,
        )
    }
    typed_as!(api::coordination::v1::Lease);
}

pub struct EndpointSlices;

impl Strategy for EndpointSlices {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "endpointslice",
            "EndpointSlice",
            NAMESPACED,
        )
    }
    typed_as!(api::discovery::v1::EndpointSlice);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::endpoint_slice(object);
    }
}

/// events.k8s.io/v1 Events: the core/v1 Events, with fields renamed (`events`).
pub struct EventsV1;

impl Strategy for EventsV1 {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "events.k8s.io",
            "v1",
            "events",
            "event",
            "Event",
            NAMESPACED,
        )
        .short(&["ev"])
    }
    typed_as!(api::events::v1::Event);
    fn printer(&self) -> &'static Printer {
        &table::EVENT
    }
    fn storage_version(&self) -> Option<(&str, &str, &str)> {
        Some(("", "v1", "events"))
    }
    fn to_storage(&self, object: Value) -> Value {
        events::to_core(&object)
    }
    fn to_served(&self, object: Value) -> Value {
        events::from_core(&object)
    }
}

pub struct PodDisruptionBudgets;

impl Strategy for PodDisruptionBudgets {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            "PodDisruptionBudget",
            NAMESPACED,
        )
        .short(&["pdb"])
        .status()
    }
    typed_as!(api::policy::v1::PodDisruptionBudget);
    fn tracks_generation(&self) -> bool {
        true
    }
}

/// An RBAC resource: nothing beyond its type.
macro_rules! rbac {
    ($name:ident, $info:expr, $type:ty) => {
        pub struct $name;

        impl Strategy for $name {
            fn info(&self) -> ResourceInfo {
                $info
            }
            typed_as!($type);
        }
    };
}

rbac!(
    ClusterRoleBindings,
    ResourceInfo::new(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        CLUSTER
    )
    .names(NameRule::PathSegment),
    api::rbac::v1::ClusterRoleBinding
);
rbac!(
    ClusterRoles,
    ResourceInfo::new(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        CLUSTER
    )
    .names(NameRule::PathSegment),
    api::rbac::v1::ClusterRole
);
rbac!(
    RoleBindings,
    ResourceInfo::new(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        NAMESPACED
    )
    .names(NameRule::PathSegment),
    api::rbac::v1::RoleBinding
);
rbac!(
    Roles,
    ResourceInfo::new(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        NAMESPACED
    )
    .names(NameRule::PathSegment),
    api::rbac::v1::Role
);

pub struct PriorityClasses;

impl Strategy for PriorityClasses {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            "priorityclass",
            "PriorityClass",
            CLUSTER,
        )
        .short(&["pc"])
    }
    typed_as!(api::scheduling::v1::PriorityClass);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::priority_class(object);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The CRD strategy runs kube's CRD validation (its rules are tested in
    /// kubecache-apiextensions): a valid CRD passes, a misnamed one gets kube's cause.
    #[test]
    fn a_crd_is_validated_as_kube_does() {
        let crd = |name: &str| {
            let mut crd = json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": name},
                "spec": {
                    "group": "example.com",
                    "scope": "Namespaced",
                    "names": {"plural": "widgets", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}],
                },
            });
            CustomResourceDefinitions.default(
                &mut crd,
                &DefaultContext {
                    create: true,
                    old: None,
                    ip_family: "IPv4",
                },
            );
            CustomResourceDefinitions
                .prepare_for_create(&CustomResourceDefinitions.info(), &mut crd);
            crd
        };
        let valid = CustomResourceDefinitions.validate(&crd("widgets.example.com"));
        assert!(valid.is_empty(), "{valid:?}");
        let causes = CustomResourceDefinitions.validate(&crd("widget.example.com"));
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "metadata.name");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"widget.example.com\": must be spec.names.plural+\".\"+spec.group"
        );
    }
}
