//! The CustomResourceDefinition controller: what kube-apiserver's apiextensions controllers
//! do for a CRD, on every kubecache replica from its own watch. It follows the CRDs through
//! the read path and, for each one:
//!
//! - accepts its names against the other CRDs of its group and writes `status.acceptedNames`
//!   with the `NamesAccepted` and `Established` conditions (kube's naming controller);
//! - once established, serves each served version as a resource ([`CustomResource`]
//!   strategies registered with [`Api::add_resource`]; discovery, OpenAPI and RBAC follow),
//!   again whenever its spec changes (`metadata.generation`);
//! - when it is deleted, stops serving it and deletes its objects.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kubecache_apiextensions::crd::{self, Crd};
use kubecache_apimachinery::registry::Resource;
use kubecache_apimachinery::strategy::custom::CustomResource;
use kubecache_cache::{Filter, ReadAt, WatchRequest, WatchStart};
use kubecache_core::request::Subresource;
use kubecache_core::status::ApiError;
use kubecache_core::storage::ListOptions;
use serde::Deserialize;
use serde_json::Value;

use crate::api::Api;
use crate::store::{Context, Store};

/// The field manager of the status this controller writes.
const MANAGER: &str = "kube-apiserver";
/// Pause before watching again after the watch failed or ended.
const RETRY: Duration = Duration::from_millis(200);
/// A watch ends after this long and is started again (a fresh list, nothing missed).
const WATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// One watch event as framed by the read path.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    object: Value,
}

/// What this replica serves for one CRD.
struct Served {
    generation: i64,
    /// `(group, version, plural)`, the storage version last.
    resources: Vec<(String, String, String)>,
}

/// What the controller keeps of a CRD between events: everything but its versions' schemas
/// (names, status, metadata: what accepting names needs), and that parsed once. The schemas
/// are most of a CRD; they are read from the event (or the status write) that serves it.
struct Known {
    light: Value,
    /// `light` parsed; `None` when it does not parse.
    crd: Option<Crd>,
    /// Read once: every event scans the CRDs by group.
    group: String,
    created: String,
    /// Its names are accepted as asked and it is established: nothing another CRD does can
    /// change its status (what `reconcile_status` checks first).
    settled: bool,
}

