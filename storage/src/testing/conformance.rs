//! The backend conformance suite: every [`Backend`] must pass these cases.
//!
//! Each case takes the backend and a key prefix ending in `/` that no other case uses, so
//! cases can share one store (even one etcd cluster, concurrently). They compare revisions
//! relative to those their own writes returned, never absolute ones. The one case that
//! affects other keys, [`compaction`], takes [`HISTORY_LOCK`] exclusively while every other
//! case holds it shared, so within one test binary it never races a case that reads history.
//!
//! Use from a test file (the crate needs `tokio` with its macros):
//!
//! ```ignore
//! async fn setup() -> (Arc<dyn Backend>, impl Sized) { ... } // backend + guard kept alive
//! kubecache_storage::testing::conformance::conformance_tests!(setup); // one #[tokio::test] per case
//! ```
//!
//! or call [`run_all`] or a single case directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kubecache_core::storage::{
    Backend, KeyValue, ListOptions, ListPage, Revision, StorageError, StorageEvent, WatchStream,
};
use tokio::sync::RwLock;

/// Held shared by every case and exclusively by [`compaction`], which discards history that
/// concurrently running cases may still read.
pub static HISTORY_LOCK: RwLock<()> = RwLock::const_new(());

/// How long a case waits for an expected watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Generates one `#[tokio::test]` per case. `$setup` names an `async fn() -> (Arc<dyn
/// Backend>, G)`; `G` (a temp dir, a child process...) is kept alive for the test's duration.
#[macro_export]
macro_rules! conformance_tests {
    ($setup:path) => {
        $crate::conformance_tests!(@cases $setup;
            get_missing_and_existing,
            create_twice_fails_with_key_exists,
            create_and_mod_revisions,
            update_compares_mod_revision,
            delete_semantics,
            list_prefix_order_and_isolation,
            list_pagination,
            list_at_older_revision,
            watch_replays_history_then_live,
            watch_from_next_revision_sees_only_new_events,
            watch_delete_carries_prev,
            compaction,
            revisions_increase,
            large_value_round_trips,
            concurrent_cas_loses_no_increment,
            prefix_state_counts_changes_since,
        );
    };
    (@cases $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (backend, _guard) = $setup().await;
                let prefix = $crate::testing::conformance::unique_prefix(stringify!($case));
                $crate::testing::conformance::$case(backend, &prefix).await;
            }
        )*
    };
}
pub use crate::conformance_tests;

/// Runs every case one after the other, each under its own prefix below `prefix`.
pub async fn run_all(backend: Arc<dyn Backend>, prefix: &str) {
    let p = |case: &str| format!("{prefix}{case}/");
    get_missing_and_existing(backend.clone(), &p("get")).await;
    create_twice_fails_with_key_exists(backend.clone(), &p("create-twice")).await;
    create_and_mod_revisions(backend.clone(), &p("revisions")).await;
    update_compares_mod_revision(backend.clone(), &p("update")).await;
    delete_semantics(backend.clone(), &p("delete")).await;
    list_prefix_order_and_isolation(backend.clone(), &p("list-prefix")).await;
    list_pagination(backend.clone(), &p("list-pages")).await;
    list_at_older_revision(backend.clone(), &p("list-old")).await;
    watch_replays_history_then_live(backend.clone(), &p("watch-replay")).await;
    watch_from_next_revision_sees_only_new_events(backend.clone(), &p("watch-new")).await;
    watch_delete_carries_prev(backend.clone(), &p("watch-delete")).await;
    revisions_increase(backend.clone(), &p("increase")).await;
    large_value_round_trips(backend.clone(), &p("large")).await;
    concurrent_cas_loses_no_increment(backend.clone(), &p("cas")).await;
    prefix_state_counts_changes_since(backend.clone(), &p("prefix-state")).await;
    compaction(backend, &p("compaction")).await;
}

/// A prefix unique to this case, process and run (so reruns against a persistent store such as
/// etcd do not find the previous run's keys).
pub fn unique_prefix(case: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("/conformance/{}-{nanos}-{seq}/{case}/", std::process::id())
}

