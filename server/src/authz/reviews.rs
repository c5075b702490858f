//! The review APIs: create-only resources answered by the authorizer chain and never stored,
//! as kube-apiserver serves them.
//!
//! - SubjectAccessReview: may user U (groups, uid, extra) do X? (`spec.user`/`spec.groups`).
//! - LocalSubjectAccessReview: the same, confined to the namespace of the path.
//! - SelfSubjectAccessReview: may *I* do X? (`kubectl auth can-i`).
//! - SelfSubjectRulesReview: what may I do in namespace N? (`kubectl auth can-i --list`).
//! - SelfSubjectReview (authentication.k8s.io): who am I? (`kubectl auth whoami`).
//! - TokenReview (authentication.k8s.io): who has this bearer token? (the server's token
//!   authenticators: `--token-auth-file`, service-account tokens).
//!
//! The status is filled as kube fills it: `allowed` when the chain allows, `denied` only when
//! a mode explicitly denies (no opinion from every mode is neither), `reason` the deciding
//! mode's reason (RBAC: "allowed by ClusterRoleBinding …").

use http::StatusCode;
use k8s_openapi::api::authentication::v1::{
    SelfSubjectReview, SelfSubjectReviewStatus, TokenReview, TokenReviewStatus,
};
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, NonResourceAttributes, NonResourceRule as ApiNonResourceRule,
    ResourceAttributes, ResourceRule as ApiResourceRule, SelfSubjectAccessReview,
    SelfSubjectRulesReview, SubjectAccessReview, SubjectAccessReviewStatus,
    SubjectRulesReviewStatus,
};
use kubecache_core::authz::{Attributes, UserInfo};
use kubecache_core::status::{ApiError, Cause};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Verdict, chain_of};
use crate::call::{Call, Reply};
use crate::handlers::write::{BODY_TYPES, content_type};
use kubecache_apimachinery::objects;
use kubecache_apimachinery::typed;

/// Answers a create of one of the review resources.
pub async fn serve(call: &Call<'_>) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    if call.request.name.is_some() || call.request.subresource.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let media = content_type(call);
    // kubectl's typed clients (`auth can-i`, `auth whoami`) send protobuf: the generic
    // transcoder reads it (the reviews are in its message table), and a client that asks for
    // protobuf first gets the answer in protobuf (handlers::serve renders it).
    let mut body = if crate::edge::protobuf::is_protobuf(&media) {
        crate::edge::protobuf::decode_body(resource, &call.body)?
    } else if BODY_TYPES.contains(&media.as_str()) {
        typed::parse_json(&call.body)?.value
    } else {
        return Err(ApiError::unsupported_media_type(&media, BODY_TYPES));
    };
    objects::check_type(resource, &mut body)?;
    objects::check_namespace(resource, &mut body, call.request.namespace.as_deref())?;
    let reply = match resource.kind.as_str() {
        "SubjectAccessReview" => subject_access_review(call, body).await?,
        "LocalSubjectAccessReview" => local_subject_access_review(call, body).await?,
        "SelfSubjectAccessReview" => self_subject_access_review(call, body).await?,
        "SelfSubjectRulesReview" => self_subject_rules_review(call, body).await?,
        "SelfSubjectReview" => self_subject_review(call, body)?,
        "TokenReview" => token_review(call, body).await?,
        _ => return Err(ApiError::method_not_allowed()),
    };
    Ok(Reply::Object {
        status: StatusCode::CREATED,
        body: reply,
        warnings: Vec::new(),
    })
}

fn decode<T: DeserializeOwned>(call: &Call<'_>, body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| {
        let r = &call.request.resource;
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            &r.kind, &r.version, r.kind
        ))
    })
}

fn encode<T: Serialize>(object: &T) -> Value {
    let mut value = serde_json::to_value(object).expect("a review always serializes");
    // kube answers with the metadata it was given, creationTimestamp null included.
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("creationTimestamp").or_insert(Value::Null);
    } else if let Some(map) = value.as_object_mut() {
        map.insert(
            "metadata".into(),
            serde_json::json!({"creationTimestamp": null}),
        );
    }
    value
}

fn invalid(call: &Call<'_>, causes: Vec<Cause>) -> ApiError {
    let r = &call.request.resource;
    ApiError::invalid(&r.group, &r.kind, "", causes)
}

