//! A served resource's identity: what discovery publishes about it (kind, scope, verbs, short
//! names, categories, subresources) and where its objects are stored.
//!
//! Each resource declares its own (a built-in's strategy, a custom resource's definition);
//! the server's registry holds the resources served at the moment. Storage keys follow
//! kube-apiserver's layout, `/registry/<storage path>/<namespace>/<name>`, including its
//! historical exceptions (nodes under `minions`, services under `services/specs`, ...).

use crate::request::Subresource;
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

const READ_ONLY_VERBS: &[&str] = &["get", "list"];

const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// One served resource at one group/version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core (legacy) group.
    pub group: String,
    pub version: String,
    /// Plural resource name, the path segment (`pods`).
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `status` subresource: writes to the main resource leave `.status` alone and
    /// `…/status` writes change only `.status`.
    pub status_subresource: bool,
    /// Has a `scale` subresource (autoscaling/v1 Scale over `.spec.replicas`).
    pub scale_subresource: bool,
    /// The other subresources it serves, each by a handler of its own (`pods/binding`,
    /// `pods/eviction`, ...).
    pub subresources: Vec<Subresource>,
    /// The path under the storage prefix where objects live (kube-apiserver's layout).
    pub storage_path: String,
    /// Which rule `metadata.name` must satisfy.
    pub name_rule: NameRule,
    /// Create-only and never stored: a request is answered and forgotten (the
    /// authorization.k8s.io access reviews, authentication.k8s.io SelfSubjectReview).
    pub create_only: bool,
    /// Never stored: get and list are computed by the server on each read
    /// (componentstatuses).
    pub read_only: bool,
    /// The fields a `fieldSelector` may name besides `metadata.name` and
    /// `metadata.namespace` (kube's `GetAttrs` of each strategy; a CRD's `selectableFields`).
    pub selectable_fields: Vec<String>,
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
        } else if self.read_only {
            READ_ONLY_VERBS
        } else if self.group.is_empty() && self.resource == "namespaces" {
            NAMESPACE_VERBS
        } else {
            STANDARD_VERBS
        }
    }

    /// Its objects live in storage (and the read path caches them): neither a review nor a
    /// computed resource.
    pub fn is_stored(&self) -> bool {
        !self.create_only && !self.read_only
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

/// A resource's scope, as [`ResourceInfo::new`] takes it.
pub const NAMESPACED: bool = true;
pub const CLUSTER: bool = false;
/// The `all` category (`kubectl get all`).
pub const ALL: &[&str] = &["all"];

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

impl ResourceInfo {
    /// An ordinary resource stored under its plural name, with subdomain names and no
    /// subresources; the builder methods below say what differs.
    pub fn new(
        group: &str,
        version: &str,
        resource: &str,
        singular: &str,
        kind: &str,
        namespaced: bool,
    ) -> ResourceInfo {
        ResourceInfo {
            group: group.to_string(),
            version: version.to_string(),
            resource: resource.to_string(),
            singular: singular.to_string(),
            kind: kind.to_string(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            scale_subresource: false,
            subresources: Vec::new(),
            storage_path: resource.to_string(),
            name_rule: NameRule::Subdomain,
            create_only: false,
            read_only: false,
            selectable_fields: Vec::new(),
        }
    }
    /// The fields a field selector may name besides `metadata.name` and `metadata.namespace`.
    pub fn selectable(mut self, fields: &[&str]) -> Self {
        self.selectable_fields = owned(fields);
        self
    }
    pub fn short(mut self, names: &[&str]) -> Self {
        self.short_names = owned(names);
        self
    }
    pub fn categories(mut self, categories: &[&str]) -> Self {
        self.categories = owned(categories);
        self
    }
    pub fn status(mut self) -> Self {
        self.status_subresource = true;
        self
    }
    pub fn scale(mut self) -> Self {
        self.scale_subresource = true;
        self
    }
    /// Serves these subresources besides `status` and `scale`.
    pub fn subresources(mut self, subresources: &[Subresource]) -> Self {
        self.subresources = subresources.to_vec();
        self
    }
    /// Objects live under `path` instead of the plural name (kube's historical layout).
    pub fn stored_at(mut self, path: &str) -> Self {
        self.storage_path = path.to_string();
        self
    }
    pub fn names(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }
    /// Never stored: a create is answered and forgotten.
    pub fn create_only(mut self) -> Self {
        self.create_only = true;
        self
    }
    /// Never stored: the server computes its objects on each get and list.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_kube_apiserver_layout() {
        let nodes =
            ResourceInfo::new("", "v1", "nodes", "node", "Node", CLUSTER).stored_at("minions");
        assert_eq!(
            nodes.object_key("/registry", Some("ignored"), "n1"),
            "/registry/minions/n1"
        );
        let svc = ResourceInfo::new("", "v1", "services", "service", "Service", NAMESPACED)
            .stored_at("services/specs");
        assert_eq!(
            svc.object_key("/registry", Some("default"), "web"),
            "/registry/services/specs/default/web"
        );
        let pods = ResourceInfo::new("", "v1", "pods", "pod", "Pod", NAMESPACED);
        assert_eq!(pods.collection_prefix("/registry", None), "/registry/pods/");
        assert_eq!(
            pods.collection_prefix("/registry", Some("ns")),
            "/registry/pods/ns/"
        );
        assert_eq!(pods.api_version(), "v1");
        let deployments = ResourceInfo::new(
            "apps",
            "v1",
            "deployments",
            "deployment",
            "Deployment",
            NAMESPACED,
        );
        assert_eq!(deployments.api_version(), "apps/v1");
    }
}
