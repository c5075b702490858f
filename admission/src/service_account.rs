//! The ServiceAccount admission plugin on pod creation, as kube-apiserver enables it by
//! default: the pod runs as `default` unless it names a service account, that account must
//! exist (403 otherwise), and — unless the pod or its account turns automounting off — every
//! container and init container mounts a projected `kube-api-access-<random>` volume
//! (a bound token, the `kube-root-ca.crt` CA and the namespace) at
//! `/var/run/secrets/kubernetes.io/serviceaccount`. A pod without image pull secrets gets its
//! account's. Mirror pods (static pods of a kubelet) are left as they are.

use std::time::Duration;

use async_trait::async_trait;
use kubecache_core::status::ApiError;
use serde_json::{Value, json};

use super::{Attributes, MutatingPlugin, Operation};
use kubecache_apimachinery::objects;

/// Where the token volume is mounted.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token volume's name, before its random suffix.
const VOLUME_PREFIX: &str = "kube-api-access-";
/// The projected token's lifetime (kube's "warn-only" 1 h + 7 s, which kube-apiserver may
/// extend for old clients).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// The service account of a pod that names none.
const DEFAULT_ACCOUNT: &str = "default";
/// The annotation of a mirror pod.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

pub struct ServiceAccount;

#[async_trait]
impl MutatingPlugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn admit(&self, attrs: &Attributes<'_>, pod: &mut Value) -> Result<(), ApiError> {
        if attrs.kind() != ("", "Pod")
            || attrs.subresource.is_some()
            || attrs.operation != Operation::Create
            || !pod.get("spec").is_some_and(Value::is_object)
        {
            return Ok(());
        }
        if pod
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(MIRROR_POD_ANNOTATION))
            .is_some()
        {
            return Ok(());
        }
        let spec = &mut pod["spec"];
        let named = spec["serviceAccountName"].as_str().unwrap_or("");
        let account_name = if named.is_empty() {
            DEFAULT_ACCOUNT.to_string()
        } else {
            named.to_string()
        };
        spec["serviceAccountName"] = json!(account_name);
        let namespace = attrs.namespace.unwrap_or("");
        let account = find_account(attrs, namespace, &account_name)
            .await?
            .ok_or_else(|| {
                super::priority::forbidden(
                    pod,
                    &format!(
                        "error looking up service account {namespace}/{account_name}: serviceaccount \"{account_name}\" not found"
                    ),
                )
            })?;
        let spec = &mut pod["spec"];
        let automount = spec["automountServiceAccountToken"]
            .as_bool()
            .or_else(|| account["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        if automount {
            mount_token(spec);
        }
        let has_pull_secrets = spec["imagePullSecrets"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        if let Some(secrets) = account["imagePullSecrets"]
            .as_array()
            .filter(|s| !s.is_empty())
            && !has_pull_secrets
        {
            let references: Vec<Value> = secrets
                .iter()
                .map(|s| json!({"name": s["name"].as_str().unwrap_or("")}))
                .collect();
            spec["imagePullSecrets"] = Value::Array(references);
        }
        Ok(())
    }
}

/// The pod's service account. `default` is looked for a while (10 reads, 100–200 ms
/// apart, as kube's plugin does): the controller creates it just after its namespace.
async fn find_account(
    attrs: &Attributes<'_>,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let attempts = if name == DEFAULT_ACCOUNT { 10 } else { 1 };
    let pause = Duration::from_millis(100 + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 100);
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(pause).await;
        }
        let found = super::read_object(
            attrs.context,
            "",
            "v1",
            "serviceaccounts",
            Some(namespace),
            name,
        )
        .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Mounts the token volume in every container and init container that has nothing at the
/// mount path yet, adding the volume (an existing `kube-api-access-*` one is reused).
fn mount_token(spec: &mut Value) {
    let existing = spec["volumes"].as_array().and_then(|volumes| {
        volumes
            .iter()
            .filter_map(|v| v["name"].as_str())
            .find(|name| name.starts_with(VOLUME_PREFIX))
            .map(str::to_string)
    });
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| objects::generate_name(VOLUME_PREFIX));
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec[list].as_array_mut() else {
            continue;
        };
        for container in containers {
            let has_mount = container["volumeMounts"].as_array().is_some_and(|mounts| {
                mounts
                    .iter()
                    .any(|m| m["mountPath"].as_str() == Some(TOKEN_MOUNT_PATH))
            });
            if has_mount {
                continue;
            }
            let mount =
                json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
            match container["volumeMounts"].as_array_mut() {
                Some(mounts) => mounts.push(mount),
                None => container["volumeMounts"] = json!([mount]),
            }
            mounted = true;
        }
    }
    if mounted && existing.is_none() {
        let volume = token_volume(&volume_name);
        match spec["volumes"].as_array_mut() {
            Some(volumes) => volumes.push(volume),
            None => spec["volumes"] = json!([volume]),
        }
    }
}

/// The projected volume, with the defaults kube's decoding would give it (this plugin runs
/// after defaulting, as kube's runs after decoding).
fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ],
            "defaultMode": 420
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_mounts_one_volume() {
        let mut spec = json!({
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]}
            ]
        });
        mount_token(&mut spec);
        let volume = spec["volumes"][0]["name"].as_str().unwrap().to_string();
        assert!(volume.starts_with(VOLUME_PREFIX) && volume.len() == VOLUME_PREFIX.len() + 5);
        assert_eq!(
            spec["initContainers"][0]["volumeMounts"][0]["name"],
            volume.as_str()
        );
        assert_eq!(spec["containers"][0]["volumeMounts"][0]["readOnly"], true);
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            spec["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        // Mounted everywhere already: nothing added.
        let mut spec = json!({"containers": [{"name": "b", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]}]});
        mount_token(&mut spec);
        assert!(spec.get("volumes").is_none());
    }
}
