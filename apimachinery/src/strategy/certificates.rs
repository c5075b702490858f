//! certificates.k8s.io/v1 CertificateSigningRequests (kube's
//! `pkg/registry/certificates/certificates`): three writers with three strategies. A create
//! records its requester in the spec; the spec never changes after; the `approval`
//! subresource changes only the conditions (Approved or Denied, never both, never removed);
//! the `status` subresource the certificate and the other conditions. The request must be a
//! PEM CSR whose signature verifies (`csr`).

use std::collections::HashSet;

use chrono::SecondsFormat;
use k8s_openapi::api::certificates::v1 as api;
use kubecache_core::authz::UserInfo;
use kubecache_core::registry::{CLUSTER, ResourceInfo};
use kubecache_core::request::Subresource;
use kubecache_core::status::Cause;
use kubecache_core::validation as names;
use serde_json::{Map, Value, json};

use super::validation::{array_at, duplicate, forbidden, invalid, not_supported, required};
use super::{Strategy, typed_as};
use crate::table::{self, Printer};

pub mod csr;

pub struct CertificateSigningRequests;

impl Strategy for CertificateSigningRequests {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "certificates.k8s.io",
            "v1",
            "certificatesigningrequests",
            "certificatesigningrequest",
            "CertificateSigningRequest",
            CLUSTER,
        )
        .short(&["csr"])
        .status()
        .subresources(&[Subresource::Approval])
        .selectable(&["spec.signerName"])
    }
    typed_as!(api::CertificateSigningRequest);
    /// The requester is the server's to record, never the client's to claim.
    fn record_requester(&self, object: &mut Value, user: &UserInfo) {
        let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        for key in ["username", "uid", "groups", "extra"] {
            spec.remove(key);
        }
        spec.insert("username".into(), json!(user.name));
        if !user.uid.is_empty() {
            spec.insert("uid".into(), json!(user.uid));
        }
        if !user.groups.is_empty() {
            spec.insert("groups".into(), json!(user.groups));
        }
        if !user.extra.is_empty() {
            spec.insert("extra".into(), json!(user.extra));
        }
    }
    /// The spec is immutable: an update of the main resource keeps the stored one.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        copy_field(new, old, "spec");
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validate(object, &Options::for_update_of(None, object))
    }
    /// `approval` takes only the conditions of the write (the certificate stays);
    /// `status` takes everything but the spec, and keeps the stored Approved and Denied
    /// conditions where the write has as many of them (a change in their number is left to
    /// validation, which refuses it). Both give new conditions their timestamps.
    fn merge_subresource_write(
        &self,
        subresource: Subresource,
        current: &Value,
        submitted: &Value,
    ) -> Value {
        let mut merged = crate::objects::apply_status_update(current, submitted);
        match subresource {
            Subresource::Approval => {
                let certificate = current.pointer("/status/certificate").cloned();
                if let Some(status) = merged.get_mut("status").and_then(Value::as_object_mut) {
                    match certificate {
                        Some(certificate) => status.insert("certificate".into(), certificate),
                        None => status.remove("certificate"),
                    };
                }
            }
            _ => {
                for kind in APPROVAL_CONDITIONS {
                    preserve_conditions(&mut merged, current, kind);
                }
            }
        }
        populate_condition_timestamps(&mut merged, current);
        merged
    }
    fn validate_subresource_update(
        &self,
        subresource: Subresource,
        new: &Value,
        old: &Value,
    ) -> Vec<Cause> {
        let mut options = Options::for_update_of(Some(old), new);
        match subresource {
            Subresource::Approval => options.setting_approval = true,
            _ => options.setting_certificate = true,
        }
        let mut out = validate(new, &options);
        update_rules(new, old, &options, &mut out);
        out
    }
    fn printer(&self) -> &'static Printer {
        &table::CERTIFICATE_SIGNING_REQUEST
    }
}

fn copy_field(new: &mut Value, old: &Value, key: &str) {
    if let Some(map) = new.as_object_mut() {
        match old.get(key) {
            Some(value) => map.insert(key.into(), value.clone()),
            None => map.remove(key),
        };
    }
}

const APPROVAL_CONDITIONS: [&str; 2] = ["Approved", "Denied"];
/// Condition types that may only be `True` and never be removed.
const TRUE_ONLY_CONDITIONS: [&str; 3] = ["Approved", "Denied", "Failed"];

