//! The webhook configurations as the plugins use them: read from the watch cache on every
//! write and compiled again only when one of them changed (their keys and resourceVersions
//! are the cache key), so a new webhook applies at once and an unchanged set costs a cached
//! list.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kubecache_apiextensions::cel::Expression;
use kubecache_apimachinery::registry::Resource;
use kubecache_cache::{Filter, ListRequest, ReadAt};
use kubecache_core::status::{ApiError, storage_error};
use kubecache_core::storage::{KeyValue, ListOptions};
use parking_lot::Mutex;
use serde_json::Value;

use crate::Context;
use crate::matching::Criteria;
use crate::outbound::{self, Client, Destination};

/// kube's default `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Mutating or validating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mutating,
    Validating,
}

impl Kind {
    fn resource(self) -> &'static str {
        match self {
            Kind::Mutating => "mutatingwebhookconfigurations",
            Kind::Validating => "validatingwebhookconfigurations",
        }
    }

    /// kube's `type` label of the webhook metrics.
    pub fn metric_type(self) -> &'static str {
        match self {
            Kind::Mutating => "admit",
            Kind::Validating => "validating",
        }
    }
}

/// Where a webhook is.
pub enum Target {
    /// `clientConfig.url`.
    Url {
        destination: Destination,
        path: String,
    },
    /// `clientConfig.service`, resolved to an endpoint on each call ([`crate::endpoints`]).
    Service {
        namespace: String,
        name: String,
        port: i64,
        path: String,
    },
}

impl Target {
    /// The URL kube's client names in its errors (without the timeout parameter).
    pub fn url(&self) -> String {
        match self {
            Target::Url { destination, path } => format!(
                "https://{}{path}",
                outbound::authority(&destination.server_name, destination.port)
            ),
            Target::Service {
                namespace,
                name,
                port,
                path,
            } => format!("https://{name}.{namespace}.svc:{port}{path}"),
        }
    }
}

/// One webhook of a configuration, ready to call.
pub struct Hook {
    pub name: String,
    pub configuration: String,
    pub kind: Kind,
    pub criteria: Criteria,
    /// `matchConditions`: name and compiled CEL expression.
    pub conditions: Vec<(String, Expression)>,
    pub target: Target,
    /// The connections of its `caBundle`, or why it has none (every call fails).
    pub client: Result<Arc<Client>, String>,
    /// `failurePolicy: Fail` (the default).
    pub fail_closed: bool,
    pub timeout: Duration,
    /// `sideEffects` is `None` or `NoneOnDryRun`: it may be called for a dry run.
    pub dry_run_safe: bool,
    /// `reinvocationPolicy: IfNeeded`.
    pub reinvoke: bool,
    /// The AdmissionReview version to send: the first of `admissionReviewVersions` kube
    /// speaks; `None` when it names none (every call fails).
    pub review_version: Option<&'static str>,
}

/// The compiled webhooks of one kind, and what they were compiled from.
struct Compiled {
    /// (key, resourceVersion) of every configuration.
    from: Vec<(String, i64)>,
    hooks: Arc<Vec<Arc<Hook>>>,
}

/// The webhooks of one kind, read live.
pub struct Configurations {
    kind: Kind,
    compiled: Mutex<Option<Compiled>>,
}

impl Configurations {
    pub fn new(kind: Kind) -> Configurations {
        Configurations {
            kind,
            compiled: Mutex::default(),
        }
    }

    /// The webhooks now, configurations in name order as kube sorts them.
    pub async fn current(
        &self,
        context: &dyn Context,
        clients: &Clients,
    ) -> Result<Arc<Vec<Arc<Hook>>>, ApiError> {
        let Some(resource) =
            context
                .registry()
                .lookup("admissionregistration.k8s.io", "v1", self.kind.resource())
        else {
            return Ok(Arc::default());
        };
        let stored = stored_configurations(context, &resource).await?;
        let from: Vec<(String, i64)> = stored
            .iter()
            .map(|kv| (kv.key.clone(), kv.mod_revision))
            .collect();
        if let Some(compiled) = &*self.compiled.lock()
            && compiled.from == from
        {
            return Ok(compiled.hooks.clone());
        }
        let mut configurations = Vec::new();
        for kv in &stored {
            match serde_json::from_slice::<Value>(&kv.value) {
                Ok(configuration) => configurations.push(configuration),
                Err(e) => tracing::warn!(key = %kv.key, "webhook configuration is not JSON: {e}"),
            }
        }
        configurations.sort_by(|a, b| {
            a["metadata"]["name"]
                .as_str()
                .cmp(&b["metadata"]["name"].as_str())
        });
        let mut hooks = Vec::new();
        for configuration in &configurations {
            let name = configuration["metadata"]["name"]
                .as_str()
                .unwrap_or_default();
            for hook in configuration["webhooks"].as_array().into_iter().flatten() {
                match compile(self.kind, name, hook, clients) {
                    Ok(hook) => hooks.push(Arc::new(hook)),
                    Err(e) => tracing::warn!(configuration = name, "webhook skipped: {e}"),
                }
            }
        }
        let hooks = Arc::new(hooks);
        *self.compiled.lock() = Some(Compiled {
            from,
            hooks: hooks.clone(),
        });
        Ok(hooks)
    }
}

