//! The Store on an in-memory embedded backend: the retry loop (lost races, preconditions,
//! concurrent writers), no-op updates, deletes, and the server's own writes getting the
//! same metadata, admission and managedFields as a request's.

use std::sync::Arc;

use async_trait::async_trait;
use std::collections::HashMap;

use kubecache_admission::Admission;
use kubecache_admission::Context as _;
use kubecache_apimachinery::registry::Registry;
use kubecache_cache::{Passthrough, ReadPath};
use kubecache_core::status::Reason;
use kubecache_core::storage::{
    self, Backend, KeyValue, ListOptions, ListPage, PrefixState, Revision, WatchStream,
};
use kubecache_storage::embedded::EmbeddedBackend;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::*;
use kubecache_apimachinery::codec::JsonCodec;

/// A change another writer makes to an object.
type Edit = Box<dyn FnOnce(&mut Value) + Send>;

/// A backend on which another writer wins the next race: the next `update` or `delete` is
/// preceded by the armed edit, written to the same key, so the caller's compare-and-swap
/// finds a newer revision than the one it read.
struct Racing {
    inner: Arc<dyn Backend>,
    armed: Mutex<Option<Edit>>,
}

impl Racing {
    async fn interfere(&self, key: &str) {
        let Some(edit) = self.armed.lock().take() else {
            return;
        };
        let kv = self
            .inner
            .get(key)
            .await
            .unwrap()
            .expect("the raced key exists");
        let mut object: Value = serde_json::from_slice(&kv.value).unwrap();
        edit(&mut object);
        let bytes = serde_json::to_vec(&object).unwrap();
        self.inner
            .update(key, bytes.into(), kv.mod_revision)
            .await
            .unwrap();
    }
}

#[async_trait]
impl Backend for Racing {
    async fn get(&self, key: &str) -> storage::Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(&self, options: ListOptions) -> storage::Result<ListPage> {
        self.inner.list(options).await
    }
    async fn create(&self, key: &str, value: Bytes) -> storage::Result<KeyValue> {
        self.inner.create(key, value).await
    }
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> storage::Result<KeyValue> {
        self.interfere(key).await;
        self.inner.update(key, value, expected).await
    }
    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> storage::Result<storage::Deleted> {
        self.interfere(key).await;
        self.inner.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, start: Revision) -> storage::Result<WatchStream> {
        self.inner.watch(prefix, start).await
    }
    async fn current_revision(&self) -> storage::Result<Revision> {
        self.inner.current_revision().await
    }
    async fn prefix_state(
        &self,
        prefix: &str,
        since: Revision,
        at: Option<Revision>,
    ) -> storage::Result<PrefixState> {
        self.inner.prefix_state(prefix, since, at).await
    }
    async fn compact(&self, revision: Revision) -> storage::Result<()> {
        self.inner.compact(revision).await
    }
}

/// What the Store needs of a server and nothing else: an in-memory store read straight
/// through (no watch cache), the built-in resources and a default admission chain.
pub(crate) struct TestContext {
    registry: Registry,
    backend: Arc<dyn Backend>,
    reads: Passthrough,
    admission: Admission,
    terminating: Mutex<HashMap<String, i64>>,
    namespace_deleted: Notify,
}

impl kubecache_admission::Context for TestContext {
    fn registry(&self) -> &Registry {
        &self.registry
    }
    fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
    fn reads(&self) -> &dyn ReadPath {
        &self.reads
    }
    fn storage_root(&self) -> &str {
        "/registry"
    }
    fn admission(&self) -> &Admission {
        &self.admission
    }
    fn terminating_namespaces(&self) -> &Mutex<HashMap<String, i64>> {
        &self.terminating
    }
}

impl Context for TestContext {
    fn namespace_deleted(&self) -> &Notify {
        &self.namespace_deleted
    }
}

