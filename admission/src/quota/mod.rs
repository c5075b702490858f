//! ResourceQuota admission (kube's `ResourceQuota` plugin, last of the validating chain):
//! before an object is written, every quota of its namespace that selects it is checked and
//! charged in its `status.used`.
//!
//! # Never over the limit
//!
//! The charge is a compare-and-swap on the quota's revision, in storage, before the object is
//! written: two writers (in one server or in two servers on one etcd) that both read
//! `used: pods=9` cannot both write `pods=10`; the loser gets the quota as it is now from the
//! failed transaction and checks again against it, so 50 parallel creates against `pods: 10`
//! admit exactly 10. Quotas are read from storage, not the watch cache, so a check never
//! starts from a state older than the last charge.
//!
//! # Nothing half done
//!
//! A refused object charges nothing. A charge whose write then fails (the name exists, the
//! Service IP allocation fails, an update loses its race) is given back with the same
//! compare-and-swap loop ([`Charge`]), where kube leaves it for the quota controller to repair.
//! `dryRun` checks and charges nothing.
//!
//! # What it shares
//!
//! What an object costs and which quotas select it is [`usage`], which the quota controller
//! (`kubecache-store`'s `resource_quota`) uses too. Deletes release nothing here: the
//! controller recomputes a namespace's quotas when an object leaves it ([`Quotas::dirty`]).

pub mod usage;

use std::collections::BTreeSet;
use std::sync::Arc;

use kubecache_apimachinery::objects;
use kubecache_core::status::{ApiError, storage_error};
use kubecache_core::storage::{Backend, KeyValue, StorageError};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::plugins::{LimitedResource, QuotaConfiguration};
use crate::{Attributes, Context, Operation, forbidden};
use usage::{Evaluator, ResourceList};

/// The quota state a server's chain keeps: which namespaces' usage the controller should
/// recompute.
#[derive(Default)]
pub struct Quotas {
    dirty: Mutex<BTreeSet<String>>,
    changed: Notify,
}

impl Quotas {
    /// An object left `namespace`: its quotas' usage is due for a recount.
    pub fn mark_dirty(&self, namespace: &str) {
        self.dirty.lock().insert(namespace.to_string());
        self.changed.notify_one();
    }

    /// Waits until a namespace is marked, then takes every marked one.
    pub async fn dirty(&self) -> BTreeSet<String> {
        loop {
            let taken = std::mem::take(&mut *self.dirty.lock());
            if !taken.is_empty() {
                return taken;
            }
            self.changed.notified().await;
        }
    }
}

/// One namespace's quotas as stored now (a consistent read of storage).
pub async fn read_quotas(
    context: &dyn Context,
    namespace: &str,
) -> Result<Vec<KeyValue>, ApiError> {
    crate::list_stored(context, "resourcequotas", namespace).await
}

/// A quota's `status.used` replaced, to write back.
pub fn with_used(quota: &Value, used: &ResourceList) -> Value {
    let mut next = quota.clone();
    if !next["status"].is_object() {
        next["status"] = json!({});
    }
    next["status"]["used"] = usage::list_to_json(used);
    next
}

/// A usage charged to one quota, kept once the object is written, else given back.
/// Dropped unsettled, it is given back in the background.
pub struct Charge {
    key: String,
    delta: ResourceList,
    backend: Arc<dyn Backend>,
    done: bool,
}

impl Charge {
    pub fn keep(mut self) {
        self.done = true;
    }

    pub async fn give_back(mut self) {
        self.done = true;
        refund(self.backend.clone(), self.key.clone(), self.delta.clone()).await;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(refund(
                self.backend.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.delta),
            ));
        }
    }
}

/// Takes `delta` back off the quota at `key` (compare-and-swap, retried on conflict; a quota
/// gone meanwhile needs nothing).
async fn refund(backend: Arc<dyn Backend>, key: String, delta: ResourceList) {
    let mut current = match backend.get(&key).await {
        Ok(Some(kv)) => kv,
        _ => return,
    };
    loop {
        let Ok(quota) = objects::decode(&current) else {
            return;
        };
        let used = usage::parse_list(&quota["status"]["used"]);
        let mut next = with_used(&quota, &usage::subtract_non_negative(&used, &delta));
        match backend
            .update(&key, objects::encode_owned(&mut next), current.mod_revision)
            .await
        {
            Err(StorageError::Conflict {
                current: Some(kv), ..
            }) => current = kv,
            Err(e @ StorageError::Unavailable(_)) | Err(e @ StorageError::Internal(_)) => {
                tracing::warn!("resource quota: could not give back a charge to {key}: {e}");
                return;
            }
            _ => return,
        }
    }
}

/// Checks `object` against its namespace's quotas and charges them; the charges are settled
/// after the write (see the module documentation).
pub async fn admit(
    attrs: &Attributes<'_>,
    config: &QuotaConfiguration,
    object: &Value,
) -> Result<Vec<Charge>, ApiError> {
    let Some(namespace) = attrs.namespace.filter(|_| attrs.resource.namespaced) else {
        return Ok(Vec::new());
    };
    // Subresource writes (status, scale) change nothing quota prices.
    if attrs.subresource.is_some() {
        return Ok(Vec::new());
    }
    let evaluator = Evaluator::of(&attrs.resource.group, &attrs.resource.resource);
    if !evaluator.handles(attrs.operation) {
        return Ok(Vec::new());
    }
    let limited: Vec<&LimitedResource> = config
        .limited_resources
        .iter()
        .filter(|l| l.resource == attrs.resource.resource && l.api_group == attrs.resource.group)
        .collect();
    let quotas = read_quotas(attrs.context, namespace).await?;
    if quotas.is_empty() && limited.is_empty() {
        return Ok(Vec::new());
    }
    let mut delta = evaluator.usage(object);
    if !limited.is_empty() {
        require_covering_quota(attrs, &evaluator, &limited, &delta, &quotas, object)?;
    }
    if attrs.operation == Operation::Update
        && let Some(old) = attrs.old
    {
        delta = usage::subtract_non_negative(&delta, &evaluator.usage(old));
    }
    delta.retain(|_, amount| !amount.is_zero());
    let mut charges = Vec::new();
    for kv in quotas {
        if let Some(charge) = charge_one(attrs, &evaluator, object, &delta, kv).await? {
            charges.push(charge);
        }
    }
    Ok(charges)
}

