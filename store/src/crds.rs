//! The CustomResourceDefinition controller: what kube-apiserver's apiextensions controllers
//! do for a CRD, on every kubecache replica from its own watch. It follows the CRDs through
//! the read path and, for each one:
//!
//! - accepts its names against the other CRDs of its group and writes `status.acceptedNames`
//!   with the `NamesAccepted` and `Established` conditions (kube's naming controller);
//! - once established, serves each served version as a resource ([`CustomResource`]
//!   strategies registered with [`resources::add`]; discovery, OpenAPI and RBAC follow),
//!   again whenever its spec changes (`metadata.generation`);
//! - when it is deleted (marked with the cleanup finalizer by its strategy), deletes its
//!   objects through the Store, then removes the finalizer; once it is gone, stops serving
//!   it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kubecache_apiextensions::crd::{self, Crd};
use kubecache_apimachinery::registry::Resource;
use kubecache_apimachinery::strategy::custom::{Converter, CustomResource};
use kubecache_cache::{Filter, ReadAt, WatchRequest, WatchStart};
use kubecache_core::request::Subresource;
use kubecache_core::status::ApiError;
use kubecache_core::storage::ListOptions;
use serde::Deserialize;
use serde_json::Value;

use crate::{Context, Deleted, Preconditions, Store, Writer, resources};

/// The field manager of the status this controller writes.
const MANAGER: &str = "kube-apiserver";
/// Pause before watching again after the watch failed or ended.
const RETRY: Duration = Duration::from_millis(200);
/// How often CRDs whose objects wait for their finalizers are looked at again.
const PENDING_RETRY: Duration = Duration::from_secs(1);
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
    /// Shared with the resources' strategies: set once the CRD is being deleted, so that they
    /// refuse creates.
    terminating: Arc<AtomicBool>,
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
    generation: i64,
    /// Its names are accepted as asked and it is established: nothing another CRD does can
    /// change its status (what `reconcile_status` checks first).
    settled: bool,
    /// The whole CRD (schemas included) while it is not settled: another CRD's event can
    /// establish it, and it is served before that is written.
    full: Option<Value>,
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
            generation: light["metadata"]["generation"].as_i64().unwrap_or(0),
            full: (!settled).then(|| object.clone()),
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
pub async fn run<C: Context + 'static>(context: Arc<C>) {
    let mut controller = Controller {
        context,
        known: HashMap::new(),
        served: HashMap::new(),
        pending: HashSet::new(),
    };
    loop {
        controller.follow().await;
        tokio::time::sleep(RETRY).await;
    }
}

struct Controller<C> {
    context: Arc<C>,
    /// Every CRD the watch has shown, by name.
    known: HashMap<String, Known>,
    served: HashMap<String, Served>,
    /// Deleted CRDs whose objects are waiting for their own finalizers.
    pending: HashSet<String>,
}

