//! The `AdmissionReview` a webhook is sent (admission.k8s.io/v1, or v1beta1 when that is all
//! it speaks: the same fields) and what is read from its answer, checked as kube's
//! `VerifyAdmissionResponse` checks it.

use base64::Engine;
use kubecache_apimachinery::registry::Resource;
use kubecache_core::authz::UserInfo;
use serde_json::{Map, Value, json};

use crate::{Attributes, Operation};

/// A review for `attrs`, with `object` (and the old object) in `resource`'s version, which
/// differs from the request's when the webhook matched an equivalent version.
pub fn request(
    version: &str,
    uid: &str,
    attrs: &Attributes<'_>,
    resource: &Resource,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Value {
    let kind = |r: &Resource| json!({"group": r.group, "version": r.version, "kind": r.kind});
    let gvr =
        |r: &Resource| json!({"group": r.group, "version": r.version, "resource": r.resource});
    let mut request = Map::new();
    request.insert("uid".into(), json!(uid));
    request.insert("kind".into(), kind(resource));
    request.insert("resource".into(), gvr(resource));
    if let Some(sub) = attrs.subresource {
        request.insert("subResource".into(), json!(sub.as_str()));
    }
    request.insert("requestKind".into(), kind(attrs.resource));
    request.insert("requestResource".into(), gvr(attrs.resource));
    if let Some(sub) = attrs.subresource {
        request.insert("requestSubResource".into(), json!(sub.as_str()));
    }
    let name = object
        .or(old)
        .and_then(|o| o["metadata"]["name"].as_str())
        .unwrap_or_default();
    if !name.is_empty() {
        request.insert("name".into(), json!(name));
    }
    if let Some(namespace) = attrs.namespace.filter(|ns| !ns.is_empty()) {
        request.insert("namespace".into(), json!(namespace));
    }
    request.insert("operation".into(), json!(attrs.operation.as_str()));
    request.insert("userInfo".into(), user_info(attrs.user));
    request.insert("object".into(), object.cloned().unwrap_or(Value::Null));
    request.insert("oldObject".into(), old.cloned().unwrap_or(Value::Null));
    request.insert("dryRun".into(), json!(attrs.dry_run));
    let options_kind = match attrs.operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
    };
    let mut options = json!({"kind": options_kind, "apiVersion": "meta.k8s.io/v1"});
    if attrs.dry_run {
        options["dryRun"] = json!(["All"]);
    }
    request.insert("options".into(), options);
    json!({
        "kind": "AdmissionReview",
        "apiVersion": format!("admission.k8s.io/{version}"),
        "request": request,
    })
}

fn user_info(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.groups.is_empty() {
        info["groups"] = json!(user.groups);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}

/// A webhook's verdict.
#[derive(Debug, Default)]
pub struct Verdict {
    pub allowed: bool,
    /// `response.status` when refused.
    pub status: Value,
    /// A decoded JSONPatch (mutating webhooks only).
    pub patch: Option<json_patch::Patch>,
    pub warnings: Vec<String>,
    pub audit_annotations: Vec<(String, String)>,
}

/// Reads the answer to review `uid`; an error is "received invalid webhook response: …".
pub fn verdict(body: &[u8], version: &str, uid: &str, mutating: bool) -> Result<Verdict, String> {
    let review: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let expected = format!("admission.k8s.io/{version}");
    if version == "v1"
        && (review["apiVersion"] != expected.as_str() || review["kind"] != "AdmissionReview")
    {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {}, Kind={}",
            review["apiVersion"].as_str().unwrap_or_default(),
            review["kind"].as_str().unwrap_or_default()
        ));
    }
    let response = review
        .get("response")
        .filter(|r| r.is_object())
        .ok_or("webhook response was absent")?;
    let got = response["uid"].as_str().unwrap_or_default();
    if version == "v1" && got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    let patch = match (response.get("patch"), response["patchType"].as_str()) {
        (None | Some(Value::Null), None) => None,
        (Some(_), _) | (_, Some(_)) if !mutating => {
            return Err("validating webhooks may not return patches".to_string());
        }
        (Some(_), None) => {
            return Err("webhook returned response.patch but not response.patchType".to_string());
        }
        (None | Some(Value::Null), Some(_)) => None,
        (Some(patch), Some("JSONPatch")) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(patch.as_str().unwrap_or_default())
                .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?;
            Some(
                serde_json::from_slice::<json_patch::Patch>(&bytes)
                    .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?,
            )
        }
        (Some(_), Some(other)) => {
            return Err(format!(
                "webhook returned invalid response.patchType of {other:?}"
            ));
        }
    };
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    Ok(Verdict {
        allowed: response["allowed"].as_bool().unwrap_or(false),
        status: response["status"].clone(),
        patch,
        warnings: strings(&response["warnings"]),
        audit_annotations: response["auditAnnotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(response: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response,
        }))
        .unwrap()
    }

    #[test]
    fn an_answer_must_name_the_review_and_may_patch_only_when_mutating() {
        let patch = base64::engine::general_purpose::STANDARD
            .encode(r#"[{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]"#);
        let body = answer(
            json!({"uid": "u", "allowed": true, "patchType": "JSONPatch", "patch": patch,
            "warnings": ["careful"], "auditAnnotations": {"k": "v"}}),
        );
        let verdict = verdict(&body, "v1", "u", true).unwrap();
        assert!(verdict.allowed);
        assert_eq!(verdict.patch.unwrap().0.len(), 1);
        assert_eq!(verdict.warnings, vec!["careful"]);
        assert_eq!(verdict.audit_annotations, vec![("k".into(), "v".into())]);
        assert_eq!(
            super::verdict(&body, "v1", "other", true).unwrap_err(),
            "expected response.uid=\"other\", got \"u\""
        );
        assert_eq!(
            super::verdict(&body, "v1", "u", false).unwrap_err(),
            "validating webhooks may not return patches"
        );
        let refused =
            answer(json!({"uid": "u", "allowed": false, "status": {"code": 403, "message": "no"}}));
        let verdict = super::verdict(&refused, "v1", "u", false).unwrap();
        assert!(!verdict.allowed);
        assert_eq!(verdict.status["message"], "no");
        assert!(super::verdict(b"<html>", "v1", "u", false).is_err());
    }
}
