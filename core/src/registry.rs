//! The resource registry: every resource kubecache serves, with what discovery publishes about
//! it (kind, scope, verbs, short names, categories, subresources) and where it is stored.
//!
//! The table mirrors kube-apiserver 1.33 for the built-in types kubecache serves. Storage keys
//! follow kube-apiserver's layout, `/registry/<storage path>/<namespace>/<name>`, including its
//! historical exceptions (nodes under `minions`, services under `services/specs`, ...).

use crate::validation::NameRule;

/// The verbs of an ordinary resource, as discovery lists them.
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const CREATE_ONLY_VERBS: &[&str] = &["create"];

const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// One served resource at one group/version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core (legacy) group.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural resource name, the path segment (`pods`).
    pub resource: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Has a `status` subresource: writes to the main resource leave `.status` alone and
    /// `…/status` writes change only `.status`.
    pub status_subresource: bool,
    /// Has a `scale` subresource (autoscaling/v1 Scale over `.spec.replicas`).
    pub scale_subresource: bool,
    /// The path under the storage prefix where objects live (kube-apiserver's layout).
    pub storage_path: &'static str,
    /// Which rule `metadata.name` must satisfy.
    pub name_rule: NameRule,
    /// Create-only and never stored: a request is answered and forgotten (the
    /// authorization.k8s.io access reviews, authentication.k8s.io SelfSubjectReview).
    pub create_only: bool,
}

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The verbs discovery lists; namespaces have no deletecollection in kube-apiserver.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.create_only {
            CREATE_ONLY_VERBS
        } else if self.group.is_empty() && self.resource == "namespaces" {
            NAMESPACE_VERBS
        } else {
            STANDARD_VERBS
        }
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs().contains(&verb)
    }

    /// The storage prefix holding every object of this resource, ending in `/`.
    pub fn storage_prefix(&self, root: &str) -> String {
        format!("{root}/{}/", self.storage_path)
    }

    /// The storage prefix of one namespace's objects (or of all objects when `namespace` is
    /// `None` or the resource is cluster-scoped), ending in `/`.
    pub fn collection_prefix(&self, root: &str, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{root}/{}/{ns}/", self.storage_path),
            _ => self.storage_prefix(root),
        }
    }

    /// The storage key of one object.
    pub fn object_key(&self, root: &str, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.collection_prefix(root, namespace))
    }

    /// Another version of the same stored objects (events.k8s.io/v1 events share core/v1
    /// storage) converts on the way in and out.
    pub fn shares_storage_with(&self, other: &ResourceInfo) -> bool {
        self.storage_path == other.storage_path
    }
}

const fn resource(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        resource,
        singular,
        kind,
        namespaced,
        short_names: &[],
        categories: &[],
        status_subresource: false,
        scale_subresource: false,
        storage_path: resource,
        name_rule: NameRule::Subdomain,
        create_only: false,
    }
}

impl ResourceInfo {
    const fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }
    const fn categories(mut self, categories: &'static [&'static str]) -> Self {
        self.categories = categories;
        self
    }
    const fn status(mut self) -> Self {
        self.status_subresource = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale_subresource = true;
        self
    }
    const fn stored_at(mut self, path: &'static str) -> Self {
        self.storage_path = path;
        self
    }
    const fn names(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }
    const fn create_only(mut self) -> Self {
        self.create_only = true;
        self
    }
}

const NAMESPACED: bool = true;
const CLUSTER: bool = false;
const ALL: &[&str] = &["all"];