impl<C: Context + 'static> Controller<C> {
    fn crds(&self) -> Arc<Resource> {
        self.context
            .registry()
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
            prefix: self.context.storage_prefix(&resource),
            filter: Arc::new(Filter::default()),
            start: WatchStart::Initial(ReadAt::Latest),
            initial_events_end: true,
            table: false,
            protobuf: false,
            bookmarks: true,
            bookmark_interval: Duration::from_secs(60),
            timeout: WATCH_TIMEOUT,
        };
        let mut stream = match self.context.reads().watch(request).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!("CRD watch: {e}");
                return;
            }
        };
        // The initial list, by name, until its end.
        let mut listed: Option<HashMap<String, Value>> = Some(HashMap::new());
        let mut retry = tokio::time::interval(PENDING_RETRY);
        loop {
            let frame = tokio::select! {
                frame = stream.next() => match frame {
                    Some(frame) => frame,
                    None => return,
                },
                _ = retry.tick() => {
                    self.retry_pending().await;
                    continue;
                }
            };
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
                            .map(|known| known.group)
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

    /// Accepts the names of CRD `name`, serves it once established (again when its
    /// generation moves on), then writes its status if accepting changed it: served before
    /// `Established` is written, so a client that sees the condition may use the resource at
    /// once (kube's handler serves every established CRD), and building the strategy of a
    /// big schema takes a while. `object` is the CRD as the event had it (schemas included);
    /// without it, the whole CRD kept while it is not settled. A CRD being deleted is
    /// finalized instead. Returns whether the status was written.
    async fn reconcile(&mut self, name: &str, object: Option<&Value>) -> Result<bool, ApiError> {
        let Some(known) = self.known.get(name) else {
            return Ok(false);
        };
        if known.light["metadata"]["deletionTimestamp"].is_string() {
            let light = known.light.clone();
            self.finalize(name, &light).await?;
            return Ok(false);
        }
        let Some(crd) = &known.crd else {
            return Err(ApiError::internal(format!(
                "stored CRD {name} does not parse"
            )));
        };
        let generation = known.generation;
        let current = self
            .served
            .get(name)
            .is_some_and(|s| s.generation == generation);
        if known.settled && current {
            return Ok(false);
        }
        let others: Vec<&Crd> = if known.settled {
            Vec::new()
        } else {
            self.known
                .iter()
                .filter(|(other, k)| other.as_str() != name && k.group == known.group)
                .filter_map(|(_, k)| k.crd.as_ref())
                .collect()
        };
        let mut reconciled = known.light.clone();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let changed =
            !known.settled && crd::names::reconcile_status(&mut reconciled, &others, &now);
        let established = if changed {
            Crd::parse(&reconciled).is_ok_and(|crd| crd.is_established())
        } else {
            crd.is_established()
        };
        let mut served = Ok(());
        if established && !current {
            match object.or(known.full.as_ref()) {
                Some(full) => {
                    // The whole CRD with the status as reconciled.
                    let mut full = full.clone();
                    full["status"] = reconciled["status"].clone();
                    let parsed = Crd::parse(&full).map_err(|causes| {
                        ApiError::internal(format!("stored CRD {name} does not parse: {causes:?}"))
                    })?;
                    if let Some(old) = self.served.remove(name) {
                        self.unserve(old).await;
                    }
                    served = self.serve(&parsed, generation).map(|served| {
                        self.served.insert(name.to_string(), served);
                    });
                }
                // Not reached: a CRD is reconciled without its event only while it is not
                // settled, and then the whole CRD is kept. Served from its next event.
                None => tracing::debug!(crd = %name, "CRD served from its next event"),
            }
        }
        if changed {
            let stored = self.write_status(name, &others, &now).await?;
            // The names it holds now count for the rest of its group at once, not only when
            // the watch shows this write.
            self.known.insert(name.to_string(), Known::new(&stored));
        }
        match served {
            Ok(()) => Ok(changed),
            Err(e) if changed => {
                // The status was written: the group's other CRDs still get their turn.
                tracing::warn!(crd = %name, "CRD not served: {e}");
                Ok(true)
            }
            Err(e) => Err(e),
        }
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
        let ctx = Writer {
            subresource: Some(Subresource::Status),
            ..Writer::internal(MANAGER)
        };
        Store::new(self.context.as_ref(), &resource)
            .update(&ctx, None, name, |current| {
                let mut next = current.clone();
                crd::names::reconcile_status(&mut next, others, now);
                Ok(next)
            })
            .await
    }

    /// Registers each served version, the storage version first (the others convert through
    /// it).
    fn serve(&self, crd: &Crd, generation: i64) -> Result<Served, ApiError> {
        let terminating = Arc::new(AtomicBool::new(false));
        let storage = crd.storage_version().map(|v| v.name.clone());
        let mut versions: Vec<&str> = crd
            .versions
            .iter()
            .filter(|v| v.served || Some(&v.name) == storage.as_ref())
            .map(|v| v.name.as_str())
            .collect();
        versions.sort_by_key(|v| Some(v.to_string()) != storage);
        let converter = crate::conversion::Webhook::of(self.context.clone(), crd)
            .map(|webhook| Arc::new(webhook) as Arc<dyn Converter>);
        let mut resources = Vec::new();
        for version in versions {
            let mut strategy = CustomResource::new(crd, version)
                .map_err(ApiError::internal)?
                .with_terminating(terminating.clone());
            if let Some(converter) = &converter {
                strategy = strategy.with_converter(converter.clone());
            }
            let added = resources::add(self.context.as_ref(), Arc::new(strategy))?;
            resources.push((
                added.group.to_string(),
                added.version.to_string(),
                added.resource.to_string(),
            ));
        }
        // Removed in reverse: the storage version goes last.
        resources.reverse();
        Ok(Served {
            generation,
            resources,
            terminating,
        })
    }

    async fn stop_serving(&mut self, name: &str) {
        if let Some(served) = self.served.remove(name) {
            self.unserve(served).await;
        }
    }

    async fn unserve(&self, served: Served) {
        for (group, version, plural) in served.resources {
            resources::remove(self.context.as_ref(), &group, &version, &plural).await;
        }
    }

    /// A CRD being deleted: its objects are deleted through the Store (their own finalizers
    /// and watchers see it as for any delete), then the cleanup finalizer is removed and the
    /// CRD goes. Objects that wait for their finalizers keep it pending; [`run`] tries again.
    async fn finalize(&mut self, name: &str, object: &Value) -> Result<(), ApiError> {
        let has_finalizer = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == crd::CLEANUP_FINALIZER));
        if !has_finalizer {
            return Ok(());
        }
        let crd = Crd::parse(object).map_err(|causes| {
            ApiError::internal(format!("stored CRD {name} does not parse: {causes:?}"))
        })?;
        // New creates are refused from here on (one already past the check that lands after
        // the listing below goes with the CRD's keys in `forget`).
        if let Some(served) = self.served.get(name) {
            served.terminating.store(true, Ordering::Release);
        }
        let remaining = match self.stored_resource(&crd) {
            Some(resource) => self.delete_through_store(&resource).await?,
            // Never served (names not accepted): nothing can have been written.
            None => 0,
        };
        if remaining > 0 {
            self.pending.insert(name.to_string());
            return Ok(());
        }
        self.pending.remove(name);
        let resource = self.crds();
        Store::new(self.context.as_ref(), &resource)
            .update(&Writer::internal(MANAGER), None, name, |current| {
                let mut next = current.clone();
                if let Some(finalizers) = next["metadata"]["finalizers"].as_array_mut() {
                    finalizers.retain(|f| f != crd::CLEANUP_FINALIZER);
                }
                Ok(next)
            })
            .await
            .map(|_| ())
    }

    /// The served resource of the CRD's storage version.
    fn stored_resource(&self, crd: &Crd) -> Option<Arc<Resource>> {
        let version = crd.storage_version()?;
        let plural = &crd.status.accepted_names.plural;
        self.context
            .registry()
            .lookup(&crd.group, &version.name, plural)
    }

    /// Deletes every stored object of `resource`; how many are still there (waiting for
    /// their finalizers).
    async fn delete_through_store(&self, resource: &Arc<Resource>) -> Result<usize, ApiError> {
        let page = self
            .context
            .backend()
            .list(ListOptions {
                prefix: self.context.storage_prefix(resource),
                ..ListOptions::default()
            })
            .await
            .map_err(kubecache_core::status::storage_error)?;
        let store = Store::new(self.context.as_ref(), resource);
        let writer = Writer::internal(MANAGER);
        let mut remaining = 0;
        for kv in page.kvs {
            let Ok(object) = serde_json::from_slice::<Value>(&kv.value) else {
                // Not an object (foreign data): removed as the prefix's remains are.
                let _ = self.context.backend().delete(&kv.key, None).await;
                continue;
            };
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let namespace = object["metadata"]["namespace"].as_str();
            match store
                .delete(&writer, namespace, name, &Preconditions::default())
                .await
            {
                Ok(Deleted::Removed(_)) => {}
                Ok(Deleted::Marked(_)) => remaining += 1,
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(remaining)
    }

    /// Tries again to finish the CRDs whose objects were waiting for their finalizers.
    async fn retry_pending(&mut self) {
        let pending: Vec<String> = self.pending.iter().cloned().collect();
        for name in pending {
            let Some(object) = self.known.get(&name).map(|known| known.light.clone()) else {
                self.pending.remove(&name);
                continue;
            };
            if let Err(e) = self.finalize(&name, &object).await {
                tracing::warn!(crd = %name, "CRD cleanup will retry: {e}");
            }
        }
    }

    /// A deleted CRD: no longer served, and what is left of its objects removed from storage.
    async fn forget(&mut self, name: &str, crd: &Value) {
        self.stop_serving(name).await;
        let Ok(parsed) = Crd::parse(crd) else {
            return;
        };
        let prefix = format!(
            "{}/{}/{}/",
            self.context.storage_root(),
            parsed.group,
            parsed.names.plural
        );
        if let Err(e) = self.delete_objects(&prefix).await {
            tracing::warn!(crd = %name, "objects of a deleted CRD left in storage: {e}");
        }
    }

    async fn delete_objects(&self, prefix: &str) -> Result<(), ApiError> {
        let page = self
            .context
            .backend()
            .list(ListOptions {
                prefix: prefix.to_string(),
                ..ListOptions::default()
            })
            .await
            .map_err(kubecache_core::status::storage_error)?;
        for kv in page.kvs {
            // Already gone (another replica deleted it) is fine.
            let _ = self.context.backend().delete(&kv.key, None).await;
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