fn val(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn opts(prefix: &str) -> ListOptions {
    ListOptions {
        prefix: prefix.to_owned(),
        ..ListOptions::default()
    }
}

async fn list_all(backend: &dyn Backend, prefix: &str) -> ListPage {
    backend.list(opts(prefix)).await.expect("list")
}

fn keys(page: &ListPage) -> Vec<&str> {
    page.kvs.iter().map(|kv| kv.key.as_str()).collect()
}

/// The next Put/Delete from `watch` (Progress events skipped); panics after `EVENT_TIMEOUT`.
pub async fn next_event(watch: &mut WatchStream) -> StorageEvent {
    loop {
        let item = tokio::time::timeout(EVENT_TIMEOUT, watch.next())
            .await
            .expect("timed out waiting for a watch event")
            .expect("watch ended")
            .expect("watch failed");
        if !matches!(item, StorageEvent::Progress { .. }) {
            return item;
        }
    }
}

fn assert_put(event: &StorageEvent, kv: &KeyValue, prev: Option<&KeyValue>) {
    match event {
        StorageEvent::Put {
            kv: got,
            prev: got_prev,
        } => {
            assert_eq!(got, kv, "put event value");
            assert_eq!(got_prev.as_ref(), prev, "put event prev");
        }
        other => panic!("expected put of {}, got {other:?}", kv.key),
    }
}

fn assert_delete(event: &StorageEvent, key: &str, revision: Revision, prev: &KeyValue) {
    match event {
        StorageEvent::Delete {
            key: got,
            revision: got_rev,
            prev: got_prev,
        } => {
            assert_eq!(got, key);
            assert_eq!(*got_rev, revision);
            assert_eq!(got_prev.as_ref(), Some(prev), "delete event prev");
        }
        other => panic!("expected delete of {key}, got {other:?}"),
    }
}

/// get of a missing key is `None`; of an existing one, what create returned. health is Ok.
pub async fn get_missing_and_existing(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let key = format!("{prefix}k");
    backend.health().await.expect("health");
    assert_eq!(backend.get(&key).await.unwrap(), None);
    let kv = backend.create(&key, val("v1")).await.unwrap();
    assert_eq!(kv.key, key);
    assert_eq!(kv.value, val("v1"));
    assert_eq!(backend.get(&key).await.unwrap(), Some(kv));
    assert_eq!(backend.get(&format!("{prefix}other")).await.unwrap(), None);
}

/// A second create of the same key fails with KeyExists and changes nothing.
pub async fn create_twice_fails_with_key_exists(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let key = format!("{prefix}k");
    let kv = backend.create(&key, val("first")).await.unwrap();
    let err = backend.create(&key, val("second")).await.unwrap_err();
    assert_eq!(err, StorageError::KeyExists { key: key.clone() });
    assert_eq!(backend.get(&key).await.unwrap(), Some(kv));
}

/// create sets create_revision = mod_revision; update keeps create_revision and bumps
/// mod_revision; re-creating after a delete starts a new create_revision.
pub async fn create_and_mod_revisions(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let key = format!("{prefix}k");
    let created = backend.create(&key, val("v1")).await.unwrap();
    assert_eq!(created.create_revision, created.mod_revision);
    assert!(created.create_revision > 0);

    let updated = backend
        .update(&key, val("v2"), created.mod_revision)
        .await
        .unwrap();
    assert_eq!(updated.create_revision, created.create_revision);
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(updated.value, val("v2"));
    assert_eq!(backend.get(&key).await.unwrap(), Some(updated.clone()));

    let deleted = backend.delete(&key, None).await.unwrap();
    assert!(deleted.revision > updated.mod_revision);
    let recreated = backend.create(&key, val("v3")).await.unwrap();
    assert!(recreated.create_revision > deleted.revision);
    assert_eq!(recreated.create_revision, recreated.mod_revision);
}

/// update succeeds with the current mod_revision; a stale one gives Conflict carrying the
/// current value; a missing (or deleted) key gives NotFound.
pub async fn update_compares_mod_revision(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let key = format!("{prefix}k");
    let v1 = backend.create(&key, val("v1")).await.unwrap();
    let v2 = backend
        .update(&key, val("v2"), v1.mod_revision)
        .await
        .unwrap();

    let err = backend
        .update(&key, val("stale"), v1.mod_revision)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StorageError::Conflict {
            key: key.clone(),
            current: Some(v2.clone()),
        }
    );
    assert_eq!(backend.get(&key).await.unwrap(), Some(v2.clone()));

    let missing = format!("{prefix}missing");
    let err = backend.update(&missing, val("x"), 1).await.unwrap_err();
    assert_eq!(err, StorageError::NotFound { key: missing });

    backend.delete(&key, None).await.unwrap();
    let err = backend
        .update(&key, val("v3"), v2.mod_revision)
        .await
        .unwrap_err();
    assert_eq!(err, StorageError::NotFound { key: key.clone() });
}

