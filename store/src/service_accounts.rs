//! kube-controller-manager's service-account controllers, run in-process so a standalone
//! kubecache is usable as a development API (kube-apiserver relies on the controller
//! manager for them):
//!
//! - `serviceaccount`: a `default` ServiceAccount in every active namespace, created again
//!   when deleted;
//! - `root-ca-cert-publisher`: the `kube-root-ca.crt` ConfigMap (`ca.crt`: the CA bundle
//!   clients verify the server with) in every active namespace, restored when changed or
//!   deleted.
//!
//! Both follow watches of namespaces, service accounts and config maps through the read
//! path (the initial events included, so existing namespaces are covered at start) and
//! write through the [`Store`] like any client. `--controllers` turns them off
//! ([`Controllers`]).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kubecache_cache::{Filter, ReadAt, WatchRequest, WatchStart};
use kubecache_core::status::{ApiError, Reason};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Context, Store, Writer};

/// The controller that creates `default` service accounts.
pub const SERVICE_ACCOUNT: &str = "serviceaccount";
/// The controller that publishes `kube-root-ca.crt`.
pub const ROOT_CA_PUBLISHER: &str = "root-ca-cert-publisher";
/// The controllers kubecache runs, all on by default.
pub const KNOWN: &[&str] = &[
    SERVICE_ACCOUNT,
    ROOT_CA_PUBLISHER,
    crate::resource_quota::RESOURCE_QUOTA,
];

/// The ConfigMap every namespace gets, and its one key.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
pub const ROOT_CA_KEY: &str = "ca.crt";
/// kube's description of the ConfigMap, in its `kubernetes.io/description` annotation.
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
/// The service account every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Who these controllers write as (field manager).
const MANAGER: &str = "kube-controller-manager";
/// A watch that ends is started again after this long.
const REWATCH_DELAY: Duration = Duration::from_secs(1);
const WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// `--controllers`, kube-controller-manager's syntax: `*` (every controller on by
/// default), `name` (on), `-name` (off).
#[derive(Debug, Clone)]
pub struct Controllers(Vec<String>);

impl Controllers {
    /// Parses the flag's items; an unknown name is an error, as kube-controller-manager's.
    pub fn parse(items: &[String]) -> Result<Controllers, String> {
        for item in items {
            let name = item.strip_prefix('-').unwrap_or(item);
            if name != "*" && !KNOWN.contains(&name) {
                return Err(format!(
                    "--controllers: {item:?} is not in the list of known controllers ({})",
                    KNOWN.join(", ")
                ));
            }
        }
        Ok(Controllers(items.to_vec()))
    }

    /// Whether `name` runs: named, or not turned off while `*` is given.
    pub fn enabled(&self, name: &str) -> bool {
        if self.0.iter().any(|item| item == name) {
            return true;
        }
        if self
            .0
            .iter()
            .any(|item| item.strip_prefix('-') == Some(name))
        {
            return false;
        }
        self.0.iter().any(|item| item == "*")
    }
}

impl Default for Controllers {
    fn default() -> Self {
        Controllers(vec!["*".to_string()])
    }
}

#[derive(Deserialize)]
pub(crate) struct Event {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) object: Value,
}

/// Runs the enabled controllers for the server's lifetime. `root_ca` is the PEM bundle
/// `kube-root-ca.crt` publishes.
pub async fn run(context: Arc<impl Context + 'static>, controllers: Controllers, root_ca: String) {
    let accounts = controllers.enabled(SERVICE_ACCOUNT);
    let publisher = controllers.enabled(ROOT_CA_PUBLISHER);
    if !accounts && !publisher {
        return;
    }
    let mut watched = vec!["namespaces"];
    if accounts {
        watched.push("serviceaccounts");
    }
    if publisher {
        watched.push("configmaps");
    }
    loop {
        let mut streams = Vec::new();
        for resource in &watched {
            match watch(context.as_ref(), resource).await {
                Ok(stream) => streams.push(stream.map(move |frame| (*resource, frame))),
                Err(e) => tracing::debug!("service-account controllers: watch {resource}: {e}"),
            }
        }
        if streams.len() == watched.len() {
            let mut events = futures::stream::select_all(streams);
            while let Some((resource, frame)) = events.next().await {
                for line in frame.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let Ok(event) = serde_json::from_slice::<Event>(line) else {
                        continue;
                    };
                    if event.kind == "ERROR" {
                        break;
                    }
                    let outcome = handle(
                        context.as_ref(),
                        resource,
                        &event,
                        accounts,
                        publisher.then_some(root_ca.as_str()),
                    )
                    .await;
                    if let Err(e) = outcome {
                        tracing::warn!("service-account controllers: {e}");
                    }
                }
            }
        }
        tokio::time::sleep(REWATCH_DELAY).await;
    }
}

