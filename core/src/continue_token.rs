//! The `continue` token of paginated LISTs, in kube-apiserver's format
//! (`k8s.io/apiserver/pkg/storage/continue.go`): unpadded URL-safe base64
//! (`base64.RawURLEncoding`) of the JSON `{"v":"meta.k8s.io/v1","rv":<rv>,"start":"<key>"}`.
//!
//! `rv` is the revision the first page was served at; every later page is read at that same
//! revision so the whole list is one consistent snapshot. `start` is the storage key to resume
//! from (inclusive), **relative to the list's key prefix**: a LIST of
//! `/registry/pods/default/` that stopped after `/registry/pods/default/a` carries
//! `start = "a\u{0}"`. The server re-attaches the prefix of the request being served, so a token
//! obtained in one namespace (or for one resource) can only ever range under the prefix of the
//! request that presents it. [`ContinueToken::decode`] additionally rejects start keys that
//! could climb out of that prefix (`..`, `.`, empty segments, a leading `/`), as kube does with
//! `path.Clean`.
//!
//! kubecache adds one optional field, `rem`: how many objects the list had at and after
//! `start` at `rv` (set only for unfiltered lists, which report `remainingItemCount`). The next
//! page then knows its `remainingItemCount` without counting the rest of the range, which made
//! a paged walk quadratic. Tokens without it (kube-apiserver's, older kubecache's) stay valid:
//! the count is then unknown and computed once. Older kubecache versions ignore the field.

// `ApiError` is large; the crate returns it unboxed by design (see status.rs).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::status::ApiError;

/// The only token version kube-apiserver understands.
pub const CONTINUE_TOKEN_VERSION: &str = "meta.k8s.io/v1";

/// kube-apiserver's 410 message when a continue token's revision has been compacted away.
pub const CONTINUE_EXPIRED_MESSAGE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";

/// A decoded `continue` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueToken {
    /// The revision every page of the list is read at (the first page's resourceVersion).
    pub resource_version: i64,
    /// Where the next page starts (inclusive), relative to the list's key prefix.
    pub start_key: String,
    /// Objects at and after `start_key` at `resource_version`, when the issuer knew it
    /// (unfiltered lists); a hint to check, never trusted blindly.
    pub remaining: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "v", default)]
    version: String,
    #[serde(rename = "rv", default)]
    resource_version: i64,
    #[serde(rename = "start", default)]
    start_key: String,
    #[serde(rename = "rem", default, skip_serializing_if = "Option::is_none")]
    remaining: Option<i64>,
}

fn invalid(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "invalid continue token: continue key is not valid{detail}"
    ))
}

/// The start key of the page following one whose last key (relative to the list prefix) was
/// `last_key_suffix`: the smallest key greater than it, `last + "\0"`, as kube-apiserver does.
pub fn next_start_key(last_key_suffix: &str) -> String {
    format!("{last_key_suffix}\u{0}")
}

/// Whether `key` is a start key that stays under the list prefix once appended to it: no
/// leading `/`, no empty, `.` or `..` segments (kube: `path.Clean("/" + key) == "/" + key`).
fn is_clean_relative_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

impl ContinueToken {
    pub fn new(resource_version: i64, start_key: impl Into<String>) -> Self {
        ContinueToken {
            resource_version,
            start_key: start_key.into(),
            remaining: None,
        }
    }

    /// The same token, also carrying the number of objects at and after its start key.
    pub fn with_remaining(self, remaining: Option<i64>) -> Self {
        ContinueToken { remaining, ..self }
    }

    /// The token for the page after the one whose last key (relative to the list prefix) was
    /// `last_key_suffix`, read at `resource_version`.
    pub fn after(last_key_suffix: &str, resource_version: i64) -> Self {
        ContinueToken::new(resource_version, next_start_key(last_key_suffix))
    }

    /// The absolute storage key to resume from under `list_prefix` (which ends with `/`).
    pub fn start_key_under(&self, list_prefix: &str) -> String {
        format!("{list_prefix}{}", self.start_key)
    }