/// delete without and with an expected revision; stale → Conflict with the current value;
/// missing → NotFound; `Deleted` carries the last value and the delete's revision.
pub async fn delete_semantics(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let a = format!("{prefix}a");
    let kv = backend.create(&a, val("a1")).await.unwrap();
    let deleted = backend.delete(&a, None).await.unwrap();
    assert_eq!(deleted.prev, kv);
    assert!(deleted.revision > kv.mod_revision);
    assert_eq!(backend.get(&a).await.unwrap(), None);
    let err = backend.delete(&a, None).await.unwrap_err();
    assert_eq!(err, StorageError::NotFound { key: a.clone() });

    let b = format!("{prefix}b");
    let b1 = backend.create(&b, val("b1")).await.unwrap();
    let b2 = backend
        .update(&b, val("b2"), b1.mod_revision)
        .await
        .unwrap();
    let err = backend.delete(&b, Some(b1.mod_revision)).await.unwrap_err();
    assert_eq!(
        err,
        StorageError::Conflict {
            key: b.clone(),
            current: Some(b2.clone()),
        }
    );
    assert_eq!(backend.get(&b).await.unwrap(), Some(b2.clone()));
    let deleted = backend.delete(&b, Some(b2.mod_revision)).await.unwrap();
    assert_eq!(deleted.prev, b2);
    assert!(deleted.revision > b2.mod_revision);
    assert_eq!(backend.get(&b).await.unwrap(), None);

    let missing = format!("{prefix}missing");
    let err = backend.delete(&missing, Some(5)).await.unwrap_err();
    assert_eq!(err, StorageError::NotFound { key: missing });
}

/// list returns keys in byte order, only those under the prefix (`{p}a/` does not include
/// `{p}a`, `{p}ab/x` or `{p}a0`), and deleted keys disappear.
pub async fn list_prefix_order_and_isolation(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let inside = ["a/z", "a/b", "a/b/c", "a/m", "a/B", "a/bc"];
    let outside = ["a", "ab/x", "a0", "b/a", "A/a"];
    for k in outside.iter().chain(inside.iter()) {
        backend
            .create(&format!("{prefix}{k}"), val(k))
            .await
            .unwrap();
    }
    let page = list_all(&*backend, &format!("{prefix}a/")).await;
    let mut expected: Vec<String> = inside.iter().map(|k| format!("{prefix}{k}")).collect();
    expected.sort();
    assert_eq!(keys(&page), expected);
    assert_eq!(page.count, inside.len() as i64);
    assert!(!page.more);
    for kv in &page.kvs {
        assert_eq!(kv.value, val(&kv.key[prefix.len()..]));
    }

    let page = list_all(&*backend, &format!("{prefix}a/b/")).await;
    assert_eq!(keys(&page), vec![format!("{prefix}a/b/c")]);
    let page = list_all(&*backend, &format!("{prefix}nothing/")).await;
    assert!(page.kvs.is_empty());
    assert_eq!(page.count, 0);

    backend.delete(&format!("{prefix}a/m"), None).await.unwrap();
    let page = list_all(&*backend, &format!("{prefix}a/")).await;
    assert_eq!(page.count, inside.len() as i64 - 1);
    assert!(!keys(&page).contains(&format!("{prefix}a/m").as_str()));

    let page = list_all(&*backend, prefix).await;
    assert_eq!(page.count, (inside.len() + outside.len() - 1) as i64);
    assert!(page.kvs.windows(2).all(|w| w[0].key < w[1].key));
}

