//! Service-account tokens, as kube-apiserver issues and checks them: the JWTs of
//! `serviceaccounts/{name}/token` (TokenRequest, [`token_request`]), their authentication
//! (bearer tokens and TokenReview), and the OIDC discovery documents ([`discovery`]).
//!
//! A token is a JWS (RS256 or ES256, [`keys`]) over kube's claims: `iss` (the first
//! `--service-account-issuer`), `aud`, `exp`/`iat`/`nbf`, `jti`, `sub`
//! (`system:serviceaccount:<ns>:<name>`) and `kubernetes.io` (namespace, the service
//! account, and the pod, secret or node it is bound to). Authentication checks the
//! signature against every verifying key, the issuer against every
//! `--service-account-issuer`, the audiences against `--api-audiences`, the times, and —
//! through the read path — that the service account and the bound object still exist with
//! the uids the token names. Legacy tokens (issuer `kubernetes/serviceaccount`, kept in
//! `kubernetes.io/service-account-token` Secrets) must still be in their Secret.

pub mod discovery;
pub mod keys;
pub mod token_request;

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kubecache_core::authz::UserInfo;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::Api;
use keys::{PublicKey, SigningKey};

/// The issuer of legacy (Secret-based) service-account tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// kube-apiserver's common `--service-account-issuer` (kubeadm's), kubecache's default.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The clock skew tolerated on `exp` and `nbf` (go-jose's default leeway, as kube).
const LEEWAY_SECONDS: i64 = 60;

/// `extra` keys of a service account's user.
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";

/// The `token` subresource's kind.
pub const TOKEN_REQUEST_GROUP: &str = "authentication.k8s.io";
pub const TOKEN_REQUEST_KIND: &str = "TokenRequest";

/// The token flags of `kubecache serve`.
#[derive(Debug, Clone, Default)]
pub struct TokenConfig {
    /// `--service-account-signing-key-file`.
    pub signing_key_file: Option<PathBuf>,
    /// `--service-account-key-file` (repeatable); default: the signing key's public half.
    pub key_files: Vec<PathBuf>,
    /// `--service-account-issuer` (repeatable): the first issues, all are accepted.
    pub issuers: Vec<String>,
    /// `--api-audiences`; default: the issuers.
    pub api_audiences: Vec<String>,
    /// Where a generated signing key is kept (none: a new key each start).
    pub generated_key_dir: Option<PathBuf>,
    /// `--service-account-jwks-uri`.
    pub jwks_uri: Option<String>,
}

/// The keys, issuers and audiences tokens are issued and checked with.
pub struct Tokens {
    signing: SigningKey,
    verifying: Vec<PublicKey>,
    issuers: Vec<String>,
    /// The audiences the API itself answers to (`--api-audiences`).
    pub api_audiences: Vec<String>,
    /// `--service-account-jwks-uri`.
    pub jwks_uri: Option<String>,
}

impl Tokens {
    pub fn load(config: &TokenConfig) -> Result<Tokens, String> {
        let signing = keys::load_signing_key(
            config.signing_key_file.as_deref(),
            config.generated_key_dir.as_deref(),
        )?;
        let mut verifying = keys::load_public_keys(&config.key_files)?;
        if verifying.is_empty() {
            verifying.push(signing.public.clone());
        }
        let issuers = if config.issuers.is_empty() {
            vec![DEFAULT_ISSUER.to_string()]
        } else {
            config.issuers.clone()
        };
        let api_audiences = if config.api_audiences.is_empty() {
            issuers.clone()
        } else {
            config.api_audiences.clone()
        };
        Ok(Tokens {
            signing,
            verifying,
            issuers,
            api_audiences,
            jwks_uri: config.jwks_uri.clone(),
        })
    }

    /// The issuer new tokens name.
    pub fn issuer(&self) -> &str {
        &self.issuers[0]
    }

    /// The keys `/openid/v1/jwks` publishes.
    pub fn verifying_keys(&self) -> &[PublicKey] {
        &self.verifying
    }

    /// A signed JWT of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, String> {
        let header = serde_json::json!({
            "alg": self.signing.algorithm().as_str(),
            "kid": self.signing.public.kid,
        });
        let payload = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.signing.sign(signing_input.as_bytes())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// The claims of a token this server's issuers issued; `Ok(None)` when the token is not
    /// a JWT of a known issuer (another authenticator's), an error when it is one but its
    /// signature does not verify.
    fn verified_claims(&self, token: &str) -> Result<Option<Claims>, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok();
        let (Some(header), Some(payload), Some(signature)) =
            (decode(header), decode(payload), decode(signature))
        else {
            return Ok(None);
        };
        let Ok(header) = serde_json::from_slice::<Value>(&header) else {
            return Ok(None);
        };
        let Ok(claims) = serde_json::from_slice::<Claims>(&payload) else {
            return Ok(None);
        };
        if claims.iss != LEGACY_ISSUER && !self.issuers.contains(&claims.iss) {
            return Ok(None);
        }
        let algorithm = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let signing_input_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
        let message = &token.as_bytes()[..signing_input_len];
        let verified = self
            .verifying
            .iter()
            .any(|key| key.algorithm.as_str() == algorithm && key.verifies(message, &signature));
        if !verified {
            return Err("invalid signature".to_string());
        }
        Ok(Some(claims))
    }
}

