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
    known: HashMap<String, Value>,
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

    /// One watch from a fresh list to its end; CRDs gone while it was not watching are
    /// dropped at the end of the initial list.
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
        let mut listed: Option<Vec<String>> = Some(Vec::new());
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
                        if let Some(listed) = listed.as_mut() {
                            listed.push(name.clone());
                        }
                        self.known.insert(name.clone(), event.object);
                        self.reconcile_group_of(&name).await;
                    }
                    "DELETED" => {
                        self.known.remove(&name);
                        self.forget(&name, &event.object).await;
                        self.reconcile_group(&group_of(&event.object)).await;
                    }
                    "BOOKMARK" if is_initial_events_end(&event.object) => {
                        if let Some(listed) = listed.take() {
                            let gone: Vec<(String, Value)> = self
                                .known
                                .iter()
                                .filter(|(name, _)| !listed.contains(name))
                                .map(|(name, crd)| (name.clone(), crd.clone()))
                                .collect();
                            for (name, crd) in gone {
                                self.known.remove(&name);
                                self.forget(&name, &crd).await;
                            }
                        }
                    }
                    "ERROR" => return,
                    _ => {}
                }
            }
        }
    }

    /// Names are accepted per group: a change to one CRD can settle another's conflict.
    async fn reconcile_group_of(&mut self, name: &str) {
        let Some(object) = self.known.get(name) else {
            return;
        };
        let group = group_of(object);
        self.reconcile_group(&group).await;
    }

    async fn reconcile_group(&mut self, group: &str) {
        let mut names: Vec<String> = self
            .known
            .iter()
            .filter(|(_, crd)| group_of(crd) == group)
            .map(|(name, _)| name.clone())
            .collect();
        // Oldest first: the first CRD to claim a name keeps it, as in kube.
        names.sort_by_key(|name| {
            let crd = &self.known[name];
            (
                crd["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name.clone(),
            )
        });
        for name in names {
            if let Err(e) = self.reconcile(&name).await {
                tracing::warn!(crd = %name, "CRD not reconciled: {e}");
            }
        }
    }

    async fn reconcile(&mut self, name: &str) -> Result<(), ApiError> {
        let Some(object) = self.known.get(name).cloned() else {
            return Ok(());
        };
        if object["metadata"]["deletionTimestamp"].is_string() {
            return self.finalize(name, &object).await;
        }
        let group = group_of(&object);
        let others: Vec<Crd> = self
            .known
            .iter()
            .filter(|(other, crd)| other.as_str() != name && group_of(crd) == group)
            .filter_map(|(_, crd)| Crd::parse(crd).ok())
            .collect();
        let others: Vec<&Crd> = others.iter().collect();
        let mut reconciled = object.clone();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let changed = crd::names::reconcile_status(&mut reconciled, &others, &now);
        let parsed = Crd::parse(&reconciled).map_err(|causes| {
            ApiError::internal(format!("stored CRD {name} does not parse: {causes:?}"))
        })?;
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
        // Served before `Established` is written: a client that sees the condition may use
        // the resource at once (kube's handler serves every established CRD), and building
        // the strategy of a big schema takes a while.
        let mut served = Ok(());
        let current = self
            .served
            .get(name)
            .is_some_and(|s| s.generation == generation);
        if parsed.is_established() && !current {
            self.stop_serving(name).await;
            served = self.serve(name, &parsed, generation);
        }
        if changed {
            self.write_status(name, &others, &now).await?;
        }
        served
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
    fn serve(&mut self, name: &str, crd: &Crd, generation: i64) -> Result<(), ApiError> {
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
            let mut strategy = CustomResource::new(crd, version).map_err(ApiError::internal)?;
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
                resources::remove(self.context.as_ref(), &group, &version, &plural).await;
            }
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
            let Some(object) = self.known.get(&name).cloned() else {
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