/// Paging with start_key + limit at one revision returns every key exactly once, with count
/// = keys from start_key on and more = keys remain.
pub async fn list_pagination(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let total = 10;
    let mut all = Vec::new();
    for i in 0..total {
        let key = format!("{prefix}item-{i:02}");
        backend.create(&key, val("x")).await.unwrap();
        all.push(key);
    }
    // Written after the first page: must not show up in later pages at the same revision.
    let late = format!("{prefix}item-99");

    let limit = 3;
    let mut seen = Vec::new();
    let mut start_key: Option<String> = None;
    let mut revision: Option<Revision> = None;
    let mut pages = 0;
    loop {
        let page = backend
            .list(ListOptions {
                prefix: prefix.to_owned(),
                start_key: start_key.clone(),
                limit: Some(limit),
                revision,
            })
            .await
            .unwrap();
        pages += 1;
        let remaining = total - seen.len();
        assert_eq!(page.count, remaining as i64, "count on page {pages}");
        assert_eq!(page.kvs.len(), remaining.min(limit));
        assert_eq!(page.more, remaining > limit);
        if let Some(rev) = revision {
            assert_eq!(page.revision, rev);
        } else {
            backend.create(&late, val("late")).await.unwrap();
        }
        revision = Some(page.revision);
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        let last = &page.kvs.last().unwrap().key;
        start_key = Some(format!("{last}\0"));
    }
    assert_eq!(seen, all);
    assert_eq!(pages, total.div_ceil(limit));

    // Without a limit (None or 0): everything, now including the late key.
    for limit in [None, Some(0)] {
        let page = backend
            .list(ListOptions {
                prefix: prefix.to_owned(),
                limit,
                ..ListOptions::default()
            })
            .await
            .unwrap();
        assert_eq!(page.kvs.len(), total + 1);
        assert_eq!(page.count, total as i64 + 1);
        assert!(!page.more);
    }
}

/// A list at an older revision sees the state as it was then; a future revision fails.
pub async fn list_at_older_revision(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let (a, b, c) = (
        format!("{prefix}a"),
        format!("{prefix}b"),
        format!("{prefix}c"),
    );
    let a1 = backend.create(&a, val("a1")).await.unwrap();
    let b1 = backend.create(&b, val("b1")).await.unwrap();
    let then = b1.mod_revision;
    let a2 = backend
        .update(&a, val("a2"), a1.mod_revision)
        .await
        .unwrap();
    backend.delete(&b, None).await.unwrap();
    let c1 = backend.create(&c, val("c1")).await.unwrap();

    let at = |revision| ListOptions {
        prefix: prefix.to_owned(),
        revision: Some(revision),
        ..ListOptions::default()
    };
    let old = backend.list(at(then)).await.unwrap();
    assert_eq!(old.kvs, vec![a1.clone(), b1.clone()]);
    assert_eq!(old.revision, then);
    assert_eq!(old.count, 2);

    // (Revision 0 means "latest", so only when there is an earlier revision.)
    if a1.mod_revision > 1 {
        let before_any = backend.list(at(a1.mod_revision - 1)).await.unwrap();
        assert!(before_any.kvs.is_empty());
    }

    let now = list_all(&*backend, prefix).await;
    assert_eq!(now.kvs, vec![a2, c1.clone()]);
    assert!(now.revision >= c1.mod_revision);

    let current = backend.current_revision().await.unwrap();
    let err = backend.list(at(current + 1_000_000)).await.unwrap_err();
    assert!(
        matches!(err, StorageError::FutureRevision { requested, .. } if requested == current + 1_000_000),
        "{err:?}"
    );
}

/// A watch from a past revision replays every change since then, in order with prev values,
/// then delivers live changes.
pub async fn watch_replays_history_then_live(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    let a1 = backend.create(&a, val("a1")).await.unwrap();
    let a2 = backend
        .update(&a, val("a2"), a1.mod_revision)
        .await
        .unwrap();
    let b1 = backend.create(&b, val("b1")).await.unwrap();
    let del_a = backend.delete(&a, Some(a2.mod_revision)).await.unwrap();
    // Outside the watched prefix (a sibling sharing its first characters).
    backend
        .create(&format!("{}x/k", prefix.trim_end_matches('/')), val("no"))
        .await
        .unwrap();

    let mut watch = backend.watch(prefix, a1.mod_revision).await.unwrap();
    assert_put(&next_event(&mut watch).await, &a1, None);
    assert_put(&next_event(&mut watch).await, &a2, Some(&a1));
    assert_put(&next_event(&mut watch).await, &b1, None);
    assert_delete(&next_event(&mut watch).await, &a, del_a.revision, &a2);

    // Starting in the middle of the history replays only the rest.
    let mut from_middle = backend.watch(prefix, b1.mod_revision).await.unwrap();
    assert_put(&next_event(&mut from_middle).await, &b1, None);
    assert_delete(&next_event(&mut from_middle).await, &a, del_a.revision, &a2);

    let b2 = backend
        .update(&b, val("b2"), b1.mod_revision)
        .await
        .unwrap();
    let a3 = backend.create(&a, val("a3")).await.unwrap();
    for w in [&mut watch, &mut from_middle] {
        assert_put(&next_event(w).await, &b2, Some(&b1));
        assert_put(&next_event(w).await, &a3, None);
    }
}