/// The request user (set by authentication; the insecure user without one).
fn requester(call: &Call<'_>) -> UserInfo {
    call.user.clone()
}

/// The attributes a review asks about, for `user`; a validation error unless exactly one of
/// resourceAttributes and nonResourceAttributes is given.
fn attributes_of(
    call: &Call<'_>,
    user: UserInfo,
    resource: Option<&ResourceAttributes>,
    non_resource: Option<&NonResourceAttributes>,
) -> Result<Attributes, ApiError> {
    match (resource, non_resource) {
        (Some(r), None) => Ok(Attributes {
            user,
            verb: r.verb.clone().unwrap_or_default(),
            resource_request: true,
            namespace: r.namespace.clone().unwrap_or_default(),
            api_group: r.group.clone().unwrap_or_default(),
            api_version: r.version.clone().unwrap_or_default(),
            resource: r.resource.clone().unwrap_or_default(),
            subresource: r.subresource.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
            path: String::new(),
        }),
        (None, Some(n)) => Ok(Attributes {
            user,
            verb: n.verb.clone().unwrap_or_default(),
            resource_request: false,
            path: n.path.clone().unwrap_or_default(),
            ..Attributes::default()
        }),
        (Some(_), Some(_)) => Err(invalid(
            call,
            vec![Cause::invalid(
                "spec.resourceAttributes",
                "",
                "cannot be specified in combination with nonResourceAttributes",
            )],
        )),
        (None, None) => Err(invalid(
            call,
            vec![Cause::invalid(
                "spec.resourceAttributes",
                "",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
    }
}

fn access_status(verdict: Verdict) -> SubjectAccessReviewStatus {
    SubjectAccessReviewStatus {
        allowed: verdict.allowed,
        denied: verdict.denied.then_some(true),
        reason: (!verdict.reason.is_empty()).then_some(verdict.reason),
        evaluation_error: None,
    }
}

fn user_of_spec(
    user: Option<&String>,
    uid: Option<&String>,
    groups: Option<&Vec<String>>,
    extra: Option<&std::collections::BTreeMap<String, Vec<String>>>,
) -> UserInfo {
    UserInfo {
        name: user.cloned().unwrap_or_default(),
        uid: uid.cloned().unwrap_or_default(),
        groups: groups.cloned().unwrap_or_default(),
        extra: extra.cloned().unwrap_or_default(),
    }
}

async fn subject_access_review(call: &Call<'_>, body: Value) -> Result<Value, ApiError> {
    let mut review: SubjectAccessReview = decode(call, body)?;
    let spec = &review.spec;
    if spec.user.as_deref().unwrap_or("").is_empty()
        && spec.groups.as_ref().is_none_or(|g| g.is_empty())
    {
        return Err(invalid(
            call,
            vec![Cause::invalid(
                "spec.user,spec.groups",
                "",
                "at least one of user or group must be specified",
            )],
        ));
    }
    let user = user_of_spec(
        spec.user.as_ref(),
        spec.uid.as_ref(),
        spec.groups.as_ref(),
        spec.extra.as_ref(),
    );
    let attributes = attributes_of(
        call,
        user,
        spec.resource_attributes.as_ref(),
        spec.non_resource_attributes.as_ref(),
    )?;
    review.status = Some(access_status(
        chain_of(call.api).evaluate(&attributes).await,
    ));
    Ok(encode(&review))
}

async fn local_subject_access_review(call: &Call<'_>, body: Value) -> Result<Value, ApiError> {
    let mut review: LocalSubjectAccessReview = decode(call, body)?;
    let namespace = call.request.namespace.clone().unwrap_or_default();
    if review.spec.non_resource_attributes.is_some() {
        return Err(invalid(
            call,
            vec![Cause::invalid(
                "spec.nonResourceAttributes",
                "",
                "disallowed on this kind of request",
            )],
        ));
    }
    if let Some(attrs) = review.spec.resource_attributes.as_mut() {
        match attrs.namespace.as_deref() {
            None | Some("") => attrs.namespace = Some(namespace.clone()),
            Some(ns) if ns == namespace => {}
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {namespace}"
                )));
            }
        }
    }
    let spec = &review.spec;
    if spec.user.as_deref().unwrap_or("").is_empty()
        && spec.groups.as_ref().is_none_or(|g| g.is_empty())
    {
        return Err(invalid(
            call,
            vec![Cause::invalid(
                "spec.user,spec.groups",
                "",
                "at least one of user or group must be specified",
            )],
        ));
    }
    let user = user_of_spec(
        spec.user.as_ref(),
        spec.uid.as_ref(),
        spec.groups.as_ref(),
        spec.extra.as_ref(),
    );
    let attributes = attributes_of(call, user, spec.resource_attributes.as_ref(), None)?;
    review.status = Some(access_status(
        chain_of(call.api).evaluate(&attributes).await,
    ));
    Ok(encode(&review))
}

