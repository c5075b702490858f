//! The resources served at the moment: each one's identity ([`ResourceInfo`]) with the
//! [`Strategy`] that says what is kind-specific about it.
//!
//! The set changes while the server runs (a custom resource comes with its definition and
//! goes with it). Readers never wait: a lookup loads the current [`Snapshot`] (an `ArcSwap`),
//! and a change builds the next snapshot beside it and swaps it in, so a request keeps the
//! [`Resource`] it resolved for as long as it runs even if the resource is removed meanwhile.
//! Changes are serialized by a mutex and counted ([`Registry::generation`]): discovery and the
//! OpenAPI documents are rebuilt when the generation they were built at is no longer current.
//!
//! The registry knows nothing of caches or storage: the server's `Api::add_resource` and
//! `Api::remove_resource` keep the read path in step with it.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::ArcSwap;
use kubecache_apiextensions::crd::compare_kube_aware_versions;
use kubecache_core::registry::ResourceInfo;

use crate::strategy::{self, Strategy};

/// One served resource at one group/version: its identity and its strategy. Dereferences to
/// its [`ResourceInfo`].
pub struct Resource {
    info: Arc<ResourceInfo>,
    strategy: Arc<dyn Strategy>,
    /// The resource whose shape objects are stored in, when not this one (its strategy's
    /// storage version, resolved when it was registered).
    stored: Option<Arc<Resource>>,
}

impl Resource {
    /// `strategy`'s resource, its storage version looked up in `served`.
    fn new(strategy: Arc<dyn Strategy>, served: &Snapshot) -> Result<Arc<Resource>, RegistryError> {
        let info = strategy.info();
        let stored = match strategy.storage_version() {
            None => None,
            Some((group, version, name)) => Some(
                served
                    .lookup(group, version, name)
                    .cloned()
                    .ok_or_else(|| {
                        RegistryError::Invalid(
                            format!("{}/{}", info.api_version(), info.resource),
                            format!("its storage version {group}/{version} {name} is not served"),
                        )
                    })?,
            ),
        };
        Ok(Arc::new(Resource {
            info: Arc::new(info),
            strategy,
            stored,
        }))
    }

    /// A resource the registry does not know (any more), served without a strategy of its
    /// own ([`strategy::Untyped`]): what the read path falls back to for an event of a
    /// resource removed while it was in flight.
    pub fn untyped(info: Arc<ResourceInfo>) -> Arc<Resource> {
        Arc::new(Resource {
            info,
            strategy: Arc::new(strategy::Untyped),
            stored: None,
        })
    }

    /// The resource whose shape objects are stored in: itself, or its storage version
    /// (events.k8s.io/v1 events are stored as core/v1).
    pub fn stored(&self) -> &Resource {
        self.stored.as_deref().unwrap_or(self)
    }

    /// Objects are stored in another resource's shape and converted.
    pub fn converts(&self) -> bool {
        self.stored.is_some()
    }

    /// The identity, shared with the read path (which knows resources by it).
    pub fn info(&self) -> &Arc<ResourceInfo> {
        &self.info
    }

    pub fn strategy(&self) -> &dyn Strategy {
        &*self.strategy
    }

    /// Whether `info` names this resource (same group, version and plural name).
    pub fn is(&self, info: &ResourceInfo) -> bool {
        self.info.group == info.group
            && self.info.version == info.version
            && self.info.resource == info.resource
    }
}

impl Deref for Resource {
    type Target = ResourceInfo;

    fn deref(&self) -> &ResourceInfo {
        &self.info
    }
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Resource({}/{})",
            self.info.api_version(),
            self.info.resource
        )
    }
}

/// Why a resource cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("{0} is served already")]
    Exists(String),
    #[error("{0}: {1}")]
    Invalid(String, String),
}

type ByName = HashMap<String, Arc<Resource>>;

/// The resources served at one moment. Lookups go through nested maps keyed by group, version
/// and plural name, so they borrow the request's strings instead of building a key.
#[derive(Default)]
pub struct Snapshot {
    /// Every resource, in the order discovery lists them (the order they were added).
    resources: Vec<Arc<Resource>>,
    index: HashMap<String, HashMap<String, ByName>>,
    generation: u64,
}

