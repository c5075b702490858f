//! The live RBAC policy: every Role, ClusterRole, RoleBinding and ClusterRoleBinding the
//! server stores, kept in memory by following them through the read path.
//!
//! One reflector task per resource watches it through [`ReadPath::watch`] (the watch cache
//! when it is on): the initial events fill a fresh map, swapped in whole at the
//! `k8s.io/initial-events-end` bookmark; later events change it in place. When the watch
//! ends it resumes after the last revision seen, and relists from scratch after an ERROR
//! (410 Gone). This is kube's informer, and why a change takes effect without a restart.
//!
//! Readers take a [`Policy`] snapshot: four `Arc` clones under a read lock held for
//! nanoseconds, so authorizing a request costs no storage or cache round trip and no
//! decoding. A batch of events copies the changed resource's map once (copy on write):
//! O(objects of that kind), fine for the hundreds to low thousands of RBAC objects a
//! cluster holds, where a per-request LIST would copy and decode them on every request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kubecache_apimachinery::registry::Registry;
use kubecache_cache::{Filter, ReadAt, ReadPath, WatchRequest, WatchStart};
use kubecache_core::registry::ResourceInfo;
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Objects of one kind by `namespace/name` (cluster-scoped: `name`), so the objects of one
/// namespace are one range.
pub type Objects<T> = Arc<BTreeMap<String, Arc<T>>>;

/// One consistent-enough view of the stored policy (each resource is as of its own watch).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub cluster_roles: Objects<ClusterRole>,
    pub roles: Objects<Role>,
    pub cluster_role_bindings: Objects<ClusterRoleBinding>,
    pub role_bindings: Objects<RoleBinding>,
}

impl Policy {
    /// The RoleBindings of one namespace.
    pub fn role_bindings_in<'a>(
        &'a self,
        namespace: &str,
    ) -> impl Iterator<Item = &'a Arc<RoleBinding>> + 'a {
        let start = format!("{namespace}/");
        let end = format!("{namespace}0"); // '0' follows '/'
        self.role_bindings.range(start..end).map(|(_, b)| b)
    }

    pub fn role(&self, namespace: &str, name: &str) -> Option<&Arc<Role>> {
        self.roles.get(&format!("{namespace}/{name}"))
    }

    pub fn cluster_role(&self, name: &str) -> Option<&Arc<ClusterRole>> {
        self.cluster_roles.get(name)
    }
}

/// How long a first reader waits for the initial lists before answering from what it has.
const SYNC_WAIT: Duration = Duration::from_secs(10);
/// Pause before re-opening a watch that could not be opened.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// A watch is re-opened (after its last revision) this often.
const WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The four resources followed.
const KINDS: usize = 4;

/// The shared state the reflectors write and readers snapshot.
struct Shared {
    /// Guards the published snapshot; held only to clone or replace the `Arc`.
    policy: RwLock<Arc<Policy>>,
    /// How many resources have completed their initial list.
    synced: watch::Sender<usize>,
    /// Bumped on every published change (the aggregation controller wakes on it).
    generation: watch::Sender<u64>,
}