/// The ResourceQuota configuration's `limitedResources`: what the object consumes of them
/// (usage names containing a `matchContains` entry; scopes of `matchScopes` it matches) must
/// be covered by a quota that selects it, else 403 with kube's message.
fn require_covering_quota(
    attrs: &Attributes<'_>,
    evaluator: &Evaluator,
    limited: &[&LimitedResource],
    consumed: &ResourceList,
    quotas: &[KeyValue],
    object: &Value,
) -> Result<(), ApiError> {
    let quotas: Vec<Value> = quotas
        .iter()
        .map(objects::decode)
        .collect::<Result<_, _>>()?;
    let selecting: Vec<&Value> = quotas
        .iter()
        .filter(|quota| evaluator.matches(quota, object))
        .collect();
    let covered: BTreeSet<&String> = selecting
        .iter()
        .filter_map(|quota| quota["status"]["hard"].as_object())
        .flat_map(|hard| hard.keys())
        .filter(|name| evaluator.tracks(name))
        .collect();
    let uncovered: Vec<&str> = consumed
        .iter()
        .filter(|(name, amount)| {
            amount.value.sign() > 0
                && !covered.contains(name)
                && limited
                    .iter()
                    .any(|l| l.match_contains.iter().any(|c| name.contains(c.as_str())))
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if !uncovered.is_empty() {
        return Err(forbidden(
            attrs,
            object,
            format!("insufficient quota to consume: {}", uncovered.join(",")),
        ));
    }
    if evaluator == &Evaluator::Pods {
        let match_scopes: Vec<Value> = limited
            .iter()
            .flat_map(|l| l.match_scopes.iter().cloned())
            .collect();
        let scopes = usage::uncovered_scopes(&match_scopes, object, &selecting);
        if !scopes.is_empty() {
            return Err(forbidden(
                attrs,
                object,
                format!(
                    "insufficient quota to match these scopes: [{}]",
                    scopes.join(" ")
                ),
            ));
        }
    }
    Ok(())
}

/// One quota: its constraints, then the charge, retried against the quota as it is whenever
/// another writer changed it first. `None`: it does not select the object, or nothing to
/// charge (or a dry run).
async fn charge_one(
    attrs: &Attributes<'_>,
    evaluator: &Evaluator,
    object: &Value,
    delta: &ResourceList,
    mut kv: KeyValue,
) -> Result<Option<Charge>, ApiError> {
    loop {
        let quota = objects::decode(&kv)?;
        if !evaluator.matches(&quota, object) {
            return Ok(None);
        }
        let name = objects::name(&quota).to_string();
        let hard = usage::parse_list(&quota["status"]["hard"]);
        let used = usage::parse_list(&quota["status"]["used"]);
        let limited: Vec<String> = hard
            .keys()
            .filter(|r| evaluator.tracks(r))
            .cloned()
            .collect();
        if let Err(reason) = evaluator.constraints(&limited, object) {
            return Err(forbidden(
                attrs,
                object,
                format!("failed quota: {name}: {reason}"),
            ));
        }
        if limited.iter().any(|r| !used.contains_key(r)) {
            return Err(forbidden(
                attrs,
                object,
                format!(
                    "status unknown for quota: {name}, resources: {}",
                    limited.join(",")
                ),
            ));
        }
        let requested = usage::mask(delta, hard.keys());
        if requested.is_empty() {
            return Ok(None);
        }
        let new_used = usage::add(&used, &requested);
        let exceeded: Vec<&String> = requested
            .keys()
            .filter(|r| new_used[*r].value.compare(&hard[*r].value).is_gt())
            .collect();
        if !exceeded.is_empty() {
            return Err(forbidden(
                attrs,
                object,
                format!(
                    "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                    usage::pretty(&usage::mask(&requested, exceeded.iter().copied())),
                    usage::pretty(&usage::mask(&used, exceeded.iter().copied())),
                    usage::pretty(&usage::mask(&hard, exceeded.iter().copied())),
                ),
            ));
        }
        if attrs.dry_run {
            return Ok(None);
        }
        let mut next = with_used(&quota, &new_used);
        let backend = attrs.context.backend();
        match backend
            .update(&kv.key, objects::encode_owned(&mut next), kv.mod_revision)
            .await
        {
            Ok(_) => {
                return Ok(Some(Charge {
                    key: kv.key,
                    delta: requested,
                    backend: backend.clone(),
                    done: false,
                }));
            }
            Err(StorageError::Conflict {
                current: Some(current),
                ..
            }) => kv = current,
            // Deleted meanwhile: it limits nothing any more.
            Err(StorageError::Conflict { current: None, .. })
            | Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(storage_error(e)),
        }
    }
}
