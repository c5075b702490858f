//! Where Tables meet HTTP: whether a GET, LIST or WATCH asks for a `meta.k8s.io/v1` Table
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, as `kubectl get` sends), with
//! what in each row, and the reply carrying one. The rows come from [`kubecache_apimachinery::table`].

use chrono::Utc;
use http::{HeaderMap, StatusCode};
use kubecache_core::status::ApiError;
use serde_json::Value;

use crate::call::{Query, Reply};
use crate::negotiation::{Accept, Offer};
use kubecache_apimachinery::registry::Resource;
use kubecache_apimachinery::table::{IncludeObject, render};

/// The Content-Type of a Table response.
pub const CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Whether the request asks for a Table, and with what in each row; `None` → plain JSON.
pub fn requested(headers: &HeaderMap, query: &Query) -> Result<Option<IncludeObject>, ApiError> {
    if !accepts_table(headers) {
        return Ok(None);
    }
    let include = match query.get("includeObject") {
        None | Some("") | Some("Object") => IncludeObject::Object,
        Some("Metadata") => IncludeObject::Metadata,
        Some("None") => IncludeObject::None,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "includeObject: Unsupported value: {other:?}: supported values: \"None\", \"Metadata\", \"Object\""
            )));
        }
    };
    Ok(Some(include))
}

/// Whether the client takes the v1 Table before the plain object
/// ([`crate::negotiation`]). A v1beta1 Table or an unknown `as=` is not offered, so a later
/// `application/json` wins.
fn accepts_table(headers: &HeaderMap) -> bool {
    const OFFERS: [Offer; 2] = [
        Offer::plain("application/json"),
        Offer::converted("application/json", "meta.k8s.io", "v1", "Table"),
    ];
    Accept::from_headers(headers).choose(&OFFERS) == Some(&OFFERS[1])
}

/// The Table of `objects` (as `resource` serves them) with `metadata` as its list metadata.
pub fn reply(
    resource: &Resource,
    objects: Vec<Value>,
    metadata: Value,
    include: IncludeObject,
) -> Reply {
    let body = render(resource, objects, metadata, include, Utc::now());
    let bytes = serde_json::to_vec(&body).expect("a JSON value always serializes");
    Reply::Encoded {
        status: StatusCode::OK,
        body: bytes.into(),
        content_type: CONTENT_TYPE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, http::HeaderValue::from_str(accept).unwrap());
        h
    }

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert!(accepts_table(&headers(kubectl)));
        assert!(accepts_table(&headers(
            "application/json; as=Table; g=meta.k8s.io; v=v1"
        )));
        assert!(!accepts_table(&headers("application/json")));
        assert!(!accepts_table(&headers(
            "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        )));
        assert!(!accepts_table(&headers(
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
        )));
        assert!(!accepts_table(&HeaderMap::new()));
    }
}