    /// The opaque string sent to clients in `metadata.continue`.
    pub fn encode(&self) -> String {
        let wire = Wire {
            version: CONTINUE_TOKEN_VERSION.to_string(),
            resource_version: self.resource_version,
            start_key: self.start_key.clone(),
            remaining: self.remaining,
        };
        // Serializing a struct of a string, an integer and a string cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Parses a client-supplied token. Every failure is a 400 BadRequest whose message starts
    /// like kube-apiserver's: `invalid continue token: continue key is not valid...`.
    pub fn decode(token: &str) -> Result<ContinueToken, ApiError> {
        let data = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|e| invalid(format_args!(": {e}")))?;
        let wire: Wire =
            serde_json::from_slice(&data).map_err(|e| invalid(format_args!(": {e}")))?;
        if wire.version != CONTINUE_TOKEN_VERSION {
            return Err(invalid(format_args!(
                ": server does not recognize this encoded version {}",
                wire.version
            )));
        }
        if wire.resource_version <= 0 {
            return Err(invalid(format_args!(
                ": incorrect encoded start resourceVersion (version {CONTINUE_TOKEN_VERSION})"
            )));
        }
        if wire.start_key.is_empty() {
            return Err(invalid(format_args!(
                ": encoded start key empty (version {CONTINUE_TOKEN_VERSION})"
            )));
        }
        if !is_clean_relative_key(&wire.start_key) {
            return Err(invalid(format_args!(": {}", wire.start_key)));
        }
        Ok(ContinueToken {
            resource_version: wire.resource_version,
            start_key: wire.start_key,
            // A count that cannot be right is dropped: the server then counts.
            remaining: wire.remaining.filter(|n| *n > 0),
        })
    }

