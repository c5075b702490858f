//! Admission webhooks: the `MutatingAdmissionWebhook` and `ValidatingAdmissionWebhook`
//! plugins, which call the webhooks of the MutatingWebhookConfiguration and
//! ValidatingWebhookConfiguration objects (admissionregistration.k8s.io/v1) over HTTPS with an
//! `AdmissionReview`, as kube-apiserver 1.33's `webhook/mutating` and `webhook/validating`
//! dispatchers do.
//!
//! Built from parts meant for reuse: which writes a webhook applies to is
//! [`crate::matching`] (shared with ValidatingAdmissionPolicy), where a `clientConfig.service`
//! is reached is [`crate::endpoints`], the HTTPS calls and their connection pool are
//! [`crate::outbound`], `matchConditions` run on the CRD validation rules' CEL engine
//! ([`kubecache_apiextensions::cel::Expression`]), warnings and audit annotations go to
//! [`crate::notes`].
//!
//! - Configurations are read from the watch cache on every write and compiled only when one
//!   changed ([`config::Configurations`]): a new webhook applies to the next write.
//! - Mutating webhooks run in configuration-name order after the built-in mutating plugins;
//!   a JSONPatch answer is applied (in the version the webhook matched, converted back), and
//!   the object defaulted again. When a webhook changed the object, the webhooks with
//!   `reinvocationPolicy: IfNeeded` called before it are called once more.
//! - Validating webhooks run after the built-in validation of a valid object, all at once.
//! - A refusal is the webhook's status (`admission webhook "<name>" denied the request: …`);
//!   a webhook that cannot be called is skipped under `failurePolicy: Ignore` and a 500
//!   (`failed calling webhook "<name>": …`) under `Fail`; a dry run to a webhook with side
//!   effects is a 400.
//! - `matchConditions` see `object`, `oldObject` and `request` (the review's request);
//!   `authorizer` is not bound: an expression using it fails, which `failurePolicy` decides.

pub mod config;
pub mod metrics;
pub mod review;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use kubecache_apimachinery::registry::Resource;
use kubecache_core::status::{ApiError, Cause, Reason};
use serde_json::Value;

use crate::outbound::Destination;
use crate::{Attributes, MutatingPlugin, ValidatingPlugin, endpoints, notes, strategy};
use config::{Clients, Configurations, Hook, Kind, Target};
use metrics::{CallLabels, Metrics, Rejection};

/// The webhooks of a server: their configurations, connections and counters.
pub struct Webhooks {
    mutating: Configurations,
    validating: Configurations,
    pub clients: Clients,
    pub metrics: Metrics,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            mutating: Configurations::new(Kind::Mutating),
            validating: Configurations::new(Kind::Validating),
            clients: Clients::default(),
            metrics: Metrics::default(),
        }
    }
}

/// Calls the matching mutating webhooks.
pub struct MutatingAdmissionWebhook;

/// Calls the matching validating webhooks, in parallel.
pub struct ValidatingAdmissionWebhook;

