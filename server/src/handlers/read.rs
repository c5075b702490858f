//! GET and LIST, served through the read path with kube-apiserver's resourceVersion
//! semantics.

use std::time::Duration;

use kubecache_core::continue_token::ContinueToken;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::selector::{FieldSelector, LabelSelector};
use kubecache_core::status::ApiError;
use kubecache_core::storage::{ListOptions, Revision, StorageError};
use serde_json::{Value, json};

use super::{not_found, object_key, present};
use crate::api::{Call, Reply, storage_error, too_large_resource_version};
use crate::fields;
use crate::objects;

pub async fn get(call: &Call<'_>) -> Result<Reply, ApiError> {
    let kv = call
        .api
        .reads
        .get(&object_key(call))
        .await
        .map_err(storage_error)?
        .ok_or_else(|| not_found(call))?;
    Ok(Reply::ok(present(call.request.resource, &kv)?))
}

/// Label and field selectors of a LIST or WATCH, validated against the resource.
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn from_call(call: &Call<'_>) -> Result<Selectors, ApiError> {
        let labels = LabelSelector::parse(call.query.get("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(call.query.get("fieldSelector").unwrap_or(""))?;
        fields.validate_fields(&fields::supported(call.request.resource))?;
        Ok(Selectors { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Does the object (in its stored shape) match?
    pub fn matches(&self, resource: &ResourceInfo, object: &Value) -> bool {
        self.labels.matches_object(object)
            && self
                .fields
                .matches(|field| fields::value(resource, object, field))
    }
}

/// How long a read for a future resourceVersion waits for it before answering 504.
const WAIT_FOR_REVISION: Duration = Duration::from_secs(3);

/// Waits until the store has reached `revision`, else 504 "Too large resource version".
pub async fn wait_for_revision(call: &Call<'_>, revision: Revision) -> Result<Revision, ApiError> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_REVISION;
    loop {
        let current = call
            .api
            .reads
            .current_revision()
            .await
            .map_err(storage_error)?;
        if current >= revision {
            return Ok(current);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(too_large_resource_version(revision, current));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where a LIST starts reading.
struct ListStart {
    /// `None`: the latest state.
    revision: Option<Revision>,
    start_key: Option<String>,
}

async fn list_start(
    call: &Call<'_>,
    prefix: &str,
    limit: Option<usize>,
) -> Result<ListStart, ApiError> {
    let rv = call.query.get("resourceVersion").filter(|v| !v.is_empty());
    let rv_match = call
        .query
        .get("resourceVersionMatch")
        .filter(|v| !v.is_empty());
    if let Some(token) = call.query.get("continue").filter(|v| !v.is_empty()) {
        if rv.is_some_and(|v| v != "0") || rv_match.is_some() {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let token = ContinueToken::decode(token)?;
        return Ok(ListStart {
            revision: Some(token.resource_version),
            start_key: Some(token.start_key_under(prefix)),
        });
    }
    let rv = rv.map(objects::parse_resource_version).transpose()?;
    match (rv_match, rv) {
        (Some("Exact"), Some(0)) | (Some("Exact"), None) => Err(ApiError::bad_request(
            "resourceVersionMatch \"Exact\" requires a non-zero resourceVersion",
        )),
        (Some("Exact"), Some(n)) => Ok(ListStart {
            revision: Some(n),
            start_key: None,
        }),
        (Some("NotOlderThan"), None) => Err(ApiError::bad_request(
            "resourceVersionMatch \"NotOlderThan\" requires a resourceVersion",
        )),
        (Some("NotOlderThan"), Some(n)) | (None, Some(n))
            if limit.is_none() || rv_match.is_some() =>
        {
            if n > 0 {
                wait_for_revision(call, n).await?;
            }
            Ok(ListStart {
                revision: None,
                start_key: None,
            })
        }
        // Legacy semantics: resourceVersion=N with a limit and no match means Exact.
        (None, Some(n)) if n > 0 => Ok(ListStart {
            revision: Some(n),
            start_key: None,
        }),
        (None, _) => Ok(ListStart {
            revision: None,
            start_key: None,
        }),
        (Some(other), _) => Err(ApiError::bad_request(format!(
            "invalid resourceVersionMatch {other:?}: must be Exact or NotOlderThan"
        ))),
    }
}

fn parse_limit(call: &Call<'_>) -> Result<Option<usize>, ApiError> {
    match call.query.get("limit").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n as usize)),
            Ok(_) => Ok(None),
            Err(_) => Err(ApiError::bad_request(format!("invalid limit {v:?}"))),
        },
    }
}

/// The objects of a LIST, with the list metadata kube-apiserver sends.
pub struct Listed {
    pub items: Vec<Value>,
    pub revision: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

/// Reads the collection the call names, filtered by its selectors, honouring
/// resourceVersion, limit and continue. Items are in their stored shape.
pub async fn list_objects(call: &Call<'_>, selectors: &Selectors) -> Result<Listed, ApiError> {
    let prefix = call
        .api
        .collection_prefix(call.request.resource, call.request.namespace.as_deref());
    let limit = parse_limit(call)?;
    let start = list_start(call, &prefix, limit).await?;
    let mut revision = start.revision;
    let mut start_key = start.start_key;
    let mut items = Vec::new();
    loop {
        let want = limit.map(|l| l - items.len());
        let page = call
            .api
            .reads
            .list(ListOptions {
                prefix: prefix.clone(),
                start_key: start_key.clone(),
                limit: want,
                revision,
            })
            .await
            .map_err(|e| list_error(call, e))?;
        // Every further page reads the same revision: the list is one consistent snapshot.
        revision = Some(page.revision);
        let returned = page.kvs.len() as i64;
        let last_key = page.kvs.last().map(|kv| kv.key.clone());
        for kv in &page.kvs {
            let object = objects::decode(kv)?;
            if selectors.matches(call.request.resource, &object) {
                items.push(object);
            }
        }
        let full = limit.is_some_and(|l| items.len() >= l);
        if !page.more || last_key.is_none() || full {
            let continue_token = match (&last_key, page.more) {
                (Some(last), true) => {
                    Some(ContinueToken::after(&last[prefix.len()..], page.revision).encode())
                }
                _ => None,
            };
            let remaining = (page.more && selectors.is_empty()).then(|| page.count - returned);
            return Ok(Listed {
                items,
                revision: page.revision,
                continue_token,
                remaining,
            });
        }
        start_key = last_key.map(|k| format!("{k}\0"));
    }
}

fn list_error(call: &Call<'_>, err: StorageError) -> ApiError {
    match err {
        StorageError::Compacted { .. } if call.query.get("continue").is_some() => {
            ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter.",
            )
        }
        StorageError::Compacted { requested, .. } => {
            ApiError::expired(format!("too old resource version: {requested}"))
        }
        StorageError::FutureRevision { requested, current } => {
            too_large_resource_version(requested, current)
        }
        other => storage_error(other),
    }
}

pub async fn list(call: &Call<'_>) -> Result<Reply, ApiError> {
    let selectors = Selectors::from_call(call)?;
    let listed = list_objects(call, &selectors).await?;
    Ok(Reply::ok(list_body(call, listed)))
}

/// `{kind: PodList, apiVersion, metadata: {resourceVersion, continue, remainingItemCount}, items}`.
pub fn list_body(call: &Call<'_>, listed: Listed) -> Value {
    let resource = call.request.resource;
    let items: Vec<Value> = listed
        .items
        .into_iter()
        .map(|o| super::present_value(resource, o))
        .collect();
    let mut metadata = json!({"resourceVersion": listed.revision.to_string()});
    if let Some(token) = listed.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = listed.remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    json!({
        "kind": resource.list_kind(),
        "apiVersion": resource.api_version(),
        "metadata": metadata,
        "items": items,
    })
}
