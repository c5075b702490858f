//! A resource served in three versions, added at run time (`Api::add_resource`, one strategy
//! per version, all sharing one storage path; the first is the storage version): written in
//! one version, read and watched in every one (JSON and Table), each event converted once per
//! view however many watch it, and every conversion done off the watch cache's shard threads.
//!
//! The versions rename fields, so a conversion that did not happen (or went the wrong way)
//! shows:
//!
//! | field | v1 (stored) | v2 | v3 |
//! |---|---|---|---|
//! | size | `spec.size` | `spec.dimension` | `spec.extent` |
//! | colour | `spec.colour` | `spec.color` | `spec.hue` |
//!
//! The proof that conversion runs off the shards is by thread name, not by time: the watch
//! cache's shard threads are `kubecache-shard-N` (`cache/src/watch_cache/mod.rs`,
//! `Shard::start`), and the strategies record the thread of every conversion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::schemars::SchemaGenerator;
use kubecache_apimachinery::openapi::schemas::Kind;
use kubecache_apimachinery::strategy::Strategy;
use kubecache_core::registry::{NAMESPACED, ResourceInfo};
use kubecache_core::status::ApiError;
use kubecache_server::api::Api;
use kubecache_server::server::ReadConfig;
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use kubecache_storage::testing::TestEtcd;
use serde_json::{Value, json};

use crate::support::server::{TestServer, WatchStream};

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// The prefix of the watch cache's shard threads' names.
const SHARD_THREAD: &str = "kubecache-shard-";

/// Each version's names for (size, colour).
fn field_names(version: &str) -> (&'static str, &'static str) {
    match version {
        "v1" => ("size", "colour"),
        "v2" => ("dimension", "color"),
        "v3" => ("extent", "hue"),
        other => panic!("no gadgets {other}"),
    }
}

/// `object`'s spec renamed from `from`'s names to `to`'s, in `to`'s apiVersion.
fn renamed(mut object: Value, from: &str, to: &str) -> Value {
    let ((size, colour), (new_size, new_colour)) = (field_names(from), field_names(to));
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        for (old, new) in [(size, new_size), (colour, new_colour)] {
            if let Some(value) = spec.remove(old) {
                spec.insert(new.to_string(), value);
            }
        }
    }
    object["apiVersion"] = json!(format!("example.com/{to}"));
    object
}

/// One conversion a strategy made.
#[derive(Debug, Clone)]
struct Conversion {
    /// The thread it ran on.
    thread: String,
    /// The version converted to ("v1" for a write into storage).
    to: &'static str,
    /// The converted object's resourceVersion (empty on writes).
    resource_version: String,
    /// Through `convert_to_served`: the read path (GET, LIST, watch events), and the Store
    /// (the object an update or delete of a converting version starts from).
    read: bool,
}

#[derive(Default)]
struct Conversions(Mutex<Vec<Conversion>>);

impl Conversions {
    fn record(&self, to: &'static str, object: &Value, read: bool) {
        let thread = std::thread::current();
        self.0.lock().unwrap().push(Conversion {
            thread: thread.name().unwrap_or("<unnamed>").to_string(),
            to,
            resource_version: object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            read,
        });
    }

    fn all(&self) -> Vec<Conversion> {
        self.0.lock().unwrap().clone()
    }

    /// Read-path conversions so far, by (version, resourceVersion).
    fn reads(&self) -> HashMap<(&'static str, String), usize> {
        let mut reads = HashMap::new();
        for c in self.all().into_iter().filter(|c| c.read) {
            *reads.entry((c.to, c.resource_version)).or_default() += 1;
        }
        reads
    }
}

/// `example.com/<version>` gadgets; v1 is the storage version, v2 and v3 convert.
struct Gadgets {
    version: &'static str,
    conversions: Arc<Conversions>,
}

impl Gadgets {
    fn served(&self, object: Value) -> Value {
        renamed(object, "v1", self.version)
    }
}

impl Strategy for Gadgets {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "example.com",
            self.version,
            "gadgets",
            "gadget",
            "Gadget",
            NAMESPACED,
        )
        .stored_at("example.com/gadgets")
    }
    fn round_trip(&self, object: &Value) -> Result<Value, serde_json::Error> {
        Ok(object.clone())
    }
    fn openapi_kind(&self, _: &mut SchemaGenerator) -> Option<Kind> {
        None
    }
    fn storage_version(&self) -> Option<(&str, &str, &str)> {
        (self.version != "v1").then_some(("example.com", "v1", "gadgets"))
    }
    fn to_storage(&self, object: Value) -> Value {
        self.conversions.record("v1", &object, false);
        renamed(object, self.version, "v1")
    }
    fn to_served(&self, object: Value) -> Value {
        self.conversions.record(self.version, &object, false);
        self.served(object)
    }
    fn convert_to_served(
        &self,
        object: Value,
    ) -> futures::future::BoxFuture<'_, Result<Value, ApiError>> {
        self.conversions.record(self.version, &object, true);
        Box::pin(async move {
            // Conversion may wait (a webhook would): let the task that converts be suspended.
            tokio::task::yield_now().await;
            Ok(self.served(object))
        })
    }
}