#[async_trait]
impl MutatingPlugin for MutatingAdmissionWebhook {
    fn name(&self) -> &'static str {
        "MutatingAdmissionWebhook"
    }

    async fn admit(&self, attrs: &Attributes<'_>, object: &mut Value) -> Result<(), ApiError> {
        let webhooks = &attrs.context.admission().webhooks;
        let hooks = webhooks
            .mutating
            .current(attrs.context, &webhooks.clients)
            .await?;
        // kube's reinvocation: a change marks every reinvocable webhook called before it.
        let mut called_reinvocable = Vec::new();
        let mut reinvoke = BTreeSet::new();
        for round in 0..2 {
            for (index, hook) in hooks.iter().enumerate() {
                if round == 1 && !reinvoke.contains(&index) {
                    continue;
                }
                let Some(resource) = should_call(attrs, hook, object).await? else {
                    continue;
                };
                let started = Instant::now();
                let outcome = mutate_once(attrs, hook, &resource, object).await;
                let changed = settle(attrs, hook, outcome, started, round, index)?;
                if changed {
                    reinvoke.extend(called_reinvocable.iter().copied());
                }
                if hook.reinvoke && round == 0 {
                    called_reinvocable.push(index);
                }
            }
            if reinvoke.is_empty() {
                break;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ValidatingPlugin for ValidatingAdmissionWebhook {
    fn name(&self) -> &'static str {
        "ValidatingAdmissionWebhook"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        object: &Value,
    ) -> Result<Vec<Cause>, ApiError> {
        let webhooks = &attrs.context.admission().webhooks;
        let hooks = webhooks
            .validating
            .current(attrs.context, &webhooks.clients)
            .await?;
        let mut calls = Vec::new();
        for (index, hook) in hooks.iter().enumerate() {
            if let Some(resource) = should_call(attrs, hook, object).await? {
                calls.push(async move {
                    let started = Instant::now();
                    let outcome = validate_once(attrs, hook, &resource, object).await;
                    settle(attrs, hook, outcome.map(|()| false), started, 0, index)
                });
            }
        }
        // In the task of the request (the notes it gathers are the request's).
        for result in futures::future::join_all(calls).await {
            result?;
        }
        Ok(Vec::new())
    }
}

/// Why a call did not end in an answer that allowed the write.
enum Failure {
    /// The webhook could not be called, or answered nonsense (kube's `ErrCallingWebhook`):
    /// `failurePolicy` decides. With the HTTP code for the metrics.
    Calling { reason: String, code: u16 },
    /// Refused, by the webhook or before calling it (dry run): the request fails.
    Refused(ApiError),
    /// kubecache failed around the call.
    Internal(ApiError),
}

/// The resource to call `hook` in when it applies to this write, and its matchConditions
/// allow it. A condition that fails to evaluate is a call failure under `failurePolicy`.
async fn should_call(
    attrs: &Attributes<'_>,
    hook: &Hook,
    object: &Value,
) -> Result<Option<Arc<Resource>>, ApiError> {
    let Some(resource) = hook.criteria.matches(attrs, object).await? else {
        return Ok(None);
    };
    if hook.conditions.is_empty() {
        return Ok(Some(resource));
    }
    let request = review::request("v1", "", attrs, &resource, None, None)["request"].clone();
    let old = attrs.old.cloned().unwrap_or(Value::Null);
    for (name, expression) in &hook.conditions {
        let outcome = expression.eval_bool(&[
            ("object", object),
            ("oldObject", &old),
            ("request", &request),
        ]);
        match outcome {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) if hook.fail_closed => {
                return Err(ApiError::internal(format!(
                    "failed calling webhook {:?}: failed to evaluate match condition {name:?}: {e}",
                    hook.name
                )));
            }
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(resource))
}

/// Records a call's outcome (metrics, failing open) and turns it into the write's: `true`
/// when the object changed.
fn settle(
    attrs: &Attributes<'_>,
    hook: &Hook,
    outcome: Result<bool, Failure>,
    started: Instant,
    round: usize,
    index: usize,
) -> Result<bool, ApiError> {
    let metrics = &attrs.context.admission().webhooks.metrics;
    let elapsed = started.elapsed();
    let labels = |rejected: bool| -> CallLabels {
        (
            hook.name.clone(),
            hook.kind.metric_type(),
            attrs.operation.as_str(),
            rejected,
        )
    };
    match outcome {
        Ok(changed) => {
            metrics.observe(labels(false), 200, elapsed);
            Ok(changed)
        }
        Err(Failure::Calling { reason, code }) => {
            let rejected = hook.fail_closed;
            metrics.observe(labels(rejected), code, elapsed);
            if rejected {
                metrics.reject(&labels(true), Rejection::CallingWebhookError, code);
                tracing::warn!(webhook = %hook.name, "failed calling webhook, failing closed: {reason}");
                return Err(ApiError::internal(format!(
                    "failed calling webhook {:?}: {reason}",
                    hook.name
                )));
            }
            tracing::warn!(webhook = %hook.name, "failed calling webhook, failing open: {reason}");
            let key = match hook.kind {
                Kind::Mutating => format!(
                    "failed-open.mutation.webhook.admission.k8s.io/round_{round}_index_{index}"
                ),
                Kind::Validating => {
                    format!("failed-open.validating.webhook.admission.k8s.io/round_0_index_{index}")
                }
            };
            notes::annotate(&key, &hook.name);
            Ok(false)
        }
        Err(Failure::Refused(error)) => {
            metrics.observe(labels(true), error.code, elapsed);
            metrics.reject(&labels(true), Rejection::NoError, error.code);
            Err(error)
        }
        Err(Failure::Internal(error)) => {
            metrics.observe(labels(true), 0, elapsed);
            metrics.reject(&labels(true), Rejection::ApiserverInternalError, 0);
            Err(error)
        }
    }
}

/// One mutating call: the object patched as the webhook says (converted to and from the
/// version it matched), defaulted again. Returns whether it changed.
async fn mutate_once(
    attrs: &Attributes<'_>,
    hook: &Hook,
    resource: &Resource,
    object: &mut Value,
) -> Result<bool, Failure> {
    let sent = convert(object.clone(), attrs.resource, resource).await?;
    let old = match attrs.old {
        Some(old) => Some(convert(old.clone(), attrs.resource, resource).await?),
        None => None,
    };
    let verdict = call(attrs, hook, resource, Some(&sent), old.as_ref()).await?;
    let Some(patch) = verdict.patch.filter(|p| !p.0.is_empty()) else {
        return Ok(false);
    };
    let mut patched = sent;
    json_patch::patch(&mut patched, &patch)
        .map_err(|e| Failure::Internal(ApiError::internal(e.to_string())))?;
    let mut patched = convert(patched, resource, attrs.resource).await?;
    strategy::Defaulting
        .admit(attrs, &mut patched)
        .await
        .map_err(Failure::Internal)?;
    let changed = patched != *object;
    *object = patched;
    Ok(changed)
}

async fn validate_once(
    attrs: &Attributes<'_>,
    hook: &Hook,
    resource: &Resource,
    object: &Value,
) -> Result<(), Failure> {
    let sent = convert(object.clone(), attrs.resource, resource).await?;
    let old = match attrs.old {
        Some(old) => Some(convert(old.clone(), attrs.resource, resource).await?),
        None => None,
    };
    call(attrs, hook, resource, Some(&sent), old.as_ref()).await?;
    Ok(())
}

/// `object` of resource `from` in `to`'s version (another version of the same resource,
/// through their common stored shape).
async fn convert(object: Value, from: &Resource, to: &Resource) -> Result<Value, Failure> {
    if from.is(to.info()) {
        return Ok(object);
    }
    let internal = |e: ApiError| Failure::Internal(e);
    let stored = if from.converts() {
        from.strategy()
            .convert_to_storage(object)
            .await
            .map_err(internal)?
    } else {
        object
    };
    if to.converts() {
        to.strategy()
            .convert_to_served(stored)
            .await
            .map_err(internal)
    } else {
        Ok(stored)
    }
}

/// Sends the review and reads the verdict; a refusal, warnings and audit annotations are
/// handled here.
async fn call(
    attrs: &Attributes<'_>,
    hook: &Hook,
    resource: &Resource,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<review::Verdict, Failure> {
    let calling = |reason: String, code: u16| Failure::Calling { reason, code };
    if attrs.dry_run && !hook.dry_run_safe {
        return Err(Failure::Refused(ApiError::bad_request(format!(
            "admission webhook {:?} does not support dry run",
            hook.name
        ))));
    }
    let Some(version) = hook.review_version else {
        return Err(calling(
            "webhook does not accept known AdmissionReview versions".to_string(),
            0,
        ));
    };
    let client = hook
        .client
        .as_ref()
        .map_err(|e| calling(format!("could not get REST client: {e}"), 500))?;
    // kube tells the webhook its deadline, in whole seconds.
    let timeout_parameter = format!("timeout={}s", hook.timeout.as_secs().max(1));
    let url = hook.target.url();
    let separator = if url.contains('?') { '&' } else { '?' };
    let post_error = |e: String| {
        calling(
            format!("failed to call webhook: Post \"{url}{separator}{timeout_parameter}\": {e}"),
            503,
        )
    };
    let (destination, path) = match &hook.target {
        Target::Url { destination, path } => (destination.clone(), path.clone()),
        Target::Service {
            namespace,
            name,
            port,
            path,
        } => {
            let (host, port_to) = endpoints::resolve(attrs.context, namespace, name, *port)
                .await
                .map_err(post_error)?;
            let server_name = format!("{name}.{namespace}.svc");
            let destination = Destination {
                host,
                port: port_to,
                server_name,
            };
            (destination, path.clone())
        }
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let path = format!("{path}{separator}{timeout_parameter}");
    let uid = uuid::Uuid::new_v4().to_string();
    let body = review::request(version, &uid, attrs, resource, object, old);
    let body = Bytes::from(serde_json::to_vec(&body).expect("a JSON value always serializes"));
    let answer = client
        .post_json(&destination, &path, body, hook.timeout)
        .await
        .map_err(post_error)?;
    if !answer.status.is_success() {
        let code = answer.status.as_u16();
        let text = String::from_utf8_lossy(&answer.body[..answer.body.len().min(256)]).into_owned();
        return Err(calling(
            format!(
                "failed to call webhook: an error on the server ({text:?}) has prevented the request from succeeding"
            ),
            code,
        ));
    }
    let verdict = review::verdict(&answer.body, version, &uid, hook.kind == Kind::Mutating)
        .map_err(|e| calling(format!("received invalid webhook response: {e}"), 503))?;
    for (key, value) in &verdict.audit_annotations {
        notes::annotate(&format!("{}/{key}", hook.name), value);
    }
    for warning in &verdict.warnings {
        notes::warn(warning);
    }
    if !verdict.allowed {
        return Err(Failure::Refused(denied(&hook.name, &verdict.status)));
    }
    Ok(verdict)
}

/// kube's `ToStatusErr`: the webhook's status, its message prefixed with who denied it, its
/// code at least 400.
fn denied(webhook: &str, status: &Value) -> ApiError {
    let by = format!("admission webhook {webhook:?} denied the request");
    let message = status["message"].as_str().filter(|m| !m.is_empty());
    let reason = status["reason"].as_str().filter(|r| !r.is_empty());
    let text = match (message, reason) {
        (Some(message), _) => format!("{by}: {message}"),
        (None, Some(reason)) => format!("{by}: {reason}"),
        (None, None) => format!("{by} without explanation"),
    };
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let mut error = ApiError::new(code, reason_of(reason, code), text);
    if let Some(causes) = status.pointer("/details/causes").and_then(Value::as_array) {
        error.causes = causes
            .iter()
            .map(|c| {
                Cause::new(
                    c["reason"].as_str().unwrap_or_default(),
                    c["field"].as_str().unwrap_or_default(),
                    c["message"].as_str().unwrap_or_default(),
                )
            })
            .collect();
    }
    error
}

/// The webhook's `reason` where kubecache knows it, else the one its code implies (a custom
/// reason string cannot be passed on: see docs/SECURITY.md).
fn reason_of(reason: Option<&str>, code: u16) -> Reason {
    const KNOWN: [Reason; 18] = [
        Reason::BadRequest,
        Reason::Unauthorized,
        Reason::Forbidden,
        Reason::NotFound,
        Reason::AlreadyExists,
        Reason::Conflict,
        Reason::Gone,
        Reason::Expired,
        Reason::Invalid,
        Reason::MethodNotAllowed,
        Reason::NotAcceptable,
        Reason::RequestEntityTooLarge,
        Reason::UnsupportedMediaType,
        Reason::TooManyRequests,
        Reason::Timeout,
        Reason::ServerTimeout,
        Reason::InternalError,
        Reason::ServiceUnavailable,
    ];
    if let Some(known) = reason.and_then(|r| KNOWN.into_iter().find(|k| k.as_str() == r)) {
        return known;
    }
    match code {
        401 => Reason::Unauthorized,
        403 => Reason::Forbidden,
        404 => Reason::NotFound,
        409 => Reason::Conflict,
        422 => Reason::Invalid,
        429 => Reason::TooManyRequests,
        500 => Reason::InternalError,
        503 => Reason::ServiceUnavailable,
        504 => Reason::Timeout,
        _ => Reason::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refusal_reads_as_kubes() {
        let error = denied(
            "deny.example.com",
            &json!({"code": 403, "reason": "Forbidden", "message": "no pods today"}),
        );
        assert_eq!(error.code, 403);
        assert_eq!(error.reason, Reason::Forbidden);
        assert_eq!(
            error.message,
            "admission webhook \"deny.example.com\" denied the request: no pods today"
        );
        let bare = denied("x", &json!({"code": 200}));
        assert_eq!(bare.code, 400);
        assert_eq!(
            bare.message,
            "admission webhook \"x\" denied the request without explanation"
        );
        assert_eq!(
            denied("x", &json!({"reason": "Custom"})).message,
            "admission webhook \"x\" denied the request: Custom"
        );
    }
}