/// A watch from the revision after the last write sees only later events, and only under its
/// prefix.
pub async fn watch_from_next_revision_sees_only_new_events(
    backend: Arc<dyn Backend>,
    prefix: &str,
) {
    let _history = HISTORY_LOCK.read().await;
    let old = backend
        .create(&format!("{prefix}old"), val("o"))
        .await
        .unwrap();
    let mut watch = backend.watch(prefix, old.mod_revision + 1).await.unwrap();

    backend
        .create(
            &format!("{}sibling/k", prefix.trim_end_matches('/')),
            val("no"),
        )
        .await
        .unwrap();
    let new = backend
        .create(&format!("{prefix}new"), val("n"))
        .await
        .unwrap();
    let updated = backend
        .update(&format!("{prefix}old"), val("o2"), old.mod_revision)
        .await
        .unwrap();
    assert_put(&next_event(&mut watch).await, &new, None);
    assert_put(&next_event(&mut watch).await, &updated, Some(&old));
}

/// Delete events carry the deleted value as prev, live and replayed.
pub async fn watch_delete_carries_prev(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let key = format!("{prefix}k");
    let kv = backend.create(&key, val("v")).await.unwrap();
    let mut live = backend.watch(prefix, kv.mod_revision + 1).await.unwrap();
    let deleted = backend.delete(&key, Some(kv.mod_revision)).await.unwrap();
    assert_delete(&next_event(&mut live).await, &key, deleted.revision, &kv);

    let mut replay = backend.watch(prefix, deleted.revision).await.unwrap();
    assert_delete(&next_event(&mut replay).await, &key, deleted.revision, &kv);
}

/// After compact(R): a list and a watch at a revision before R fail with Compacted, from the
/// call itself; reads and watches after R still work. Takes [`HISTORY_LOCK`] exclusively.
pub async fn compaction(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.write().await;
    let key = format!("{prefix}k");
    let v1 = backend.create(&key, val("v1")).await.unwrap();
    let v2 = backend
        .update(&key, val("v2"), v1.mod_revision)
        .await
        .unwrap();
    let v3 = backend
        .update(&key, val("v3"), v2.mod_revision)
        .await
        .unwrap();
    let v4 = backend
        .update(&key, val("v4"), v3.mod_revision)
        .await
        .unwrap();

    match backend.compact(v3.mod_revision).await {
        Ok(()) => {}
        // Someone compacted further meanwhile: just as good for this case.
        Err(StorageError::Compacted {
            compact_revision, ..
        }) if compact_revision >= v3.mod_revision => {}
        Err(e) => panic!("compact: {e:?}"),
    }

    let at = |revision| ListOptions {
        prefix: prefix.to_owned(),
        revision: Some(revision),
        ..ListOptions::default()
    };
    let err = backend.list(at(v1.mod_revision)).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Compacted { requested, .. } if requested == v1.mod_revision),
        "{err:?}"
    );
    match backend.watch(prefix, v1.mod_revision).await {
        Err(StorageError::Compacted { .. }) => {}
        Err(e) => panic!("watch from a compacted revision: expected Compacted, got {e:?}"),
        Ok(_) => panic!("watch from a compacted revision: expected Compacted, got a stream"),
    }

    let page = backend.list(at(v4.mod_revision)).await.unwrap();
    assert_eq!(page.kvs, vec![v4.clone()]);
    assert_eq!(backend.get(&key).await.unwrap(), Some(v4.clone()));

    let mut watch = backend.watch(prefix, v4.mod_revision).await.unwrap();
    assert_put(&next_event(&mut watch).await, &v4, Some(&v3));
    let v5 = backend
        .update(&key, val("v5"), v4.mod_revision)
        .await
        .unwrap();
    assert_put(&next_event(&mut watch).await, &v5, Some(&v4));
}

/// Every successful write returns a revision greater than the previous one, and the store's
/// current revision is at least the last of them.
pub async fn revisions_increase(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let start = backend.current_revision().await.unwrap();
    let mut last = start;
    for i in 0..5 {
        let key = format!("{prefix}k{i}");
        let kv = backend.create(&key, val("1")).await.unwrap();
        assert!(kv.mod_revision > last);
        let created = kv.mod_revision;
        let kv = backend
            .update(&key, val("2"), kv.mod_revision)
            .await
            .unwrap();
        assert!(kv.mod_revision > created);
        last = kv.mod_revision;
        if i % 2 == 0 {
            let deleted = backend.delete(&key, None).await.unwrap();
            assert!(deleted.revision > last);
            last = deleted.revision;
        }
        assert!(backend.current_revision().await.unwrap() >= last);
    }
    // Failed writes never go backwards either.
    let _ = backend.create(&format!("{prefix}k1"), val("x")).await;
    assert!(backend.current_revision().await.unwrap() >= last);
}