/// The claims of a service-account token (bound or legacy).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub aud: Audiences,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(
        default,
        rename = "kubernetes.io",
        skip_serializing_if = "Option::is_none"
    )]
    pub kubernetes: Option<KubernetesClaims>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub sub: String,
    /// Legacy tokens' claims.
    #[serde(
        default,
        rename = "kubernetes.io/serviceaccount/namespace",
        skip_serializing_if = "Option::is_none"
    )]
    pub legacy_namespace: Option<String>,
    #[serde(
        default,
        rename = "kubernetes.io/serviceaccount/secret.name",
        skip_serializing_if = "Option::is_none"
    )]
    pub legacy_secret_name: Option<String>,
    #[serde(
        default,
        rename = "kubernetes.io/serviceaccount/service-account.name",
        skip_serializing_if = "Option::is_none"
    )]
    pub legacy_service_account_name: Option<String>,
    #[serde(
        default,
        rename = "kubernetes.io/serviceaccount/service-account.uid",
        skip_serializing_if = "Option::is_none"
    )]
    pub legacy_service_account_uid: Option<String>,
}

/// `aud`: a string or a list of strings in a JWT; kube writes a list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(from = "OneOrMany")]
pub struct Audiences(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for Audiences {
    fn from(value: OneOrMany) -> Self {
        match value {
            OneOrMany::One(one) => Audiences(vec![one]),
            OneOrMany::Many(many) => Audiences(many),
        }
    }
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KubernetesClaims {
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    #[serde(default)]
    pub serviceaccount: ObjectRef,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// An authenticated service account (or another authenticator's user, for TokenReview).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: UserInfo,
    /// The audiences the token is good for among those asked for.
    pub audiences: Vec<String>,
}

/// The service account a token names, when it is one of this server's tokens: `Ok(None)`
/// when it is not (another authenticator may know it), an error (answered 401) when it is
/// one but not valid now — bad signature, wrong audience, expired, or its service account
/// or bound object gone or replaced. `audiences` are those the caller accepts (the API
/// audiences for requests, TokenReview's `spec.audiences`).
pub async fn authenticate(
    api: &Api,
    token: &str,
    audiences: &[String],
) -> Result<Option<Authenticated>, String> {
    let tokens = api.tokens();
    let Some(claims) = tokens.verified_claims(token)? else {
        return Ok(None);
    };
    if claims.iss == LEGACY_ISSUER {
        return legacy(api, token, &claims, audiences).await.map(Some);
    }
    let matching: Vec<String> = audiences
        .iter()
        .filter(|a| claims.aud.0.contains(a))
        .cloned()
        .collect();
    if matching.is_empty() {
        return Err(format!(
            "token audiences {:?} is invalid for the target audiences {:?}",
            claims.aud.0, audiences
        ));
    }
    let now = chrono::Utc::now().timestamp();
    if claims.exp.is_some_and(|exp| now > exp + LEEWAY_SECONDS) {
        return Err("service account token has expired".into());
    }
    if claims.nbf.is_some_and(|nbf| now + LEEWAY_SECONDS < nbf) {
        return Err("service account token is not valid yet".into());
    }
    let k8s = claims
        .kubernetes
        .as_ref()
        .ok_or("service account token has no kubernetes.io claim")?;
    let namespace = &k8s.namespace;
    current_service_account(api, namespace, &k8s.serviceaccount).await?;
    let mut extra = BTreeMap::new();
    if let Some(secret) = &k8s.secret {
        bound_object_current(api, "secrets", Some(namespace), secret).await?;
    }
    if let Some(pod) = &k8s.pod {
        bound_object_current(api, "pods", Some(namespace), pod).await?;
        extra.insert(EXTRA_POD_NAME.to_string(), vec![pod.name.clone()]);
        extra.insert(EXTRA_POD_UID.to_string(), vec![pod.uid.clone()]);
    }
    if let Some(node) = &k8s.node {
        // A node-bound token lives as long as its node; a pod-bound one only names it.
        if k8s.pod.is_none() {
            bound_object_current(api, "nodes", None, node).await?;
        }
        extra.insert(EXTRA_NODE_NAME.to_string(), vec![node.name.clone()]);
        extra.insert(EXTRA_NODE_UID.to_string(), vec![node.uid.clone()]);
    }
    if let Some(jti) = &claims.jti {
        extra.insert(EXTRA_CREDENTIAL_ID.to_string(), vec![format!("JTI={jti}")]);
    }
    Ok(Some(Authenticated {
        user: service_account_user(namespace, &k8s.serviceaccount, extra),
        audiences: matching,
    }))
}

/// A legacy token: valid while its Secret holds it and its service account is the one it
/// names (kube's legacy validator). Such tokens have no audience and no expiry.
async fn legacy(
    api: &Api,
    token: &str,
    claims: &Claims,
    audiences: &[String],
) -> Result<Authenticated, String> {
    let (Some(namespace), Some(name), Some(uid), Some(secret_name)) = (
        claims.legacy_namespace.as_ref(),
        claims.legacy_service_account_name.as_ref(),
        claims.legacy_service_account_uid.as_ref(),
        claims.legacy_secret_name.as_ref(),
    ) else {
        return Err("service account token is missing its legacy claims".into());
    };
    let reference = ObjectRef {
        name: name.clone(),
        uid: uid.clone(),
    };
    current_service_account(api, namespace, &reference).await?;
    let secret = read(api, "secrets", Some(namespace), secret_name)
        .await?
        .ok_or_else(|| format!("secret {namespace}/{secret_name} not found"))?;
    let stored = secret
        .pointer("/data/token")
        .and_then(Value::as_str)
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        .unwrap_or_default();
    if stored != token.as_bytes() {
        return Err("token does not match the secret it names".into());
    }
    if is_deleting(&secret) {
        return Err("service account token has been invalidated".into());
    }
    Ok(Authenticated {
        user: service_account_user(namespace, &reference, BTreeMap::new()),
        audiences: audiences.to_vec(),
    })
}

fn service_account_user(
    namespace: &str,
    account: &ObjectRef,
    extra: BTreeMap<String, Vec<String>>,
) -> UserInfo {
    UserInfo {
        name: format!("system:serviceaccount:{namespace}:{}", account.name),
        uid: account.uid.clone(),
        groups: vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
        ],
        extra,
    }
}

async fn current_service_account(
    api: &Api,
    namespace: &str,
    account: &ObjectRef,
) -> Result<(), String> {
    let object = read(api, "serviceaccounts", Some(namespace), &account.name)
        .await?
        .ok_or_else(|| format!("serviceaccounts \"{}\" not found", account.name))?;
    if is_deleting(&object) {
        return Err(format!(
            "service account {namespace}/{} has been deleted",
            account.name
        ));
    }
    let uid = uid_of(&object);
    if uid != account.uid {
        return Err(format!(
            "service account UID ({uid}) does not match claim ({})",
            account.uid
        ));
    }
    Ok(())
}

/// The object a token is bound to must exist, not be deleting, and have the token's uid.
async fn bound_object_current(
    api: &Api,
    resource: &str,
    namespace: Option<&str>,
    reference: &ObjectRef,
) -> Result<(), String> {
    let invalidated = || "service account token has been invalidated".to_string();
    let object = read(api, resource, namespace, &reference.name)
        .await?
        .ok_or_else(invalidated)?;
    if is_deleting(&object) {
        return Err(invalidated());
    }
    let uid = uid_of(&object);
    if uid != reference.uid {
        return Err(format!(
            "{resource} UID ({uid}) does not match service account token claim ({})",
            reference.uid
        ));
    }
    Ok(())
}

/// One core/v1 object through the read path (see [`kubecache_admission::read_object`]).
pub async fn read(
    api: &Api,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, String> {
    kubecache_admission::read_object(api, "", "v1", resource, namespace, name)
        .await
        .map_err(|e| e.message)
}

fn uid_of(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated() -> Tokens {
        Tokens::load(&TokenConfig::default()).unwrap()
    }

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let tokens = generated();
        let claims = Claims {
            iss: DEFAULT_ISSUER.into(),
            sub: "system:serviceaccount:a:b".into(),
            aud: Audiences(vec!["x".into()]),
            ..Claims::default()
        };
        let token = tokens.sign(&claims).unwrap();
        let verified = tokens.verified_claims(&token).unwrap().unwrap();
        assert_eq!(verified.sub, "system:serviceaccount:a:b");
        // Another payload under the same signature does not verify.
        let (header, rest) = token.split_once('.').unwrap();
        let signature = rest.rsplit('.').next().unwrap();
        let other_payload = URL_SAFE_NO_PAD
            .encode(r#"{"iss":"https://kubernetes.default.svc.cluster.local","sub":"x"}"#);
        let tampered = format!("{header}.{other_payload}.{signature}");
        assert!(tokens.verified_claims(&tampered).is_err());
        // Another key's token is refused; a non-JWT or a foreign issuer's is not ours.
        let other = generated().sign(&claims).unwrap();
        assert!(tokens.verified_claims(&other).is_err());
        assert!(tokens.verified_claims("not-a-jwt").unwrap().is_none());
        let foreign = Claims {
            iss: "https://elsewhere".into(),
            ..claims
        };
        assert!(
            tokens
                .verified_claims(&tokens.sign(&foreign).unwrap())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn audience_is_a_string_or_a_list() {
        let one: Claims = serde_json::from_str(r#"{"iss":"i","aud":"a"}"#).unwrap();
        assert_eq!(one.aud.0, vec!["a"]);
        let many: Claims = serde_json::from_str(r#"{"iss":"i","aud":["a","b"]}"#).unwrap();
        assert_eq!(many.aud.0, vec!["a", "b"]);
    }
}