/// A context over `backend`, with the initial namespaces.
pub(crate) async fn test_context(backend: Arc<dyn Backend>) -> Arc<TestContext> {
    let registry = Arc::new(Registry::builtin());
    let reads = Passthrough::new(backend.clone(), Arc::new(JsonCodec::new(registry.clone())));
    let context = Arc::new(TestContext {
        registry: Registry::builtin(),
        backend,
        reads,
        admission: Admission::default(),
        terminating: Mutex::default(),
        namespace_deleted: Notify::new(),
    });
    crate::namespaces::bootstrap(context.as_ref())
        .await
        .unwrap();
    context
}

/// A context over a racing in-memory store, with the initial namespaces.
async fn racing_context() -> (Arc<TestContext>, Arc<Racing>) {
    let racing = Arc::new(Racing {
        inner: Arc::new(EmbeddedBackend::in_memory()),
        armed: Mutex::new(None),
    });
    (test_context(racing.clone()).await, racing)
}

fn resource(context: &TestContext, group: &str, name: &str) -> Arc<Resource> {
    context.registry().lookup(group, "v1", name).unwrap()
}

fn ctx() -> Writer {
    Writer::internal("test")
}

/// Creates ConfigMap `name` in `default` with `data`; returns its resourceVersion.
async fn create_config_map(context: &TestContext, name: &str, data: Value) -> i64 {
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}, "data": data});
    let created = Store::new(context, &resource(context, "", "configmaps"))
        .create(&ctx(), Some("default"), object)
        .await
        .unwrap();
    created.stored.unwrap().1
}

async fn stored(context: &TestContext, name: &str) -> KeyValue {
    let key = context.object_key(&resource(context, "", "configmaps"), Some("default"), name);
    context.backend().get(&key).await.unwrap().unwrap()
}

fn set_data(
    key: &'static str,
    value: &'static str,
) -> impl FnMut(&Value) -> Result<Value, ApiError> {
    move |current| {
        let mut new = current.clone();
        new["data"][key] = json!(value);
        // No precondition: the update applies to whatever is current.
        objects::metadata_mut(&mut new).remove("resourceVersion");
        Ok(new)
    }
}

#[tokio::test]
async fn an_update_that_loses_a_race_is_retried_on_the_fresh_object() {
    let (context, racing) = racing_context().await;
    create_config_map(&context, "cm", json!({"a": "0"})).await;
    *racing.armed.lock() = Some(Box::new(|o| o["data"]["a"] = json!("theirs")));
    let served = resource(&context, "", "configmaps");
    let store = Store::new(context.as_ref(), &served);
    let mut attempts = 0;
    let mut change = set_data("b", "mine");
    let updated = store
        .update(&ctx(), Some("default"), "cm", |current| {
            attempts += 1;
            change(current)
        })
        .await
        .unwrap();
    assert_eq!(attempts, 2, "the lost race is tried again");
    // Both writers' changes are there: the retry started from the other writer's object.
    assert_eq!(updated["data"], json!({"a": "theirs", "b": "mine"}));
    let kv = stored(&context, "cm").await;
    assert_eq!(objects::decode(&kv).unwrap()["data"], updated["data"]);
    assert_eq!(
        objects::resource_version(&updated).unwrap(),
        Some(kv.mod_revision)
    );
}