impl Snapshot {
    fn new(resources: Vec<Arc<Resource>>, generation: u64) -> Snapshot {
        let mut index: HashMap<String, HashMap<String, ByName>> = HashMap::new();
        for r in &resources {
            index
                .entry(r.group.clone())
                .or_default()
                .entry(r.version.clone())
                .or_default()
                .insert(r.resource.clone(), r.clone());
        }
        Snapshot {
            resources,
            index,
            generation,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.resources.iter()
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// The resource at `group`/`version` named `resource` (plural), if served.
    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<&Arc<Resource>> {
        self.index.get(group)?.get(version)?.get(resource)
    }

    /// The resource whose kind is `kind` at `group`/`version`.
    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<&Arc<Resource>> {
        self.index
            .get(group)?
            .get(version)?
            .values()
            .find(|r| r.kind == kind)
    }

    /// The groups served, in discovery order (core first, then as added), each with its
    /// versions most preferred first (kube's version priority: a CRD group that gained `v1`
    /// after `v1alpha1` still prefers `v1`).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.resources {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => {
                    versions.push(r.version.clone())
                }
                Some(_) => {}
                None => groups.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| compare_kube_aware_versions(b, a));
        }
        groups
    }

    /// The resources served at one group/version, in discovery order.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Resource>> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }

    /// Every served resource stored at `storage_path` (a storage path can back several
    /// group-versions, e.g. core/v1 and events.k8s.io/v1 events), in the order added.
    pub fn sharing_storage<'a>(
        &'a self,
        storage_path: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Resource>> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.storage_path == storage_path)
    }

    /// Bumped by every change.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// The resources served, changing at run time.
pub struct Registry {
    current: ArcSwap<Snapshot>,
    /// Serializes changes (each builds on the snapshot before it).
    changing: parking_lot::Mutex<()>,
}

impl Registry {
    /// The built-in resources (their strategies, [`strategy::builtin`]).
    pub fn builtin() -> Registry {
        let registry = Registry {
            current: ArcSwap::from_pointee(Snapshot::default()),
            changing: parking_lot::Mutex::new(()),
        };
        for strategy in strategy::builtin() {
            registry
                .add(strategy)
                .expect("the built-in resources are consistent");
        }
        // Serving starts at generation 0.
        let resources = registry.snapshot().resources.clone();
        registry
            .current
            .store(Arc::new(Snapshot::new(resources, 0)));
        registry
    }