/// A 1 MiB value (within etcd's default request limit) survives create, get, list and update.
pub async fn large_value_round_trips(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let key = format!("{prefix}big");
    let big: Bytes = (0..1024 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let kv = backend.create(&key, big.clone()).await.unwrap();
    assert_eq!(kv.value.len(), big.len());
    let got = backend.get(&key).await.unwrap().unwrap();
    assert_eq!(got.value, big);
    let page = list_all(&*backend, prefix).await;
    assert_eq!(page.kvs[0].value, big);

    let mut bigger = big.to_vec();
    bigger.reverse();
    let bigger = Bytes::from(bigger);
    backend
        .update(&key, bigger.clone(), kv.mod_revision)
        .await
        .unwrap();
    assert_eq!(backend.get(&key).await.unwrap().unwrap().value, bigger);
}

/// 8 tasks each increment a counter N times with compare-and-swap retry loops (retrying from
/// the value a Conflict carries); no increment is lost.
pub async fn concurrent_cas_loses_no_increment(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    const TASKS: u64 = 8;
    const INCREMENTS: u64 = 25;
    let key = format!("{prefix}counter");
    backend.create(&key, val("0")).await.unwrap();

    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let backend = backend.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let mut current = backend.get(&key).await.unwrap().unwrap();
                for _ in 0..INCREMENTS {
                    loop {
                        let n: u64 = std::str::from_utf8(&current.value)
                            .unwrap()
                            .parse()
                            .unwrap();
                        match backend
                            .update(&key, val(&(n + 1).to_string()), current.mod_revision)
                            .await
                        {
                            Ok(kv) => {
                                current = kv;
                                break;
                            }
                            Err(StorageError::Conflict {
                                current: Some(kv), ..
                            }) => current = kv,
                            Err(e) => panic!("update: {e:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let kv = backend.get(&key).await.unwrap().unwrap();
    assert_eq!(kv.value, val(&(TASKS * INCREMENTS).to_string()));
}

/// `prefix_state` counts the keys under a prefix and those written after a revision, at the
/// current or an older revision; creates, updates and deletes each show.
pub async fn prefix_state_counts_changes_since(backend: Arc<dyn Backend>, prefix: &str) {
    let _history = HISTORY_LOCK.read().await;
    let a = backend
        .create(&format!("{prefix}a"), val("1"))
        .await
        .unwrap();
    let b = backend
        .create(&format!("{prefix}b"), val("1"))
        .await
        .unwrap();
    backend
        .create(&format!("{prefix}bc/x"), val("nested keys count too"))
        .await
        .unwrap();
    let quiet = backend
        .create(&format!("{prefix}c"), val("1"))
        .await
        .unwrap();
    let state = backend
        .prefix_state(prefix, quiet.mod_revision, None)
        .await
        .unwrap();
    assert_eq!((state.count, state.modified_since), (4, 0));
    assert!(state.revision >= quiet.mod_revision);

    let updated = backend
        .update(&a.key, val("2"), a.mod_revision)
        .await
        .unwrap();
    let state = backend
        .prefix_state(prefix, quiet.mod_revision, None)
        .await
        .unwrap();
    assert_eq!(
        (state.count, state.modified_since),
        (4, 1),
        "an update shows"
    );

    backend.delete(&b.key, None).await.unwrap();
    let state = backend
        .prefix_state(prefix, updated.mod_revision, None)
        .await
        .unwrap();
    assert_eq!(
        (state.count, state.modified_since),
        (3, 0),
        "a delete shows only in the count"
    );

    let old = backend
        .prefix_state(prefix, a.mod_revision, Some(b.mod_revision))
        .await
        .unwrap();
    assert_eq!(old.revision, b.mod_revision);
    assert_eq!(
        (old.count, old.modified_since),
        (2, 1),
        "at an older revision"
    );

    let other = backend
        .prefix_state(&format!("{prefix}zz/"), 0, None)
        .await
        .unwrap();
    assert_eq!((other.count, other.modified_since), (0, 0));
}