/// Every built-in resource kubecache serves, in discovery order within each group.
pub static BUILTIN: &[ResourceInfo] = &[
    // core/v1
    resource("", "v1", "configmaps", "configmap", "ConfigMap", NAMESPACED).short(&["cm"]),
    resource("", "v1", "endpoints", "endpoints", "Endpoints", NAMESPACED)
        .short(&["ep"])
        .stored_at("services/endpoints"),
    resource("", "v1", "events", "event", "Event", NAMESPACED).short(&["ev"]),
    resource("", "v1", "namespaces", "namespace", "Namespace", CLUSTER)
        .short(&["ns"])
        .status()
        .names(NameRule::Label),
    resource("", "v1", "nodes", "node", "Node", CLUSTER)
        .short(&["no"])
        .status()
        .stored_at("minions"),
    resource(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        NAMESPACED,
    )
    .short(&["pvc"])
    .status(),
    resource(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        CLUSTER,
    )
    .short(&["pv"])
    .status(),
    resource("", "v1", "pods", "pod", "Pod", NAMESPACED)
        .short(&["po"])
        .categories(ALL)
        .status(),
    resource(
        "",
        "v1",
        "replicationcontrollers",
        "replicationcontroller",
        "ReplicationController",
        NAMESPACED,
    )
    .short(&["rc"])
    .categories(ALL)
    .status()
    .scale()
    .stored_at("controllers"),
    resource("", "v1", "secrets", "secret", "Secret", NAMESPACED),
    resource(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        NAMESPACED,
    )
    .short(&["sa"]),
    resource("", "v1", "services", "service", "Service", NAMESPACED)
        .short(&["svc"])
        .categories(ALL)
        .status()
        .stored_at("services/specs")
        .names(NameRule::Dns1035Label),
    // apiextensions.k8s.io/v1
    resource(
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
    .stored_at("apiextensions.k8s.io/customresourcedefinitions"),
    // apps/v1
    resource(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        NAMESPACED,
    ),
    resource(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        NAMESPACED,
    )
    .short(&["ds"])
    .categories(ALL)
    .status(),
    resource(
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
    .scale(),
    resource(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        NAMESPACED,
    )
    .short(&["rs"])
    .categories(ALL)
    .status()
    .scale(),
    resource(
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
    .scale(),
    // authentication.k8s.io/v1, authorization.k8s.io/v1: reviews, answered and not stored
    resource(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        CLUSTER,
    )
    .create_only(),
    resource(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        "LocalSubjectAccessReview",
        NAMESPACED,
    )
    .create_only(),
    resource(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        CLUSTER,
    )
    .create_only(),
    resource(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
        CLUSTER,
    )
    .create_only(),
    resource(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        CLUSTER,
    )
    .create_only(),
    // batch/v1
    resource("batch", "v1", "cronjobs", "cronjob", "CronJob", NAMESPACED)
        .short(&["cj"])
        .categories(ALL)
        .status(),
    resource("batch", "v1", "jobs", "job", "Job", NAMESPACED)
        .categories(ALL)
        .status(),
    // coordination.k8s.io/v1
    resource(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        NAMESPACED,
    ),
    // discovery.k8s.io/v1
    resource(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        NAMESPACED,
    ),
    // events.k8s.io/v1: the same objects as core/v1 events, converted on the way in and out.
    resource(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        NAMESPACED,
    )
    .short(&["ev"]),
    // networking.k8s.io/v1
    resource(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        NAMESPACED,
    )
    .short(&["ing"])
    .status()
    .stored_at("ingress"),
    resource(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        NAMESPACED,
    )
    .short(&["netpol"]),
    // policy/v1
    resource(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        NAMESPACED,
    )
    .short(&["pdb"])
    .status(),
    // rbac.authorization.k8s.io/v1
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        CLUSTER,
    )
    .names(NameRule::PathSegment),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        CLUSTER,
    )
    .names(NameRule::PathSegment),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        NAMESPACED,
    )
    .names(NameRule::PathSegment),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        NAMESPACED,
    )
    .names(NameRule::PathSegment),
    // scheduling.k8s.io/v1
    resource(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        CLUSTER,
    )
    .short(&["pc"]),
    // storage.k8s.io/v1
    resource(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        CLUSTER,
    )
    .short(&["sc"]),
];

/// Looks resources up by what a request names.
#[derive(Debug, Clone)]
pub struct Registry {
    resources: &'static [ResourceInfo],
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl Registry {
    pub fn builtin() -> Self {
        Registry { resources: BUILTIN }
    }

    pub fn all(&self) -> &'static [ResourceInfo] {
        self.resources
    }

    /// The resource at `group`/`version` named `resource` (plural), if served.
    pub fn lookup(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Option<&'static ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.resource == resource)
    }

    /// The resource whose kind is `kind` at `group`/`version`.
    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
    }

    /// The groups served, in discovery order (core first), each with its versions.
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for r in self.resources {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
                Some(_) => {}
                None => groups.push((r.group, vec![r.version])),
            }
        }
        groups
    }

    /// The resources served at one group/version, in table order.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }

    /// Every served resource stored at `storage_path` (a storage path can back several
    /// group-versions, e.g. core/v1 and events.k8s.io/v1 events).
    pub fn sharing_storage<'a>(
        &'a self,
        storage_path: &'a str,
    ) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.storage_path == storage_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_kube_apiserver_layout() {
        let reg = Registry::builtin();
        let nodes = reg.lookup("", "v1", "nodes").unwrap();
        assert_eq!(
            nodes.object_key("/registry", Some("ignored"), "n1"),
            "/registry/minions/n1"
        );
        let svc = reg.lookup("", "v1", "services").unwrap();
        assert_eq!(
            svc.object_key("/registry", Some("default"), "web"),
            "/registry/services/specs/default/web"
        );
        let pods = reg.lookup("", "v1", "pods").unwrap();
        assert_eq!(pods.collection_prefix("/registry", None), "/registry/pods/");
        assert_eq!(
            pods.collection_prefix("/registry", Some("ns")),
            "/registry/pods/ns/"
        );
    }

    #[test]
    fn resources_are_unique_per_group_version() {
        let reg = Registry::builtin();
        for r in reg.all() {
            let same = reg.all().iter().filter(|o| {
                o.group == r.group && o.version == r.version && o.resource == r.resource
            });
            assert_eq!(same.count(), 1, "{}/{}", r.group, r.resource);
        }
    }

    #[test]
    fn events_share_storage_across_groups() {
        let reg = Registry::builtin();
        let core = reg.lookup("", "v1", "events").unwrap();
        let new = reg.lookup("events.k8s.io", "v1", "events").unwrap();
        assert!(core.shares_storage_with(new));
        assert_eq!(reg.sharing_storage("events").count(), 2);
    }

    #[test]
    fn groups_list_core_first() {
        let groups = Registry::builtin().groups();
        assert_eq!(groups[0], ("", vec!["v1"]));
        assert!(groups.iter().any(|(g, _)| *g == "apps"));
    }
}
