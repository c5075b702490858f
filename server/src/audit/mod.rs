//! Audit: one `audit.k8s.io/v1` `Event` per request and stage, written as JSON lines to
//! `--audit-log-path` at the level `--audit-policy-file` gives (Metadata for everything
//! without one). The audit layer of the filter chain ([`crate::filters::audit`]) drives it;
//! impersonation and authorization add to the request's event through [`AuditHandle`].
//!
//! A failed write is logged and never changes the request's outcome.

pub mod policy;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kubecache_core::authz::UserInfo;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

pub use policy::{Level, Policy, Stage};
pub use writer::{LogOptions, LogWriter};

use crate::filters::info::RequestInfo;

/// The policy and the log.
pub struct Auditor {
    policy: Policy,
    writer: LogWriter,
}

impl Auditor {
    pub fn new(policy: Policy, writer: LogWriter) -> Auditor {
        Auditor { policy, writer }
    }

    /// The level of a request from this user.
    pub fn decide(&self, user: &UserInfo, info: &RequestInfo) -> policy::Decision {
        self.policy.evaluate(user, info)
    }

    /// Writes the event at `stage` unless the policy omits that stage.
    pub fn emit(&self, event: &Event, stage: Stage) {
        if event.level == Level::None || event.omit_stages.contains(&stage) {
            return;
        }
        let line = serde_json::to_vec(&event.to_json(stage, Utc::now()))
            .expect("a JSON value always serializes");
        if let Err(e) = self.writer.write_line(&line) {
            tracing::error!(audit_id = %event.audit_id, "cannot write the audit event: {e}");
        }
    }
}

/// What is known about a request for its audit events; grows as the request travels.
#[derive(Debug, Clone)]
pub struct Event {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
    pub audit_id: String,
    pub request_uri: String,
    pub verb: String,
    pub user: UserInfo,
    /// Set by the impersonation layer.
    pub impersonated_user: Option<UserInfo>,
    pub source_ips: Vec<String>,
    pub user_agent: Option<String>,
    /// From the request info, for resource requests.
    pub object_ref: Option<Value>,
    /// The code, plus status/reason/message of a failure.
    pub response_status: Option<Value>,
    /// The request body (level Request and above).
    pub request_object: Option<Value>,
    /// The response body (level RequestResponse).
    pub response_object: Option<Value>,
    pub received: DateTime<Utc>,
    /// Set by authorization (`authorization.k8s.io/decision`, `.../reason`) and others.
    pub annotations: BTreeMap<String, String>,
}

impl Event {
    pub fn to_json(&self, stage: Stage, now: DateTime<Utc>) -> Value {
        let mut event = Map::new();
        event.insert("kind".into(), json!("Event"));
        event.insert("apiVersion".into(), json!("audit.k8s.io/v1"));
        event.insert("level".into(), json!(self.level.as_str()));
        event.insert("auditID".into(), json!(self.audit_id));
        event.insert("stage".into(), json!(stage.as_str()));
        event.insert("requestURI".into(), json!(self.request_uri));
        event.insert("verb".into(), json!(self.verb));
        event.insert("user".into(), user_json(&self.user));
        if let Some(user) = &self.impersonated_user {
            event.insert("impersonatedUser".into(), user_json(user));
        }
        event.insert("sourceIPs".into(), json!(self.source_ips));
        if let Some(agent) = &self.user_agent {
            event.insert("userAgent".into(), json!(agent));
        }
        if let Some(object_ref) = &self.object_ref {
            event.insert("objectRef".into(), object_ref.clone());
        }
        if stage != Stage::RequestReceived
            && let Some(status) = &self.response_status
        {
            event.insert("responseStatus".into(), status.clone());
        }
        if self.level >= Level::Request
            && let Some(object) = &self.request_object
        {
            event.insert("requestObject".into(), object.clone());
        }
        if self.level >= Level::RequestResponse
            && stage == Stage::ResponseComplete
            && let Some(object) = &self.response_object
        {
            event.insert("responseObject".into(), object.clone());
        }
        event.insert(
            "requestReceivedTimestamp".into(),
            json!(micro_time(self.received)),
        );
        event.insert("stageTimestamp".into(), json!(micro_time(now)));
        if !self.annotations.is_empty() {
            event.insert("annotations".into(), json!(self.annotations));
        }
        Value::Object(event)
    }
}

/// `metav1.MicroTime`: RFC 3339 with microseconds, UTC.
fn micro_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn user_json(user: &UserInfo) -> Value {
    let mut value = json!({"username": user.name});
    if !user.uid.is_empty() {
        value["uid"] = json!(user.uid);
    }
    if !user.groups.is_empty() {
        value["groups"] = json!(user.groups);
    }
    if !user.extra.is_empty() {
        value["extra"] = json!(user.extra);
    }
    value
}

/// The `objectRef` of a resource request.
pub fn object_ref(info: &RequestInfo) -> Option<Value> {
    if !info.is_resource_request {
        return None;
    }
    let mut object = Map::new();
    for (key, value) in [
        ("resource", &info.resource),
        ("namespace", &info.namespace),
        ("name", &info.name),
        ("apiGroup", &info.api_group),
        ("apiVersion", &info.api_version),
        ("subresource", &info.subresource),
    ] {
        if !value.is_empty() {
            object.insert(key.into(), json!(value));
        }
    }
    Some(Value::Object(object))
}

/// The request's event, shared by the layers inside the audit layer (a request extension
/// when auditing is on).
#[derive(Debug, Clone)]
pub struct AuditHandle(pub Arc<Mutex<Event>>);

impl AuditHandle {
    /// Records an annotation (authorization's decision and reason, …).
    pub fn annotate(extensions: &http::Extensions, key: &str, value: &str) {
        if let Some(handle) = extensions.get::<AuditHandle>() {
            handle
                .0
                .lock()
                .annotations
                .insert(key.to_string(), value.to_string());
        }
    }

    /// Records the user the request runs as after impersonation.
    pub fn impersonated(extensions: &http::Extensions, user: &UserInfo) {
        if let Some(handle) = extensions.get::<AuditHandle>() {
            handle.0.lock().impersonated_user = Some(user.clone());
        }
    }
}
