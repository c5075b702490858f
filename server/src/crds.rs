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
    known: HashMap<String, Value>,
    served: HashMap<String, Served>,
}

impl Controller {
    fn crds(&self) -> Arc<Resource> {
        self.api
            .registry
            .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .expect("CustomResourceDefinitions are built in")
    }

    /// One watch from a fresh list to its end; CRDs gone while it was not watching are
    /// dropped at the end of the initial list.
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
        let mut listed: Option<Vec<String>> = Some(Vec::new());
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
            self.forget(name, &object).await;
            return Ok(());
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