impl Known {
    fn new(object: &Value) -> Known {
        let light = without_schemas(object);
        let crd = Crd::parse(&light).ok();
        let settled = crd
            .as_ref()
            .is_some_and(|crd| crd.names == crd.status.accepted_names && crd.is_established());
        Known {
            group: group_of(&light),
            created: light["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            light,
            crd,
            settled,
        }
    }
}

/// A copy of a CRD without `spec.versions[*].schema`.
fn without_schemas(object: &Value) -> Value {
    let Some(fields) = object.as_object() else {
        return object.clone();
    };
    let mut out = serde_json::Map::with_capacity(fields.len());
    for (key, value) in fields {
        let value = match (key.as_str(), value.as_object()) {
            ("spec", Some(spec)) => {
                let mut light = serde_json::Map::with_capacity(spec.len());
                for (key, value) in spec {
                    let value = match (key.as_str(), value.as_array()) {
                        ("versions", Some(versions)) => Value::Array(
                            versions
                                .iter()
                                .map(|version| match version.as_object() {
                                    Some(version) => Value::Object(
                                        version
                                            .iter()
                                            .filter(|(k, _)| k.as_str() != "schema")
                                            .map(|(k, v)| (k.clone(), v.clone()))
                                            .collect(),
                                    ),
                                    None => version.clone(),
                                })
                                .collect(),
                        ),
                        _ => value.clone(),
                    };
                    light.insert(key.clone(), value);
                }
                Value::Object(light)
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

/// Runs for the server's lifetime.
pub async fn run(api: Arc<Api>) {
    let mut controller = Controller {
        api,
        known: HashMap::new(),
        served: HashMap::new(),
    };
    loop {
        controller.follow().await;
        tokio::time::sleep(RETRY).await;
    }
}

struct Controller {
    api: Arc<Api>,
    /// Every CRD the watch has shown, by name.
    known: HashMap<String, Known>,
    served: HashMap<String, Served>,
}

impl Controller {
    fn crds(&self) -> Arc<Resource> {
        self.api
            .registry
            .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .expect("CustomResourceDefinitions are built in")
    }

    /// One watch from a fresh list to its end. The listed CRDs are reconciled once the list
    /// is complete, oldest first (a name goes to the CRD that claimed it first, which only
    /// the whole list tells); CRDs gone while it was not watching are dropped then.
    async fn follow(&mut self) {
        let resource = self.crds();
        let request = WatchRequest {
            resource: resource.info().clone(),
            prefix: self.api.storage_prefix(&resource),
            filter: Arc::new(Filter::default()),
            start: WatchStart::Initial(ReadAt::Latest),
            initial_events_end: true,
            table: false,
            protobuf: false,
            bookmarks: true,
            bookmark_interval: Duration::from_secs(60),
            timeout: WATCH_TIMEOUT,
        };
        let mut stream = match self.api.reads.watch(request).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!("CRD watch: {e}");
                return;
            }
        };
        // The initial list, by name, until its end.
        let mut listed: Option<HashMap<String, Value>> = Some(HashMap::new());
        while let Some(frame) = stream.next().await {
            for line in frame.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let Ok(event) = serde_json::from_slice::<Event>(line) else {
                    continue;
                };
                let name = event.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                match event.kind.as_str() {
                    "ADDED" | "MODIFIED" => {
                        self.known.insert(name.clone(), Known::new(&event.object));
                        match listed.as_mut() {
                            Some(listed) => {
                                listed.insert(name, event.object);
                            }
                            None => self.reconcile_one(&name, &event.object).await,
                        }
                    }
                    "DELETED" => {
                        if let Some(listed) = listed.as_mut() {
                            listed.remove(&name);
                        }
                        let group = self
                            .known
                            .remove(&name)
                            .map(|known| known.group.clone())
                            .unwrap_or_else(|| group_of(&event.object));
                        self.forget(&name, &event.object).await;
                        self.reconcile_unsettled(&group, None).await;
                    }
                    "BOOKMARK" if is_initial_events_end(&event.object) => {
                        if let Some(listed) = listed.take() {
                            self.reconcile_listed(listed).await;
                        }
                    }
                    "ERROR" => return,
                    _ => {}
                }
            }
        }
    }

    /// The end of the initial list: CRDs known from before but not listed are gone; the
    /// listed ones are reconciled oldest first.
    async fn reconcile_listed(&mut self, listed: HashMap<String, Value>) {
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|name| !listed.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(known) = self.known.remove(&name) {
                self.forget(&name, &known.light).await;
            }
        }
        let mut names: Vec<&String> = listed.keys().collect();
        names.sort_by_key(|name| {
            (
                self.known.get(*name).map(|known| known.created.as_str()),
                *name,
            )
        });
        for name in names {
            if let Err(e) = self.reconcile(name, Some(&listed[name])).await {
                tracing::warn!(crd = %name, "CRD not reconciled: {e}");
            }
        }
    }

    /// An added or changed CRD: reconciled; when that changed its status (it claimed or let
    /// go of names), the CRDs of its group still waiting for names are reconciled too.
    async fn reconcile_one(&mut self, name: &str, object: &Value) {
        match self.reconcile(name, Some(object)).await {
            Ok(true) => {
                let group = group_of(object);
                self.reconcile_unsettled(&group, Some(name)).await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(crd = %name, "CRD not reconciled: {e}"),
        }
    }

    /// Names are accepted per group: the CRDs of `group` (but `except`) whose names are not
    /// settled are reconciled, oldest first (the first CRD to claim a name keeps it, as in
    /// kube). Settled ones cannot change.
    async fn reconcile_unsettled(&mut self, group: &str, except: Option<&str>) {
        let mut names: Vec<(String, String)> = self
            .known
            .iter()
            .filter(|(name, known)| {
                known.group == group && Some(name.as_str()) != except && !known.settled
            })
            .map(|(name, known)| (known.created.clone(), name.clone()))
            .collect();
        names.sort();
        for (_, name) in names {
            if let Err(e) = self.reconcile(&name, None).await {
                tracing::warn!(crd = %name, "CRD not reconciled: {e}");
            }
        }
    }

    /// Accepts the names of CRD `name` and writes its status if that changes it; serves it
    /// once established (again when its generation moves on). `object` is the CRD as the
    /// event had it (schemas included); without it a CRD is served only from the object its
    /// status write returns. Returns whether the status was written.
    async fn reconcile(&mut self, name: &str, object: Option<&Value>) -> Result<bool, ApiError> {
        let Some(known) = self.known.get(name) else {
            return Ok(false);
        };
        if known.light["metadata"]["deletionTimestamp"].is_string() {
            let light = known.light.clone();
            self.forget(name, &light).await;
            return Ok(false);
        }
        let Some(crd) = &known.crd else {
            return Err(ApiError::internal(format!(
                "stored CRD {name} does not parse"
            )));
        };
        let mut written = None;
        if !known.settled {
            let others: Vec<&Crd> = self
                .known
                .iter()
                .filter(|(other, k)| other.as_str() != name && k.group == crd.group)
                .filter_map(|(_, k)| k.crd.as_ref())
                .collect();
            let mut reconciled = known.light.clone();
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            if crd::names::reconcile_status(&mut reconciled, &others, &now) {
                written = Some(self.write_status(name, &others, &now).await?);
            }
        }
        if let Some(stored) = &written {
            // The names it holds now count for the rest of its group at once, not only when
            // the watch shows this write.
            self.known.insert(name.to_string(), Known::new(stored));
        }
        let changed = written.is_some();
        let known = &self.known[name];
        let established = known.crd.as_ref().is_some_and(Crd::is_established);
        let generation = known.light["metadata"]["generation"].as_i64().unwrap_or(0);
        if !established
            || self
                .served
                .get(name)
                .is_some_and(|s| s.generation == generation)
        {
            return Ok(changed);
        }
        let Some(object) = written.as_ref().or(object) else {
            // Served from its next event.
            return Ok(changed);
        };
        let parsed = Crd::parse(object).map_err(|causes| {
            ApiError::internal(format!("stored CRD {name} does not parse: {causes:?}"))
        })?;
        self.stop_serving(name).await;
        self.serve(name, &parsed, generation)?;
        Ok(changed)
    }

    /// Writes the reconciled status through the Store (a `/status` write: admission,
    /// managedFields and the resourceVersion as for any other); returns the stored CRD.
    async fn write_status(
        &self,
        name: &str,
        others: &[&Crd],
        now: &str,
    ) -> Result<Value, ApiError> {
        let resource = self.crds();
        let ctx = Context {
            subresource: Some(Subresource::Status),
            ..Context::internal(MANAGER)
        };
        Store::new(&self.api, &resource)
            .update(&ctx, None, name, |current| {
                let mut next = current.clone();
                crd::names::reconcile_status(&mut next, others, now);
                Ok(next)
            })
            .await
    }

    /// Registers each served version, the storage version first (the others convert through
    /// it).
    fn serve(&mut self, name: &str, crd: &Crd, generation: i64) -> Result<(), ApiError> {
        let storage = crd.storage_version().map(|v| v.name.clone());
        let mut versions: Vec<&str> = crd
            .versions
            .iter()
            .filter(|v| v.served || Some(&v.name) == storage.as_ref())
            .map(|v| v.name.as_str())
            .collect();
        versions.sort_by_key(|v| Some(v.to_string()) != storage);
        let mut resources = Vec::new();
        for version in versions {
            let strategy = CustomResource::new(crd, version).map_err(ApiError::internal)?;
            let added = self.api.add_resource(Arc::new(strategy))?;
            resources.push((
                added.group.to_string(),
                added.version.to_string(),
                added.resource.to_string(),
            ));
        }
        // Removed in reverse: the storage version goes last.
        resources.reverse();
        self.served.insert(
            name.to_string(),
            Served {
                generation,
                resources,
            },
        );
        Ok(())
    }

    async fn stop_serving(&mut self, name: &str) {
        if let Some(served) = self.served.remove(name) {
            for (group, version, plural) in served.resources {
                self.api.remove_resource(&group, &version, &plural).await;
            }
        }
    }

    /// A deleted CRD: no longer served, and its objects deleted from storage.
    async fn forget(&mut self, name: &str, crd: &Value) {
        self.stop_serving(name).await;
        let Ok(parsed) = Crd::parse(crd) else {
            return;
        };
        let prefix = format!(
            "{}/{}/{}/",
            self.api.storage_root, parsed.group, parsed.names.plural
        );
        if let Err(e) = self.delete_objects(&prefix).await {
            tracing::warn!(crd = %name, "objects of a deleted CRD left in storage: {e}");
        }
    }

    async fn delete_objects(&self, prefix: &str) -> Result<(), ApiError> {
        let page = self
            .api
            .backend
            .list(ListOptions {
                prefix: prefix.to_string(),
                ..ListOptions::default()
            })
            .await
            .map_err(kubecache_core::status::storage_error)?;
        for kv in page.kvs {
            // Already gone (another replica deleted it) is fine.
            let _ = self.api.backend.delete(&kv.key, None).await;
        }
        Ok(())
    }
}

fn group_of(crd: &Value) -> String {
    crd["spec"]["group"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn is_initial_events_end(object: &Value) -> bool {
    object["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"
}