/// Every configuration of `resource`, from the watch cache; from storage while the cache is
/// not ready yet (the server's own writes at startup pass admission too).
async fn stored_configurations(
    context: &dyn Context,
    resource: &Resource,
) -> Result<Vec<KeyValue>, ApiError> {
    let prefix = context.storage_prefix(resource);
    let cached = context
        .reads()
        .list(ListRequest {
            resource: resource.info().clone(),
            prefix: prefix.clone(),
            start_key: None,
            limit: None,
            at: ReadAt::Any,
            filter: Arc::new(Filter::default()),
            remaining_hint: None,
        })
        .await;
    if let Ok(listed) = cached {
        return Ok(listed.objects.iter().map(|o| o.kv.clone()).collect());
    }
    let page = context
        .backend()
        .list(ListOptions {
            prefix,
            start_key: None,
            limit: None,
            revision: None,
        })
        .await
        .map_err(storage_error)?;
    Ok(page.kvs)
}

/// The clients of every `caBundle` in use, kept across recompilations so a configuration
/// change does not drop the connections of the webhooks it did not touch.
#[derive(Default)]
pub struct Clients {
    by_bundle: Mutex<HashMap<String, Arc<Client>>>,
}

impl Clients {
    fn get(&self, ca_bundle: &str) -> Result<Arc<Client>, String> {
        if let Some(client) = self.by_bundle.lock().get(ca_bundle) {
            return Ok(client.clone());
        }
        let tls = outbound::tls_config(Some(ca_bundle))?;
        let client = Arc::new(Client::new(tls));
        self.by_bundle
            .lock()
            .insert(ca_bundle.to_string(), client.clone());
        Ok(client)
    }

    /// Connections opened so far, over every webhook.
    pub fn connections_opened(&self) -> u64 {
        self.by_bundle
            .lock()
            .values()
            .map(|c| c.connections_opened())
            .sum()
    }
}

/// One webhook (validated when its configuration was written, so defaults are set).
fn compile(
    kind: Kind,
    configuration: &str,
    hook: &Value,
    clients: &Clients,
) -> Result<Hook, String> {
    let name = hook["name"].as_str().unwrap_or_default().to_string();
    let criteria = Criteria::parse(hook)?;
    let config = &hook["clientConfig"];
    let target = match (config["url"].as_str(), config.get("service")) {
        (Some(url), _) => {
            let (host, port, path) = outbound::parse_https_url(url);
            Target::Url {
                destination: Destination {
                    host: host.clone(),
                    port,
                    server_name: host,
                },
                path,
            }
        }
        (None, Some(service)) => Target::Service {
            namespace: service["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            name: service["name"].as_str().unwrap_or_default().to_string(),
            port: service["port"].as_i64().unwrap_or(443),
            path: service["path"].as_str().unwrap_or_default().to_string(),
        },
        (None, None) => return Err(format!("webhook {name:?} has no clientConfig")),
    };
    let review_version = hook["admissionReviewVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|v| match v {
            "v1" => Some("v1"),
            "v1beta1" => Some("v1beta1"),
            _ => None,
        });
    Ok(Hook {
        configuration: configuration.to_string(),
        kind,
        criteria,
        conditions: hook["matchConditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                Expression::compile(c["expression"].as_str().unwrap_or_default()).map(|e| (name, e))
            })
            .collect::<Result<_, _>>()?,
        target,
        client: clients.get(config["caBundle"].as_str().unwrap_or_default()),
        fail_closed: hook["failurePolicy"] != "Ignore",
        timeout: hook["timeoutSeconds"]
            .as_u64()
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TIMEOUT),
        dry_run_safe: matches!(hook["sideEffects"].as_str(), Some("None" | "NoneOnDryRun")),
        reinvoke: hook["reinvocationPolicy"] == "IfNeeded",
        review_version,
        name,
    })
}