fn collection(version: &str) -> String {
    format!("/apis/example.com/{version}/namespaces/default/gadgets")
}

fn object_path(version: &str) -> String {
    format!("{}/g", collection(version))
}

/// Checks `object` is gadget `g` as `version` serves it, at `resource_version`, with this
/// size and colour.
#[track_caller]
fn check(object: &Value, version: &str, resource_version: &str, size: u64, colour: &str) {
    let (size_field, colour_field) = field_names(version);
    assert_eq!(
        object["apiVersion"],
        format!("example.com/{version}"),
        "{object:#}"
    );
    assert_eq!(object["kind"], "Gadget", "{object:#}");
    assert_eq!(object["metadata"]["name"], "g", "{object:#}");
    assert_eq!(
        object["metadata"]["resourceVersion"], resource_version,
        "{object:#}"
    );
    let spec = object["spec"].as_object().expect("a spec");
    assert_eq!(spec.len(), 2, "only {version}'s fields: {object:#}");
    assert_eq!(spec[size_field], size, "{object:#}");
    assert_eq!(spec[colour_field], colour, "{object:#}");
}

/// Checks a one-row Table of gadget `g` (its row's object as [`check`]).
#[track_caller]
fn check_table(table: &Value, version: &str, resource_version: &str, size: u64, colour: &str) {
    assert_eq!(table["kind"], "Table", "{table:#}");
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{table:#}");
    assert_eq!(rows[0]["cells"][0], "g", "{table:#}");
    check(&rows[0]["object"], version, resource_version, size, colour);
}

/// The watches of one version: two of plain objects, two of Tables (two of each, so that
/// sharing is what keeps each conversion single).
struct Watches {
    version: &'static str,
    json: Vec<WatchStream>,
    tables: Vec<WatchStream>,
}

impl Watches {
    async fn open(server: &TestServer, version: &'static str) -> Watches {
        let path = collection(version);
        let mut json = Vec::new();
        let mut tables = Vec::new();
        for _ in 0..2 {
            let watch = [("watch", "true")];
            json.push(server.watch(&path, &watch).await);
            tables.push(server.watch_accepting(&path, &watch, Some(TABLE)).await);
        }
        Watches {
            version,
            json,
            tables,
        }
    }

    /// Every watch's next event is `event_type` of `g` in this version, at
    /// `resource_version`, with this size and colour.
    async fn expect(&mut self, event_type: &str, resource_version: &str, size: u64, colour: &str) {
        let version = self.version;
        for watch in &mut self.json {
            let event = watch.next_event().await;
            assert_eq!(event["type"], event_type, "{event:#}");
            check(&event["object"], version, resource_version, size, colour);
        }
        for watch in &mut self.tables {
            let event = watch.next_event().await;
            assert_eq!(event["type"], event_type, "{event:#}");
            check_table(&event["object"], version, resource_version, size, colour);
        }
    }
}

/// GET (from the cache and from storage) and LIST, JSON and Table, in `version`.
async fn expect_reads(
    server: &TestServer,
    version: &'static str,
    resource_version: &str,
    size: u64,
    colour: &str,
    from_storage: bool,
) {
    // resourceVersion=0: served by the watch cache; unset: a GET reads storage.
    let at: &[(&str, &str)] = if from_storage {
        &[]
    } else {
        &[("resourceVersion", "0")]
    };
    let got = server.get_with(&object_path(version), at).await;
    check(got.expect(200), version, resource_version, size, colour);
    let got = server.get_accepting(&object_path(version), at, TABLE).await;
    check_table(got.expect(200), version, resource_version, size, colour);
    if from_storage {
        return;
    }
    let listed = server.get(&collection(version)).await;
    let listed = listed.expect(200);
    assert_eq!(listed["apiVersion"], format!("example.com/{version}"));
    assert_eq!(listed["kind"], "GadgetList");
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{listed:#}");
    check(&items[0], version, resource_version, size, colour);
    let table = server.get_accepting(&collection(version), &[], TABLE).await;
    check_table(table.expect(200), version, resource_version, size, colour);
}

/// Lists `version` until its cache, added at run time and listing in the background, serves.
async fn until_served(server: &TestServer, version: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed = server.get(&collection(version)).await;
        if listed.status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gadgets {version} never served: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn three_versions(backend: Arc<dyn kubecache_core::storage::Backend>) {
    let mut api: Option<Arc<Api>> = None;
    let server =
        TestServer::start_configured(backend, ReadConfig::default(), |a| api = Some(a.clone()))
            .await;
    let api = api.expect("the API");
    let conversions = Arc::new(Conversions::default());
    for version in ["v1", "v2", "v3"] {
        let gadgets = Gadgets {
            version,
            conversions: conversions.clone(),
        };
        api.add_resource(Arc::new(gadgets))
            .unwrap_or_else(|e| panic!("add gadgets {version}: {e:?}"));
    }
    for version in ["v1", "v2", "v3"] {
        until_served(&server, version).await;
    }
    let mut watches = Vec::new();
    for version in ["v1", "v2", "v3"] {
        watches.push(Watches::open(&server, version).await);
    }

    // Created in v2.
    let gadget = json!({"apiVersion": "example.com/v2", "kind": "Gadget",
        "metadata": {"name": "g", "namespace": "default"},
        "spec": {"dimension": 3, "color": "red"}});
    let created = server.post(&collection("v2"), &gadget).await;
    let created = created.expect(201);
    let created_rv = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion")
        .to_string();
    check(created, "v2", &created_rv, 3, "red");
    for watch in &mut watches {
        watch.expect("ADDED", &created_rv, 3, "red").await;
    }
    off_the_shards(&conversions);
    for version in ["v1", "v2", "v3"] {
        expect_reads(&server, version, &created_rv, 3, "red", false).await;
    }
    // Each converted version's event was converted once per view (JSON, Table) for its four
    // watches, and the cached reads reused the JSON the watches made.
    let once_per_view = |rv: &str| {
        HashMap::from([
            (("v2", rv.to_string()), 2usize),
            (("v3", rv.to_string()), 2usize),
        ])
    };
    assert_eq!(conversions.reads(), once_per_view(&created_rv));
    for version in ["v1", "v2", "v3"] {
        expect_reads(&server, version, &created_rv, 3, "red", true).await;
    }

    // Updated in v3, from what v3 serves.
    let mut current = server.get(&object_path("v3")).await.expect(200).clone();
    current["spec"] = json!({"extent": 5, "hue": "blue"});
    let updated = server.put(&object_path("v3"), &current).await;
    let updated = updated.expect(200);
    let updated_rv = updated["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion")
        .to_string();
    assert_ne!(updated_rv, created_rv);
    check(updated, "v3", &updated_rv, 5, "blue");
    for watch in &mut watches {
        watch.expect("MODIFIED", &updated_rv, 5, "blue").await;
    }
    off_the_shards(&conversions);
    for version in ["v1", "v2", "v3"] {
        expect_reads(&server, version, &updated_rv, 5, "blue", false).await;
    }

    // Deleted through the storage version: DELETED carries the last state at the deletion's
    // revision, in each watch's version.
    let deleted = server.delete(&object_path("v1")).await;
    deleted.expect(200);
    let deleted_rv = {
        // The deletion's revision: what the v1 watch (no conversion) reports.
        let event = watches[0].json[0].next_event().await;
        assert_eq!(event["type"], "DELETED", "{event:#}");
        event["object"]["metadata"]["resourceVersion"]
            .as_str()
            .expect("a resourceVersion")
            .to_string()
    };
    assert_ne!(deleted_rv, updated_rv);
    watches[0].json.remove(0);
    for watch in &mut watches {
        watch.expect("DELETED", &deleted_rv, 5, "blue").await;
    }

    // Every event of the watches: once per (version, view), never per watcher.
    let reads = conversions.reads();
    for rv in [&updated_rv, &deleted_rv] {
        for version in ["v2", "v3"] {
            assert_eq!(
                reads.get(&(version, rv.to_string())),
                Some(&2),
                "{version} at {rv}: {reads:?}"
            );
        }
    }
    assert!(
        reads.keys().all(|(version, _)| *version != "v1"),
        "the storage version is never converted: {reads:?}"
    );

    let all = conversions.all();
    assert!(all.iter().any(|c| c.read), "reads converted: {all:?}");
    off_the_shards(&conversions);
}

/// Not one conversion — of the watch events, the reads or the writes — ran on a shard.
#[track_caller]
fn off_the_shards(conversions: &Conversions) {
    let on_shards: Vec<Conversion> = (conversions.all().into_iter())
        .filter(|c| c.thread.starts_with(SHARD_THREAD))
        .collect();
    assert!(
        on_shards.is_empty(),
        "conversions on a shard thread: {on_shards:?}"
    );
}

#[tokio::test]
async fn three_versions_on_the_embedded_store() {
    three_versions(Arc::new(EmbeddedBackend::in_memory())).await;
}

#[tokio::test]
async fn three_versions_on_etcd() {
    let etcd = TestEtcd::start();
    let backend = EtcdBackend::connect(&[etcd.endpoint()], EtcdOptions::default())
        .await
        .expect("connect to etcd");
    three_versions(Arc::new(backend)).await;
}