async fn self_subject_access_review(call: &Call<'_>, body: Value) -> Result<Value, ApiError> {
    let mut review: SelfSubjectAccessReview = decode(call, body)?;
    let attributes = attributes_of(
        call,
        requester(call),
        review.spec.resource_attributes.as_ref(),
        review.spec.non_resource_attributes.as_ref(),
    )?;
    review.status = Some(access_status(
        chain_of(call.api).evaluate(&attributes).await,
    ));
    Ok(encode(&review))
}

async fn self_subject_rules_review(call: &Call<'_>, body: Value) -> Result<Value, ApiError> {
    let mut review: SelfSubjectRulesReview = decode(call, body)?;
    let namespace = review.spec.namespace.clone().unwrap_or_default();
    if namespace.is_empty() {
        return Err(invalid(call, vec![Cause::required("spec.namespace")]));
    }
    let rules = chain_of(call.api)
        .rules_for(&requester(call), &namespace)
        .await;
    let evaluation_error = match rules.errors.len() {
        0 => None,
        1 => Some(rules.errors[0].clone()),
        _ => Some(format!("[{}]", rules.errors.join(", "))),
    };
    review.status = Some(SubjectRulesReviewStatus {
        resource_rules: rules
            .resource_rules
            .into_iter()
            .map(|r| ApiResourceRule {
                verbs: r.verbs,
                api_groups: Some(r.api_groups),
                resources: Some(r.resources),
                resource_names: (!r.resource_names.is_empty()).then_some(r.resource_names),
            })
            .collect(),
        non_resource_rules: rules
            .non_resource_rules
            .into_iter()
            .map(|r| ApiNonResourceRule {
                verbs: r.verbs,
                non_resource_urls: Some(r.non_resource_urls),
            })
            .collect(),
        incomplete: rules.incomplete,
        evaluation_error,
    });
    Ok(encode(&review))
}

fn self_subject_review(call: &Call<'_>, body: Value) -> Result<Value, ApiError> {
    let mut review: SelfSubjectReview = decode(call, body)?;
    let user = requester(call);
    review.status = Some(SelfSubjectReviewStatus {
        user_info: Some(k8s_openapi::api::authentication::v1::UserInfo {
            username: Some(user.name),
            uid: (!user.uid.is_empty()).then_some(user.uid),
            groups: Some(user.groups),
            extra: (!user.extra.is_empty()).then_some(user.extra),
        }),
    });
    Ok(encode(&review))
}

/// A TokenReview: the user the server's token authenticators find for `spec.token`, for
/// `spec.audiences` (default: the API audiences). A token they refuse is answered
/// `authenticated: false` with the reason in `status.error`, as kube does.
async fn token_review(call: &Call<'_>, body: Value) -> Result<Value, ApiError> {
    let mut review: TokenReview = decode(call, body)?;
    let token = review.spec.token.clone().unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let api = call.api;
    let audiences = match review.spec.audiences.as_ref().filter(|a| !a.is_empty()) {
        Some(asked) => asked.clone(),
        None => api.tokens().api_audiences.clone(),
    };
    let authenticator = api.authenticator.get_or_init(Default::default).clone();
    review.status = Some(
        match authenticator
            .authenticate_token(api, &token, &audiences)
            .await
        {
            Ok(found) => {
                let user = found.user;
                TokenReviewStatus {
                    authenticated: Some(true),
                    audiences: Some(found.audiences),
                    user: Some(k8s_openapi::api::authentication::v1::UserInfo {
                        username: Some(user.name),
                        uid: (!user.uid.is_empty()).then_some(user.uid),
                        groups: Some(user.groups),
                        extra: (!user.extra.is_empty()).then_some(user.extra),
                    }),
                    error: None,
                }
            }
            Err(e) => TokenReviewStatus {
                error: Some(e.to_string()),
                ..TokenReviewStatus::default()
            },
        },
    );
    Ok(encode(&review))
}