fn conditions(object: &Value) -> &[Value] {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn conditions_of<'a>(object: &'a Value, kind: &str) -> Vec<&'a Value> {
    conditions(object)
        .iter()
        .filter(|c| c["type"] == kind)
        .collect()
}

/// kube's `preserveConditionInstances`: the stored instances of `kind` replace the written
/// ones, when there are as many.
fn preserve_conditions(new: &mut Value, old: &Value, kind: &str) {
    let stored: Vec<Value> = conditions_of(old, kind).into_iter().cloned().collect();
    let Some(written) = new
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let slots: Vec<&mut Value> = written.iter_mut().filter(|c| c["type"] == kind).collect();
    if slots.len() == stored.len() {
        for (slot, value) in slots.into_iter().zip(stored) {
            *slot = value;
        }
    }
}

/// kube's `populateConditionTimestamps`: `lastUpdateTime` now when missing;
/// `lastTransitionTime` kept from a stored condition of the same type and status, else now.
fn populate_condition_timestamps(new: &mut Value, old: &Value) {
    let now = chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let stored = conditions(old).to_vec();
    let Some(written) = new
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for condition in written.iter_mut().filter_map(Value::as_object_mut) {
        let unset = |c: &Map<String, Value>, key: &str| c.get(key).is_none_or(Value::is_null);
        if unset(condition, "lastUpdateTime") {
            condition.insert("lastUpdateTime".into(), json!(now));
        }
        if unset(condition, "lastTransitionTime") {
            let kept = stored
                .iter()
                .find(|s| {
                    s.get("type") == condition.get("type")
                        && s.get("status") == condition.get("status")
                        && s.get("lastTransitionTime").is_some_and(|t| !t.is_null())
                })
                .map(|s| s["lastTransitionTime"].clone());
            condition.insert("lastTransitionTime".into(), kept.unwrap_or(json!(now)));
        }
    }
}

/// kube's `certificateValidationOptions`: what a writer may do, and what an update tolerates
/// because the stored object already has it.
#[derive(Default)]
struct Options {
    /// The approval subresource: Approved and Denied may be added.
    setting_approval: bool,
    /// The status subresource: the certificate may be set (once).
    setting_certificate: bool,
    both_approved_and_denied: bool,
    duplicate_condition_types: bool,
    empty_condition_type: bool,
    arbitrary_certificate: bool,
    unknown_usages: bool,
    duplicate_usages: bool,
}

impl Options {
    /// kube's `getValidationOptions`: an update may keep what the stored object has.
    fn for_update_of(old: Option<&Value>, new: &Value) -> Options {
        let Some(old) = old else {
            return Options::default();
        };
        let types: Vec<&str> = conditions(old)
            .iter()
            .map(|c| c["type"].as_str().unwrap_or(""))
            .collect();
        let usages: Vec<&str> = array_at(&old["spec"], "usages")
            .iter()
            .map(|u| u.as_str().unwrap_or(""))
            .collect();
        let old_certificate = certificate(old);
        Options {
            both_approved_and_denied: types.contains(&"Approved") && types.contains(&"Denied"),
            duplicate_condition_types: types.len() != types.iter().collect::<HashSet<_>>().len(),
            empty_condition_type: types.contains(&""),
            arbitrary_certificate: certificate(new) == old_certificate
                || csr::certificate_error(old_certificate).is_some(),
            unknown_usages: usages.iter().any(|u| !USAGES.contains(u)),
            duplicate_usages: usages.len() != usages.iter().collect::<HashSet<_>>().len(),
            ..Options::default()
        }
    }
}