    /// What is served now. Hold it for the duration of one decision, not longer.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<Arc<Resource>> {
        self.current
            .load()
            .lookup(group, version, resource)
            .cloned()
    }

    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<Resource>> {
        self.current.load().by_kind(group, version, kind).cloned()
    }

    /// The registered resource `info` names, when it is still served.
    pub fn resolve(&self, info: &ResourceInfo) -> Option<Arc<Resource>> {
        self.lookup(&info.group, &info.version, &info.resource)
    }

    pub fn generation(&self) -> u64 {
        self.current.load().generation
    }

    /// Serves one more resource. Fails when its group/version/resource is served already,
    /// or when it would share a storage path with resources of another kind.
    pub fn add(&self, strategy: Arc<dyn Strategy>) -> Result<Arc<Resource>, RegistryError> {
        let _changing = self.changing.lock();
        let current = self.current.load_full();
        let resource = Resource::new(strategy, &current)?;
        let name = format!("{}/{}", resource.api_version(), resource.resource);
        if current
            .lookup(&resource.group, &resource.version, &resource.resource)
            .is_some()
        {
            return Err(RegistryError::Exists(name));
        }
        if let Some(other) = current
            .sharing_storage(&resource.storage_path)
            .find(|o| o.kind != resource.kind && o.is_stored())
        {
            return Err(RegistryError::Invalid(
                name,
                format!(
                    "its storage path {} holds {} objects",
                    &resource.storage_path, other.kind
                ),
            ));
        }
        let mut resources = current.resources.clone();
        resources.push(resource.clone());
        self.current
            .store(Arc::new(Snapshot::new(resources, current.generation + 1)));
        Ok(resource)
    }

    /// Stops serving a resource; returns it, or `None` when it was not served.
    pub fn remove(&self, group: &str, version: &str, resource: &str) -> Option<Arc<Resource>> {
        let _changing = self.changing.lock();
        let current = self.current.load_full();
        let removed = current.lookup(group, version, resource)?.clone();
        let resources = current
            .resources
            .iter()
            .filter(|r| !Arc::ptr_eq(r, &removed))
            .cloned()
            .collect();
        self.current
            .store(Arc::new(Snapshot::new(resources, current.generation + 1)));
        Some(removed)
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.current.load();
        f.debug_struct("Registry")
            .field("resources", &snapshot.len())
            .field("generation", &snapshot.generation)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::schemars::SchemaGenerator;
    use kubecache_core::registry::NAMESPACED;
    use serde_json::Value;

    use super::*;
    use crate::openapi::schemas::Kind;

    /// A resource no built-in has.
    struct Widgets;

    impl Strategy for Widgets {
        fn info(&self) -> ResourceInfo {
            ResourceInfo::new(
                "example.com",
                "v1",
                "widgets",
                "widget",
                "Widget",
                NAMESPACED,
            )
        }
        fn round_trip(&self, object: &Value) -> Result<Value, serde_json::Error> {
            Ok(object.clone())
        }
        fn openapi_kind(&self, _: &mut SchemaGenerator) -> Option<Kind> {
            None
        }
    }

    /// Widgets at one version of example.com.
    struct Versioned(&'static str);

    impl Strategy for Versioned {
        fn info(&self) -> ResourceInfo {
            ResourceInfo::new(
                "example.com",
                self.0,
                "widgets",
                "widget",
                "Widget",
                NAMESPACED,
            )
        }
        fn round_trip(&self, object: &Value) -> Result<Value, serde_json::Error> {
            Ok(object.clone())
        }
        fn openapi_kind(&self, _: &mut SchemaGenerator) -> Option<Kind> {
            None
        }
    }

    #[test]
    fn every_builtin_is_unique_per_group_version() {
        let registry = Registry::builtin();
        let snapshot = registry.snapshot();
        for r in snapshot.iter() {
            let same = snapshot.iter().filter(|o| {
                o.group == r.group && o.version == r.version && o.resource == r.resource
            });
            assert_eq!(same.count(), 1, "{}/{}", r.group, r.resource);
            assert!(Arc::ptr_eq(
                snapshot.lookup(&r.group, &r.version, &r.resource).unwrap(),
                r
            ));
        }
    }

    #[test]
    fn events_share_storage_across_groups() {
        let snapshot = Registry::builtin().snapshot();
        let core = snapshot.lookup("", "v1", "events").unwrap();
        let new = snapshot.lookup("events.k8s.io", "v1", "events").unwrap();
        assert!(core.shares_storage_with(new));
        assert_eq!(snapshot.sharing_storage("events").count(), 2);
        assert!(std::ptr::eq(new.stored(), &**core));
        assert!(std::ptr::eq(core.stored(), &**core));
    }

    #[test]
    fn group_versions_most_preferred_first_whatever_the_order_added() {
        let registry = Registry::builtin();
        for version in ["v1alpha1", "v1", "v2beta1"] {
            registry.add(Arc::new(Versioned(version))).unwrap();
        }
        let groups = registry.snapshot().groups();
        let (_, versions) = groups.iter().find(|(g, _)| g == "example.com").unwrap();
        assert_eq!(versions, &["v1", "v2beta1", "v1alpha1"]);
    }

    #[test]
    fn groups_list_core_first() {
        let groups = Registry::builtin().snapshot().groups();
        assert_eq!(groups[0], ("".to_string(), vec!["v1".to_string()]));
        assert!(groups.iter().any(|(g, _)| g == "apps"));
    }

    #[test]
    fn resources_come_and_go_and_snapshots_taken_before_keep_theirs() {
        let registry = Registry::builtin();
        let before = registry.snapshot();
        let added = registry.add(Arc::new(Widgets)).unwrap();
        assert_eq!(registry.generation(), before.generation() + 1);
        assert!(Arc::ptr_eq(
            &registry.lookup("example.com", "v1", "widgets").unwrap(),
            &added
        ));
        assert!(before.lookup("example.com", "v1", "widgets").is_none());
        let again = registry.add(Arc::new(Widgets));
        assert_eq!(
            again.unwrap_err(),
            RegistryError::Exists("example.com/v1/widgets".into())
        );
        let during = registry.snapshot();
        let removed = registry.remove("example.com", "v1", "widgets").unwrap();
        assert!(Arc::ptr_eq(&removed, &added));
        assert!(registry.lookup("example.com", "v1", "widgets").is_none());
        assert!(during.lookup("example.com", "v1", "widgets").is_some());
        assert!(registry.remove("example.com", "v1", "widgets").is_none());
        assert_eq!(registry.generation(), before.generation() + 2);
    }
}