/// The live policy (see the module documentation). The reflectors start on first use, in
/// the caller's tokio runtime, and stop when the index is dropped.
pub struct PolicyIndex {
    reads: Arc<dyn ReadPath>,
    storage_root: String,
    shared: Arc<Shared>,
    started: AtomicBool,
    /// Set once a reader has waited for the initial lists: the hot path is one load.
    ready: AtomicBool,
    /// The reflector tasks, aborted on drop.
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Drop for PolicyIndex {
    fn drop(&mut self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

impl PolicyIndex {
    /// An index over the objects under kube-apiserver's default `/registry` root.
    pub fn new(reads: Arc<dyn ReadPath>) -> Arc<PolicyIndex> {
        PolicyIndex::with_root(reads, "/registry")
    }

    /// An index over the objects stored under `storage_root` (`--etcd-prefix`).
    pub fn with_root(reads: Arc<dyn ReadPath>, storage_root: &str) -> Arc<PolicyIndex> {
        Arc::new(PolicyIndex {
            reads,
            storage_root: storage_root.trim_end_matches('/').to_string(),
            shared: Arc::new(Shared {
                policy: RwLock::new(Arc::new(Policy::default())),
                synced: watch::channel(0).0,
                generation: watch::channel(0).0,
            }),
            started: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The current policy, once every resource has been listed (or after [`SYNC_WAIT`]).
    pub async fn snapshot(&self) -> Arc<Policy> {
        if !self.ready.load(Ordering::Acquire) {
            self.start();
            let mut synced = self.shared.synced.subscribe();
            let _ = tokio::time::timeout(SYNC_WAIT, synced.wait_for(|n| *n >= KINDS)).await;
            // After the first wait, requests never wait again (a relist keeps serving the
            // previous policy until the new one is complete).
            self.ready.store(true, Ordering::Release);
        }
        self.shared.policy.read().clone()
    }

    /// Changes whenever the policy does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.start();
        self.shared.generation.subscribe()
    }

    /// Whether every resource has been listed.
    pub fn synced(&self) -> bool {
        *self.shared.synced.borrow() >= KINDS
    }

    fn start(&self) {
        if self.started.load(Ordering::Acquire) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let registry = Registry::builtin();
        let rbac = |name: &str| {
            registry
                .lookup("rbac.authorization.k8s.io", "v1", name)
                .expect("the RBAC resources are registered")
                .info()
                .clone()
        };
        let mut tasks = self.tasks.lock();
        tasks.push(self.spawn::<ClusterRole>(rbac("clusterroles"), |p, m| p.cluster_roles = m));
        tasks.push(self.spawn::<Role>(rbac("roles"), |p, m| p.roles = m));
        tasks.push(
            self.spawn::<ClusterRoleBinding>(rbac("clusterrolebindings"), |p, m| {
                p.cluster_role_bindings = m
            }),
        );
        tasks.push(self.spawn::<RoleBinding>(rbac("rolebindings"), |p, m| p.role_bindings = m));
    }

    fn spawn<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        resource: Arc<ResourceInfo>,
        publish: fn(&mut Policy, Objects<T>),
    ) -> AbortHandle {
        let reflector = Reflector {
            reads: self.reads.clone(),
            prefix: resource.storage_prefix(&self.storage_root),
            resource,
            shared: self.shared.clone(),
            publish,
        };
        tokio::spawn(reflector.run()).abort_handle()
    }
}

/// Follows one resource into the shared policy.
struct Reflector<T> {
    reads: Arc<dyn ReadPath>,
    resource: Arc<ResourceInfo>,
    prefix: String,
    shared: Arc<Shared>,
    publish: fn(&mut Policy, Objects<T>),
}

/// One watch event as framed by the read path.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    object: Value,
}

impl<T: DeserializeOwned + Send + Sync + 'static> Reflector<T> {
    async fn run(self) {
        let mut objects: Objects<T> = Arc::new(BTreeMap::new());
        // Where the next watch starts: `None` relists.
        let mut resume: Option<i64> = None;
        let mut counted_sync = false;
        loop {
            let start = match resume {
                Some(revision) => WatchStart::After(revision),
                None => WatchStart::Initial(ReadAt::Latest),
            };
            let request = WatchRequest {
                resource: self.resource.clone(),
                prefix: self.prefix.clone(),
                filter: Arc::new(Filter::default()),
                start,
                initial_events_end: resume.is_none(),
                table: false,
                protobuf: false,
                bookmarks: true,
                bookmark_interval: Duration::from_secs(60),
                timeout: WATCH_TIMEOUT,
            };
            let stream = match self.reads.watch(request).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(resource = self.resource.resource, "RBAC watch: {e}");
                    resume = None;
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            };
            // While listing, events go to a fresh map swapped in at the end of the list.
            let mut listing: Option<BTreeMap<String, Arc<T>>> =
                resume.is_none().then(BTreeMap::new);
            let mut chunks = stream.ready_chunks(256);
            let mut failed = false;
            while let Some(frames) = chunks.next().await {
                let mut changed = false;
                for frame in &frames {
                    for line in frame.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        let Ok(event) = serde_json::from_slice::<Event>(line) else {
                            continue;
                        };
                        if let Some(revision) = resource_version(&event.object) {
                            resume = Some(revision);
                        }
                        match event.kind.as_str() {
                            "ADDED" | "MODIFIED" | "DELETED" => {
                                let key = object_key(&event.object);
                                let target = match listing.as_mut() {
                                    Some(fresh) => fresh,
                                    None => {
                                        changed = true;
                                        Arc::make_mut(&mut objects)
                                    }
                                };
                                if event.kind == "DELETED" {
                                    target.remove(&key);
                                } else {
                                    match serde_json::from_value::<T>(event.object) {
                                        Ok(object) => {
                                            target.insert(key, Arc::new(object));
                                        }
                                        Err(e) => {
                                            tracing::warn!(
                                                resource = self.resource.resource,
                                                %key,
                                                "RBAC object ignored, it does not decode: {e}"
                                            );
                                            target.remove(&key);
                                        }
                                    }
                                }
                            }
                            "BOOKMARK" => {
                                let fresh = if initial_events_end(&event.object) {
                                    listing.take()
                                } else {
                                    None
                                };
                                if let Some(fresh) = fresh {
                                    objects = Arc::new(fresh);
                                    changed = true;
                                    if !counted_sync {
                                        counted_sync = true;
                                        self.shared.synced.send_modify(|n| *n += 1);
                                    }
                                }
                            }
                            _ => {
                                // ERROR (e.g. 410 Gone): relist.
                                failed = true;
                            }
                        }
                    }
                }
                if changed {
                    self.publish(objects.clone());
                }
                if failed {
                    break;
                }
            }
            if failed || listing.is_some() {
                resume = None;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    fn publish(&self, objects: Objects<T>) {
        {
            let mut policy = self.shared.policy.write();
            (self.publish)(Arc::make_mut(&mut policy), objects);
        }
        self.shared.generation.send_modify(|g| *g += 1);
    }
}

fn resource_version(object: &Value) -> Option<i64> {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
}

fn initial_events_end(object: &Value) -> bool {
    object["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"
}

/// `namespace/name`, or `name` for cluster-scoped objects.
fn object_key(object: &Value) -> String {
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}