fn certificate(object: &Value) -> &str {
    object
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// kube's key usages.
const USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// kube's `validateCertificateSigningRequest`.
fn validate(object: &Value, options: &Options) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let request = spec.get("request").and_then(Value::as_str).unwrap_or("");
    if let Some(error) = csr::request_error(request) {
        out.push(invalid("spec.request", &json!(request), &error));
    }
    let usages = array_at(spec, "usages");
    if usages.is_empty() {
        out.push(required("spec.usages"));
    }
    let mut seen = HashSet::new();
    for (i, usage) in usages.iter().enumerate() {
        let field = format!("spec.usages[{i}]");
        let known = usage.as_str().is_some_and(|u| USAGES.contains(&u));
        if !known && !options.unknown_usages {
            out.push(not_supported(&field, usage, USAGES));
        }
        if !seen.insert(usage.as_str().unwrap_or("")) && !options.duplicate_usages {
            out.push(duplicate(&field, usage));
        }
    }
    signer_name(
        spec.get("signerName").and_then(Value::as_str).unwrap_or(""),
        &mut out,
    );
    if let Some(seconds) = spec.get("expirationSeconds").and_then(Value::as_i64)
        && seconds < 600
    {
        out.push(invalid(
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    validate_conditions(object, options, &mut out);
    if !options.arbitrary_certificate
        && let Some(error) = csr::certificate_error(certificate(object))
    {
        out.push(invalid(
            "status.certificate",
            &json!("<certificate data>"),
            &error,
        ));
    }
    out
}

/// kube's `ValidateSignerName`: `example.com/signer-name`.
fn signer_name(name: &str, out: &mut Vec<Cause>) {
    const FIELD: &str = "spec.signerName";
    if name.is_empty() {
        out.push(required(FIELD));
        return;
    }
    let Some((domain, path)) = name.split_once('/').filter(|(_, p)| !p.contains('/')) else {
        out.push(invalid(
            FIELD,
            &json!(name),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
        return;
    };
    if domain.len() > 253 {
        out.push(Cause::new(
            "FieldValueTooLong",
            FIELD,
            "Too long: may not be more than 253 bytes",
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if let Some((label, problems)) = labels
        .iter()
        .map(|l| (l, names::is_dns1123_label(l)))
        .find(|(_, p)| !p.is_empty())
    {
        for problem in problems {
            out.push(invalid(
                FIELD,
                &json!(domain),
                &format!("validating label \"{label}\": {problem}"),
            ));
        }
    }
    if labels.len() < 2 {
        out.push(invalid(
            FIELD,
            &json!(domain),
            "should be a domain with at least two segments separated by dots",
        ));
    }
    if let Some((component, problems)) = path
        .split('.')
        .map(|c| (c, names::is_dns1123_subdomain(c)))
        .find(|(_, p)| !p.is_empty())
    {
        for problem in problems {
            out.push(invalid(
                FIELD,
                &json!(path),
                &format!("validating component \"{component}\": {problem}"),
            ));
        }
    }
}

/// kube's `validateConditions`: types required and unique, Approved/Denied/Failed only
/// `True`, Approved and Denied mutually exclusive.
fn validate_conditions(object: &Value, options: &Options, out: &mut Vec<Cause>) {
    let (mut approved, mut denied) = (false, false);
    let mut seen = HashSet::new();
    for (i, condition) in conditions(object).iter().enumerate() {
        let at = format!("status.conditions[{i}]");
        let kind = condition["type"].as_str().unwrap_or("");
        if kind.is_empty() && !options.empty_condition_type {
            out.push(required(&format!("{at}.type")));
        }
        let allowed: &[&str] = if TRUE_ONLY_CONDITIONS.contains(&kind) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        match condition["status"].as_str().unwrap_or("") {
            "" => out.push(required(&format!("{at}.status"))),
            s if allowed.contains(&s) => {}
            _ => out.push(not_supported(
                &format!("{at}.status"),
                &condition["status"],
                allowed,
            )),
        }
        if !options.both_approved_and_denied {
            let exclusive = match kind {
                "Approved" => {
                    approved = true;
                    denied
                }
                "Denied" => {
                    denied = true;
                    approved
                }
                _ => false,
            };
            if exclusive {
                out.push(invalid(
                    &format!("{at}.type"),
                    &json!(kind),
                    "Approved and Denied conditions are mutually exclusive",
                ));
            }
        }
        if !seen.insert(kind) && !options.duplicate_condition_types {
            out.push(duplicate(&format!("{at}.type"), &json!(kind)));
        }
    }
}

/// kube's `validateCertificateSigningRequestUpdate` beyond the object's own validation:
/// Approved, Denied and Failed are never removed; outside the approval subresource Approved
/// and Denied do not change; the certificate is set only through `status`, and only once.
fn update_rules(new: &Value, old: &Value, options: &Options, out: &mut Vec<Cause>) {
    for kind in TRUE_ONLY_CONDITIONS {
        if conditions_of(new, kind).len() < conditions_of(old, kind).len() {
            out.push(forbidden(
                "status.conditions",
                &format!("updates may not remove a condition of type \"{kind}\""),
            ));
        }
    }
    if !options.setting_approval {
        for kind in APPROVAL_CONDITIONS {
            let (before, after) = (conditions_of(old, kind), conditions_of(new, kind));
            if after.len() > before.len() {
                out.push(forbidden(
                    "status.conditions",
                    &format!("updates may not add a condition of type \"{kind}\""),
                ));
            } else if after.len() == before.len() && after != before {
                out.push(forbidden(
                    "status.conditions",
                    &format!("updates may not modify a condition of type \"{kind}\""),
                ));
            }
        }
    }
    if certificate(new) != certificate(old) {
        if !options.setting_certificate {
            out.push(forbidden(
                "status.certificate",
                "updates may not set certificate content",
            ));
        } else if !certificate(old).is_empty() {
            out.push(forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_object() -> Value {
        let key = rcgen::KeyPair::generate().unwrap();
        let request = rcgen::CertificateParams::new(vec!["node-1".to_string()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        use base64::Engine;
        json!({
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": "node-1"},
            "spec": {
                "request": base64::engine::general_purpose::STANDARD.encode(request),
                "signerName": "kubernetes.io/kube-apiserver-client",
                "usages": ["client auth"],
            },
        })
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn a_csr_needs_a_signed_request_a_signer_and_known_usages() {
        let csr = csr_object();
        assert_eq!(CertificateSigningRequests.validate(&csr), []);
        let mut bad = csr.clone();
        bad["spec"]["request"] = json!("bm90IGEgY3Ny");
        bad["spec"]["usages"] = json!(["client auth", "flying"]);
        bad["spec"]["signerName"] = json!("example");
        let causes = CertificateSigningRequests.validate(&bad);
        assert_eq!(
            fields(&causes),
            ["spec.request", "spec.usages[1]", "spec.signerName"]
        );
        assert!(
            causes[0]
                .message
                .ends_with("PEM block type must be CERTIFICATE REQUEST"),
            "{causes:?}"
        );
    }

    #[test]
    fn approval_changes_conditions_only_and_never_both() {
        let csr = csr_object();
        let mut write = csr.clone();
        write["spec"]["usages"] = json!(["server auth"]);
        write["status"] = json!({
            "certificate": "Zm9v",
            "conditions": [{"type": "Approved", "status": "True", "reason": "R"}],
        });
        let approved =
            CertificateSigningRequests.merge_subresource_write(Subresource::Approval, &csr, &write);
        assert_eq!(approved["spec"], csr["spec"]);
        assert_eq!(approved["status"].get("certificate"), None);
        assert!(approved["status"]["conditions"][0]["lastUpdateTime"].is_string());
        let causes = CertificateSigningRequests.validate_subresource_update(
            Subresource::Approval,
            &approved,
            &csr,
        );
        assert_eq!(causes, []);

        let mut both = approved.clone();
        both["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "Denied", "status": "True"}));
        let causes = CertificateSigningRequests.validate_subresource_update(
            Subresource::Approval,
            &both,
            &approved,
        );
        assert_eq!(fields(&causes), ["status.conditions[1].type"]);
        assert!(causes[0].message.contains("mutually exclusive"));

        let mut removed = approved.clone();
        removed["status"]["conditions"] = json!([]);
        let causes = CertificateSigningRequests.validate_subresource_update(
            Subresource::Approval,
            &removed,
            &approved,
        );
        assert_eq!(
            causes[0].message,
            "Forbidden: updates may not remove a condition of type \"Approved\""
        );

        // The status subresource cannot approve.
        let through_status =
            CertificateSigningRequests.merge_subresource_write(Subresource::Status, &csr, &write);
        let causes = CertificateSigningRequests.validate_subresource_update(
            Subresource::Status,
            &through_status,
            &csr,
        );
        assert!(
            causes
                .iter()
                .any(|c| c.message
                    == "Forbidden: updates may not add a condition of type \"Approved\""),
            "{causes:?}"
        );
    }

    #[test]
    fn the_requester_is_recorded_from_the_user() {
        let mut csr = csr_object();
        csr["spec"]["username"] = json!("someone-else");
        let user = UserInfo {
            name: "alice".into(),
            groups: vec!["system:authenticated".into()],
            ..UserInfo::default()
        };
        CertificateSigningRequests.record_requester(&mut csr, &user);
        assert_eq!(csr["spec"]["username"], "alice");
        assert_eq!(csr["spec"]["groups"], json!(["system:authenticated"]));
    }
}