#[tokio::test]
async fn an_update_with_a_resource_version_that_loses_a_race_is_a_conflict() {
    let (context, racing) = racing_context().await;
    let revision = create_config_map(&context, "cm", json!({"a": "0"})).await;
    *racing.armed.lock() = Some(Box::new(|o| o["data"]["a"] = json!("theirs")));
    let served = resource(&context, "", "configmaps");
    let store = Store::new(context.as_ref(), &served);
    let mut attempts = 0;
    let err = store
        .update(&ctx(), Some("default"), "cm", |current| {
            attempts += 1;
            let mut new = current.clone();
            new["data"]["b"] = json!("mine");
            assert_eq!(objects::resource_version(&new).unwrap(), Some(revision));
            Ok(new)
        })
        .await
        .unwrap_err();
    assert_eq!((err.code, err.reason), (409, Reason::Conflict));
    assert_eq!(attempts, 1);
    let kv = stored(&context, "cm").await;
    assert_eq!(
        objects::decode(&kv).unwrap()["data"],
        json!({"a": "theirs"})
    );
    // A resourceVersion that is already stale never reaches storage.
    let err = store
        .update(&ctx(), Some("default"), "cm", |current| {
            let mut new = current.clone();
            objects::set_resource_version(&mut new, revision);
            Ok(new)
        })
        .await
        .unwrap_err();
    assert_eq!((err.code, err.reason), (409, Reason::Conflict));
    assert_eq!(stored(&context, "cm").await.mod_revision, kv.mod_revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_without_a_resource_version_all_land() {
    let context = test_context(Arc::new(EmbeddedBackend::in_memory())).await;
    create_config_map(&context, "counter", json!({"n": "0"})).await;
    const WRITERS: usize = 6;
    const EACH: usize = 10;
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let context = context.clone();
        tasks.push(tokio::spawn(async move {
            let served = resource(&context, "", "configmaps");
            let store = Store::new(context.as_ref(), &served);
            for _ in 0..EACH {
                store
                    .update(&ctx(), Some("default"), "counter", |current| {
                        let n: usize = current["data"]["n"].as_str().unwrap().parse().unwrap();
                        let mut new = current.clone();
                        new["data"]["n"] = json!((n + 1).to_string());
                        objects::metadata_mut(&mut new).remove("resourceVersion");
                        Ok(new)
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let object = objects::decode(&stored(&context, "counter").await).unwrap();
    assert_eq!(object["data"]["n"], json!((WRITERS * EACH).to_string()));
}

#[tokio::test]
async fn an_update_that_changes_nothing_writes_nothing() {
    let (context, _) = racing_context().await;
    let revision = create_config_map(&context, "cm", json!({"a": "1"})).await;
    let served = resource(&context, "", "configmaps");
    let store = Store::new(context.as_ref(), &served);
    let before = context.backend().current_revision().await.unwrap();
    // The same content, even with the same manager recording it again.
    let updated = store
        .update(&ctx(), Some("default"), "cm", set_data("a", "1"))
        .await
        .unwrap();
    assert_eq!(objects::resource_version(&updated).unwrap(), Some(revision));
    assert_eq!(context.backend().current_revision().await.unwrap(), before);
    // A change is written.
    let updated = store
        .update(&ctx(), Some("default"), "cm", set_data("a", "2"))
        .await
        .unwrap();
    assert_eq!(
        context.backend().current_revision().await.unwrap(),
        before + 1
    );
    assert_eq!(
        objects::resource_version(&updated).unwrap(),
        Some(before + 1)
    );
}

#[tokio::test]
async fn a_delete_that_loses_a_race_checks_its_preconditions_again() {
    let (context, racing) = racing_context().await;
    let revision = create_config_map(&context, "cm", json!({"a": "0"})).await;
    let served = resource(&context, "", "configmaps");
    let store = Store::new(context.as_ref(), &served);
    *racing.armed.lock() = Some(Box::new(|o| o["data"]["a"] = json!("theirs")));
    let pinned = Preconditions {
        resource_version: Some(revision.to_string()),
        ..Preconditions::default()
    };
    let err = store
        .delete(&ctx(), Some("default"), "cm", &pinned)
        .await
        .unwrap_err();
    assert_eq!((err.code, err.reason), (409, Reason::Conflict));
    assert!(
        err.message.contains("Precondition failed"),
        "{}",
        err.message
    );
    // Without preconditions, a lost race is retried and the object goes.
    *racing.armed.lock() = Some(Box::new(|o| o["data"]["a"] = json!("again")));
    let deleted = store
        .delete(&ctx(), Some("default"), "cm", &Preconditions::default())
        .await
        .unwrap();
    let Deleted::Removed(object) = deleted else {
        panic!("removed")
    };
    assert_eq!(object["data"]["a"], "again");
    assert_eq!(
        objects::resource_version(&object).unwrap(),
        Some(context.backend().current_revision().await.unwrap())
    );
    let key = context.object_key(&resource(&context, "", "configmaps"), Some("default"), "cm");
    assert!(context.backend().get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn an_object_with_finalizers_is_marked_and_goes_with_its_last_finalizer() {
    let (context, _) = racing_context().await;
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": "default", "finalizers": ["example.com/x"]}});
    let served = resource(&context, "", "configmaps");
    let store = Store::new(context.as_ref(), &served);
    store.create(&ctx(), Some("default"), object).await.unwrap();
    let marked = store
        .delete(&ctx(), Some("default"), "held", &Preconditions::default())
        .await
        .unwrap();
    let Deleted::Marked(marked) = marked else {
        panic!("marked")
    };
    assert!(objects::is_deleting(&marked));
    // Not finalized yet: the namespace finalizer's removal leaves it.
    let kept = store
        .remove_finalized(&ctx(), Some("default"), "held")
        .await
        .unwrap();
    assert!(matches!(kept, Deleted::Marked(_)));
    let gone = store
        .update(&ctx(), Some("default"), "held", |current| {
            let mut new = current.clone();
            objects::metadata_mut(&mut new).remove("finalizers");
            Ok(new)
        })
        .await
        .unwrap();
    assert_eq!(
        objects::resource_version(&gone).unwrap(),
        Some(context.backend().current_revision().await.unwrap())
    );
    let key = context.object_key(
        &resource(&context, "", "configmaps"),
        Some("default"),
        "held",
    );
    assert!(context.backend().get(&key).await.unwrap().is_none());
}

/// The server's own writes are made like a request's: metadata rules, admission (defaults,
/// the canonical form) and a managedFields entry for their manager.
#[tokio::test]
async fn bootstrap_writes_get_what_a_request_s_create_gets() {
    let (context, _) = racing_context().await;
    let namespaces = resource(&context, "", "namespaces");
    let kv = context
        .backend()
        .get(&context.object_key(&namespaces, None, "default"))
        .await
        .unwrap()
        .unwrap();
    let default = objects::decode(&kv).unwrap();
    assert!(objects::meta_str(&default, "uid").is_some_and(|u| !u.is_empty()));
    assert!(objects::meta_str(&default, "creationTimestamp").is_some());
    assert_eq!(default["spec"]["finalizers"], json!(["kubernetes"]));
    let managers = kubecache_apimachinery::managed::read(&default);
    assert_eq!(managers.len(), 1, "{default:#}");
    assert_eq!(managers[0].name, "kube-apiserver");
    assert_eq!(
        managers[0].operation,
        kubecache_apimachinery::managed::Operation::Update
    );

    crate::rbac::bootstrap::ensure(context.as_ref())
        .await
        .unwrap();
    let roles = context
        .registry()
        .lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
        .unwrap();
    let kv = context
        .backend()
        .get(&context.object_key(&roles, None, "cluster-admin"))
        .await
        .unwrap()
        .unwrap();
    let admin = objects::decode(&kv).unwrap();
    assert!(objects::meta_str(&admin, "uid").is_some_and(|u| !u.is_empty()));
    let managers = kubecache_apimachinery::managed::read(&admin);
    assert_eq!(managers.len(), 1, "{admin:#}");
    assert_eq!(managers[0].name, "kube-apiserver");
    // Stored in the canonical form, as a request's create stores it: encoding the typed
    // object again gives the same bytes.
    let mut again = admin.clone();
    objects::metadata_mut(&mut again).remove("resourceVersion");
    let canonical = kubecache_apimachinery::typed::canonicalize(&roles, again.clone()).unwrap();
    assert_eq!(objects::encode(&canonical), kv.value);
    // And a second start creates nothing.
    assert!(
        crate::rbac::bootstrap::ensure(context.as_ref())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn internal_writes_go_through_admission() {
    let (context, _) = racing_context().await;
    let served = resource(&context, "", "configmaps");
    let store = Store::new(context.as_ref(), &served);
    // NamespaceLifecycle: no content in a namespace that does not exist.
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "nowhere"}});
    let err = store
        .create(&ctx(), Some("nowhere"), object)
        .await
        .unwrap_err();
    assert_eq!(err.code, 404);
    // Validation: an invalid name is a 422.
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "Not_A_Name", "namespace": "default"}});
    let err = store
        .create(&ctx(), Some("default"), object)
        .await
        .unwrap_err();
    assert_eq!(err.code, 422);
}