/// A watch of every object of core `resource`, from its current state on.
pub(crate) async fn watch(
    context: &impl Context,
    resource: &str,
) -> Result<kubecache_cache::FrameStream, String> {
    let served = context
        .registry()
        .lookup("", "v1", resource)
        .ok_or_else(|| format!("{resource} are not served"))?;
    let request = WatchRequest {
        resource: served.info().clone(),
        prefix: context.storage_prefix(&served),
        filter: Arc::new(Filter::default()),
        start: WatchStart::Initial(ReadAt::Latest),
        initial_events_end: false,
        table: false,
        protobuf: false,
        bookmarks: false,
        bookmark_interval: Duration::from_secs(60),
        timeout: WATCH_TIMEOUT,
    };
    context
        .reads()
        .watch(request)
        .await
        .map_err(|e| e.to_string())
}

/// What one event asks of the controllers: a namespace that appears gets both objects;
/// a `default` service account or a `kube-root-ca.crt` ConfigMap that goes away (or
/// changes, for the ConfigMap) is put back.
async fn handle(
    context: &impl Context,
    resource: &str,
    event: &Event,
    accounts: bool,
    root_ca: Option<&str>,
) -> Result<(), ApiError> {
    let meta = &event.object["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let namespace = match resource {
        "namespaces" => {
            if event.kind == "DELETED" || meta.get("deletionTimestamp").is_some() {
                return Ok(());
            }
            name
        }
        _ => meta["namespace"].as_str().unwrap_or_default(),
    };
    let ensure_account = accounts
        && (resource == "namespaces"
            || (resource == "serviceaccounts"
                && name == DEFAULT_SERVICE_ACCOUNT
                && event.kind == "DELETED"));
    if ensure_account {
        ensure_default_service_account(context, namespace).await?;
    }
    if let Some(root_ca) = root_ca {
        let ours = resource == "configmaps" && name == ROOT_CA_CONFIG_MAP;
        let stale = ours
            && (event.kind == "DELETED"
                || event.object["data"][ROOT_CA_KEY].as_str() != Some(root_ca));
        if resource == "namespaces" || stale {
            ensure_root_ca(context, namespace, root_ca).await?;
        }
    }
    Ok(())
}

/// Creates `default` in `namespace` unless it exists (or the namespace is going away).
pub async fn ensure_default_service_account(
    context: &impl Context,
    namespace: &str,
) -> Result<(), ApiError> {
    let object = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace},
    });
    create_unless_present(context, "serviceaccounts", namespace, object).await
}

/// Makes `kube-root-ca.crt` in `namespace` hold `root_ca`.
pub async fn ensure_root_ca(
    context: &impl Context,
    namespace: &str,
    root_ca: &str,
) -> Result<(), ApiError> {
    let object = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CA_CONFIG_MAP,
            "namespace": namespace,
            "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
        },
        "data": {ROOT_CA_KEY: root_ca},
    });
    let current = kubecache_admission::read_object(
        context,
        "",
        "v1",
        "configmaps",
        Some(namespace),
        ROOT_CA_CONFIG_MAP,
    )
    .await?;
    match current {
        None => create_unless_present(context, "configmaps", namespace, object).await,
        Some(current) if current["data"][ROOT_CA_KEY].as_str() == Some(root_ca) => Ok(()),
        Some(_) => {
            let configmaps = resource(context, "configmaps");
            let store = Store::new(context, &configmaps);
            let outcome = store
                .update(
                    &Writer::internal(MANAGER),
                    Some(namespace),
                    ROOT_CA_CONFIG_MAP,
                    |current| {
                        let mut next = current.clone();
                        next["data"] = json!({ ROOT_CA_KEY: root_ca });
                        Ok(next)
                    },
                )
                .await;
            ignore_gone(outcome.map(|_| ()))
        }
    }
}

async fn create_unless_present(
    context: &impl Context,
    plural: &str,
    namespace: &str,
    object: Value,
) -> Result<(), ApiError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    if kubecache_admission::read_object(context, "", "v1", plural, Some(namespace), name)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let served = resource(context, plural);
    let outcome = Store::new(context, &served)
        .create(&Writer::internal(MANAGER), Some(namespace), object)
        .await;
    ignore_gone(outcome.map(|_| ()))
}

/// A namespace deleted or terminating meanwhile, or another writer first, is no failure.
fn ignore_gone(outcome: Result<(), ApiError>) -> Result<(), ApiError> {
    match outcome {
        Err(e)
            if matches!(
                e.reason,
                Reason::AlreadyExists | Reason::NotFound | Reason::Forbidden | Reason::Conflict
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn resource(
    context: &impl Context,
    plural: &str,
) -> Arc<kubecache_apimachinery::registry::Resource> {
    context
        .registry()
        .lookup("", "v1", plural)
        .expect("core resources are built in")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(items: &[&str]) -> Controllers {
        Controllers::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn controllers_flag_follows_kube_controller_manager() {
        assert!(flags(&["*"]).enabled(SERVICE_ACCOUNT));
        assert!(!flags(&["*", "-serviceaccount"]).enabled(SERVICE_ACCOUNT));
        assert!(flags(&["*", "-serviceaccount"]).enabled(ROOT_CA_PUBLISHER));
        assert!(flags(&["serviceaccount"]).enabled(SERVICE_ACCOUNT));
        assert!(!flags(&["serviceaccount"]).enabled(ROOT_CA_PUBLISHER));
        assert!(Controllers::parse(&["nope".to_string()]).is_err());
    }
}