    /// The 410 Expired a LIST answers when this token's revision has been compacted.
    pub fn expired_error() -> ApiError {
        ApiError::expired(CONTINUE_EXPIRED_MESSAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Reason;

    fn raw(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json.as_bytes())
    }

    fn decode_err(token: &str) -> ApiError {
        let err = ContinueToken::decode(token).expect_err(token);
        assert_eq!(err.code, 400);
        assert_eq!(err.reason, Reason::BadRequest);
        assert!(
            err.message
                .starts_with("invalid continue token: continue key is not valid"),
            "{}",
            err.message
        );
        err
    }

    #[test]
    fn encodes_kube_wire_format() {
        let token = ContinueToken::new(123, "default/web\u{0}");
        let encoded = token.encode();
        let json = URL_SAFE_NO_PAD.decode(&encoded).unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"v":"meta.k8s.io/v1","rv":123,"start":"default/web\u0000"}"#
        );
        assert!(!encoded.contains('='));
        assert!(!encoded.contains('+') && !encoded.contains('/'));
    }

    #[test]
    fn carries_the_remaining_count_when_known() {
        let token = ContinueToken::after("ns/a", 9).with_remaining(Some(1500));
        let json = URL_SAFE_NO_PAD.decode(token.encode()).unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"v":"meta.k8s.io/v1","rv":9,"start":"ns/a\u0000","rem":1500}"#
        );
        assert_eq!(ContinueToken::decode(&token.encode()).unwrap(), token);
        // kube-apiserver's tokens (and older kubecache's) have no count: unknown.
        let plain = ContinueToken::decode(&raw(r#"{"v":"meta.k8s.io/v1","rv":9,"start":"a"}"#));
        assert_eq!(plain.unwrap().remaining, None);
        // A count that cannot be right is ignored rather than trusted.
        for bad in [0, -4] {
            let json = format!(r#"{{"v":"meta.k8s.io/v1","rv":9,"start":"a","rem":{bad}}}"#);
            assert_eq!(ContinueToken::decode(&raw(&json)).unwrap().remaining, None);
        }
    }

    #[test]
    fn round_trips() {
        for token in [
            ContinueToken::new(1, "a"),
            ContinueToken::new(i64::MAX, "kube-system/coredns-abc\u{0}"),
            ContinueToken::after("ns/name", 42),
            ContinueToken::new(7, "weird name ~?>/x"),
        ] {
            assert_eq!(ContinueToken::decode(&token.encode()).unwrap(), token);
        }
    }

    #[test]
    fn decodes_a_token_made_by_kube_apiserver() {
        // The exact bytes Go's encoding/json + RawURLEncoding emit (NUL escaped as \u0000).
        let token = "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NTY3LCJzdGFydCI6Imt1YmUtc3lzdGVtL2NvcmVkbnMtMVx1MDAwMCJ9";
        let decoded = ContinueToken::decode(token).unwrap();
        assert_eq!(decoded.resource_version, 567);
        assert_eq!(decoded.start_key, "kube-system/coredns-1\u{0}");
        // Padded input is tolerated.
        assert_eq!(
            ContinueToken::decode(&format!("{token}==")).unwrap(),
            decoded
        );
    }

    #[test]
    fn next_start_key_appends_nul() {
        assert_eq!(next_start_key("ns/a"), "ns/a\u{0}");
        assert!(next_start_key("ns/a").as_str() > "ns/a");
        assert!(next_start_key("ns/a").as_str() < "ns/a-");
        assert!(next_start_key("ns/a").as_str() < "ns/a/");
        let token = ContinueToken::after("ns/a", 9);
        assert_eq!(token.start_key, "ns/a\u{0}");
        assert_eq!(
            token.start_key_under("/registry/pods/"),
            "/registry/pods/ns/a\u{0}"
        );
    }

    #[test]
    fn rejects_garbage() {
        decode_err("");
        decode_err("!!!not base64!!!");
        decode_err(&raw("not json"));
        decode_err(&raw("[]"));
        decode_err(&raw(r#"{"v":"meta.k8s.io/v1","rv":"12","start":"a"}"#));
        // Standard (non-URL) alphabet characters are not accepted.
        decode_err("ab+/");
    }

    #[test]
    fn rejects_wrong_version() {
        let err = decode_err(&raw(r#"{"v":"meta.k8s.io/v2","rv":1,"start":"a"}"#));
        assert_eq!(
            err.message,
            "invalid continue token: continue key is not valid: server does not recognize this encoded version meta.k8s.io/v2"
        );
        decode_err(&raw(r#"{"rv":1,"start":"a"}"#));
    }

    #[test]
    fn rejects_non_positive_resource_version() {
        for rv in ["0", "-1", "-100"] {
            let err = decode_err(&raw(&format!(
                r#"{{"v":"meta.k8s.io/v1","rv":{rv},"start":"a"}}"#
            )));
            assert_eq!(
                err.message,
                "invalid continue token: continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
            );
        }
        decode_err(&raw(r#"{"v":"meta.k8s.io/v1","start":"a"}"#));
    }

    #[test]
    fn rejects_empty_start_key() {
        let err = decode_err(&raw(r#"{"v":"meta.k8s.io/v1","rv":5,"start":""}"#));
        assert_eq!(
            err.message,
            "invalid continue token: continue key is not valid: encoded start key empty (version meta.k8s.io/v1)"
        );
    }

    #[test]
    fn rejects_path_traversal() {
        for start in [
            "/",
            "/etc",
            "..",
            "../kube-system/a",
            "a/../../b",
            "a/..",
            "./a",
            "a/.",
            "a//b",
            "a/",
        ] {
            let token = ContinueToken::new(5, start).encode();
            let err = decode_err(&token);
            assert_eq!(
                err.message,
                format!("invalid continue token: continue key is not valid: {start}")
            );
        }
        // Dots inside a segment are fine.
        for start in ["a..b", "...", "a/.b", "ns/web.v1\u{0}"] {
            assert_eq!(
                ContinueToken::decode(&ContinueToken::new(5, start).encode())
                    .unwrap()
                    .start_key,
                start
            );
        }
    }

    #[test]
    fn expired_error_is_410() {
        let err = ContinueToken::expired_error();
        assert_eq!(err.code, 410);
        assert_eq!(err.reason, Reason::Expired);
        assert_eq!(err.message, CONTINUE_EXPIRED_MESSAGE);
    }
}
