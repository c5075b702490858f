//! `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: an authentication.k8s.io/v1
//! TokenRequest answered with a signed token (kube's `TokenREST`). Nothing is stored.

use http::StatusCode;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kubecache_core::field;
use kubecache_core::status::{ApiError, Cause};
use serde_json::Value;

use super::{Audiences, Claims, KubernetesClaims, ObjectRef, read, uid_of};
use crate::call::{Call, Reply};
use crate::handlers::write::{BODY_TYPES, content_type};
use kubecache_apimachinery::typed;

use super::{TOKEN_REQUEST_GROUP as GROUP, TOKEN_REQUEST_KIND as KIND};

const API_VERSION: &str = "authentication.k8s.io/v1";
/// `spec.expirationSeconds` when not given (kube's default).
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime kube issues.
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest (2^32 s).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

pub async fn create(call: &Call<'_>) -> Result<Reply, ApiError> {
    let namespace = call.request.namespace.clone().unwrap_or_default();
    let name = crate::handlers::path_name(call).to_string();
    let mut request = decode(call)?;
    // The body may name the account and namespace only as the path does.
    for (field, given, expected, what) in [
        ("metadata.name", &request.metadata.name, &name, "name"),
        (
            "metadata.namespace",
            &request.metadata.namespace,
            &namespace,
            "namespace",
        ),
    ] {
        if let Some(given) = given.as_deref().filter(|g| !g.is_empty())
            && given != expected
        {
            return Err(invalid(
                &name,
                Cause::invalid(
                    field,
                    given,
                    &format!("must match the service account {what} if specified"),
                ),
            ));
        }
    }
    let expiration = *request
        .spec
        .expiration_seconds
        .get_or_insert(DEFAULT_EXPIRATION_SECONDS);
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            &name,
            field::invalid(
                "spec.expirationSeconds",
                &Value::from(expiration),
                "may not specify a duration less than 10 minutes",
            ),
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            &name,
            field::invalid(
                "spec.expirationSeconds",
                &Value::from(expiration),
                "may not specify a duration larger than 2^32 seconds",
            ),
        ));
    }
    let account = read(call.api, "serviceaccounts", Some(&namespace), &name)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", &name))?;
    let mut claims = KubernetesClaims {
        namespace: namespace.clone(),
        serviceaccount: ObjectRef {
            name: name.clone(),
            uid: uid_of(&account).to_string(),
        },
        ..KubernetesClaims::default()
    };
    if let Some(bound) = &request.spec.bound_object_ref {
        bind(call, &namespace, &name, bound, &mut claims).await?;
    }
    let tokens = call.api.tokens();
    if request.spec.audiences.is_empty() {
        request.spec.audiences = tokens.api_audiences.clone();
    }
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::seconds(expiration);
    let jwt = Claims {
        aud: Audiences(request.spec.audiences.clone()),
        exp: Some(expires.timestamp()),
        iat: Some(now.timestamp()),
        iss: tokens.issuer().to_string(),
        jti: Some(uuid::Uuid::new_v4().to_string()),
        kubernetes: Some(claims),
        nbf: Some(now.timestamp()),
        sub: format!("system:serviceaccount:{namespace}:{name}"),
        ..Claims::default()
    };
    let token = tokens
        .sign(&jwt)
        .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
    request.metadata.name = Some(name);
    request.metadata.namespace = Some(namespace);
    request.status = Some(TokenRequestStatus {
        token,
        expiration_timestamp: Time(
            k8s_openapi::jiff::Timestamp::from_second(expires.timestamp())
                .map_err(|e| ApiError::internal(format!("expiration out of range: {e}")))?,
        ),
    });
    let mut body = serde_json::to_value(&request).expect("a TokenRequest serializes");
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("creationTimestamp").or_insert(Value::Null);
    }
    Ok(Reply::Object {
        status: StatusCode::CREATED,
        body,
        warnings: Vec::new(),
    })
}

/// Reads the object the token is bound to into its claim (kube binds to a Pod, a Secret
/// or a Node; a pod's node is named too).
async fn bind(
    call: &Call<'_>,
    namespace: &str,
    account: &str,
    bound: &k8s_openapi::api::authentication::v1::BoundObjectReference,
    claims: &mut KubernetesClaims,
) -> Result<(), ApiError> {
    let api_version = bound.api_version.as_deref().unwrap_or("");
    let kind = bound.kind.as_deref().unwrap_or("");
    let name = bound.name.as_deref().unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let (resource, scope) = match (group, kind) {
        ("", "Pod") => ("pods", Some(namespace)),
        ("", "Secret") => ("secrets", Some(namespace)),
        ("", "Node") => ("nodes", None),
        _ => {
            let gvk = if group.is_empty() {
                format!("/, Kind={kind}")
            } else {
                format!("{api_version}, Kind={kind}")
            };
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {gvk}"
            )));
        }
    };
    let object = read(call.api, resource, scope, name)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("", resource, name))?;
    let uid = uid_of(&object).to_string();
    if let Some(wanted) = bound.uid.as_deref().filter(|u| !u.is_empty())
        && wanted != uid
    {
        return Err(ApiError::conflict(
            "",
            kind,
            name,
            &format!(
                "the UID in the bound object reference ({wanted}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
            ),
        ));
    }
    let reference = ObjectRef {
        name: name.to_string(),
        uid,
    };
    match kind {
        "Pod" => {
            let pod_account = object
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if pod_account != account {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {account:?} to pod running with serviceaccount {pod_account:?}"
                )));
            }
            if let Some(node_name) = object
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                // The pod's node is named when it can be read (kube logs and goes on when not).
                if let Ok(Some(node)) = read(call.api, "nodes", None, node_name).await {
                    claims.node = Some(ObjectRef {
                        name: node_name.to_string(),
                        uid: uid_of(&node).to_string(),
                    });
                }
            }
            claims.pod = Some(reference);
        }
        "Secret" => claims.secret = Some(reference),
        _ => claims.node = Some(reference),
    }
    Ok(())
}

fn decode(call: &Call<'_>) -> Result<TokenRequest, ApiError> {
    let media = content_type(call);
    let mut body = if crate::edge::protobuf::is_protobuf(&media) {
        crate::edge::protobuf::decode_message(API_VERSION, KIND, &call.body)?
    } else if BODY_TYPES.contains(&media.as_str()) {
        typed::parse_json(&call.body)?.value
    } else {
        return Err(ApiError::unsupported_media_type(&media, BODY_TYPES));
    };
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    // The status is the server's to fill (protobuf clients send an empty one).
    map.remove("status");
    for (field, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match map.get(field).and_then(Value::as_str) {
            None | Some("") => {
                map.insert(field.into(), Value::from(expected));
            }
            Some(given) if given == expected => {}
            Some(given) => {
                return Err(ApiError::bad_request(format!(
                    "{KIND} in version \"v1\" cannot be handled as a {KIND}: {field} {given:?} is not {expected:?}"
                )));
            }
        }
    }
    serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(format!(
            "{KIND} in version \"v1\" cannot be handled as a {KIND}: {e}"
        ))
    })
}

fn invalid(name: &str, cause: Cause) -> ApiError {
    ApiError::invalid(GROUP, KIND, name, vec![cause])
}
