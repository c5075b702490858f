//! Authentication: who sent a request. kube-apiserver's request authenticators, in its
//! order: the client certificate (verified against `--client-ca-file` during the TLS
//! handshake), then a bearer token from `--token-auth-file`, then a service-account token
//! ([`crate::service_accounts`]), then — when nothing was presented and `--anonymous-auth`
//! is on — `system:anonymous`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use http::HeaderMap;
use kubecache_core::authz::{GROUP_AUTHENTICATED, GROUP_UNAUTHENTICATED, UserInfo};
use rustls_pki_types::CertificateDer;

use crate::api::Api;
use crate::service_accounts::Authenticated;

/// How a request reached the server; inserted into each request's extensions by the
/// listener. A request without it came through the plain-HTTP (insecure) port.
#[derive(Debug, Clone)]
pub struct Connection {
    pub remote: std::net::SocketAddr,
    /// True on the TLS port.
    pub secure: bool,
    /// The client's certificate chain, already verified against `--client-ca-file`.
    pub client_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// Why a request could not be authenticated (answered 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A bearer token no user has.
    #[error("invalid bearer token")]
    InvalidToken,
    /// A service-account token that is not valid (now, or for this server).
    #[error("invalid bearer token, {0}")]
    InvalidServiceAccountToken(String),
    /// A client certificate without a common name.
    #[error("client certificate has no common name")]
    CertificateWithoutName,
    /// No credentials and `--anonymous-auth=false`.
    #[error("no credentials and anonymous requests are disabled")]
    NoCredentials,
}

/// The configured authenticators.
#[derive(Debug, Default)]
pub struct Authenticator {
    /// `--token-auth-file`: token → user.
    tokens: HashMap<String, UserInfo>,
    /// `--anonymous-auth`.
    anonymous: bool,
}

impl Authenticator {
    pub fn new(tokens: HashMap<String, UserInfo>, anonymous: bool) -> Authenticator {
        Authenticator { tokens, anonymous }
    }

    /// Loads `--token-auth-file` (when given).
    pub fn load(token_file: Option<&Path>, anonymous: bool) -> Result<Authenticator, String> {
        let tokens = match token_file {
            None => HashMap::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read --token-auth-file {}: {e}", path.display())
                })?;
                parse_token_file(&text)
                    .map_err(|e| format!("--token-auth-file {}: {e}", path.display()))?
            }
        };
        Ok(Authenticator::new(tokens, anonymous))
    }

    /// The user of a request on the secure port. The user of an authenticated request is
    /// also in `system:authenticated`.
    pub async fn authenticate(
        &self,
        api: &Api,
        headers: &HeaderMap,
        connection: &Connection,
    ) -> Result<UserInfo, Error> {
        if let Some(leaf) = connection.client_certs.as_ref().and_then(|c| c.first()) {
            let (name, groups) = subject_identity(leaf.as_ref()).unwrap_or_default();
            if name.is_empty() {
                return Err(Error::CertificateWithoutName);
            }
            return Ok(with_authenticated(UserInfo {
                name,
                groups,
                ..UserInfo::default()
            }));
        }
        if let Some(token) = bearer_token(headers) {
            let audiences = &api.tokens().api_audiences;
            return self
                .authenticate_token(api, token, audiences)
                .await
                .map(|authenticated| authenticated.user);
        }
        if self.anonymous {
            Ok(UserInfo::anonymous())
        } else {
            Err(Error::NoCredentials)
        }
    }

    /// The user of a bearer token, for the token's `audiences` among those given (the
    /// token authenticators of a request, and of TokenReview): `--token-auth-file` first
    /// (its tokens have no audience: they are good for all asked), then service-account
    /// tokens.
    pub async fn authenticate_token(
        &self,
        api: &Api,
        token: &str,
        audiences: &[String],
    ) -> Result<Authenticated, Error> {
        if let Some(user) = self.tokens.get(token) {
            return Ok(Authenticated {
                user: with_authenticated(user.clone()),
                audiences: audiences.to_vec(),
            });
        }
        match crate::service_accounts::authenticate(api, token, audiences).await {
            Ok(Some(mut authenticated)) => {
                authenticated.user = with_authenticated(authenticated.user);
                Ok(authenticated)
            }
            Ok(None) => Err(Error::InvalidToken),
            Err(e) => Err(Error::InvalidServiceAccountToken(e)),
        }
    }
}

/// Adds `system:authenticated` unless the user already has it (or is unauthenticated).
pub fn with_authenticated(mut user: UserInfo) -> UserInfo {
    if !user.in_group(GROUP_AUTHENTICATED) && !user.in_group(GROUP_UNAUTHENTICATED) {
        user.groups.push(GROUP_AUTHENTICATED.to_string());
    }
    user
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Parses kube-apiserver's static token file: CSV lines `token,user,uid[,"g1,g2"]`.
pub fn parse_token_file(text: &str) -> Result<HashMap<String, UserInfo>, String> {
    let mut tokens = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields = csv_fields(line).map_err(|e| format!("line {number}: {e}"))?;
        if fields.len() < 3 {
            return Err(format!(
                "line {number}: expected at least 3 fields (token,user,uid), found {}",
                fields.len()
            ));
        }
        if fields[0].is_empty() {
            return Err(format!("line {number}: the token is empty"));
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let user = UserInfo {
            name: fields[1].clone(),
            uid: fields[2].clone(),
            groups,
            ..UserInfo::default()
        };
        if tokens.insert(fields[0].clone(), user).is_some() {
            tracing::warn!("token file line {number}: duplicate token, the later line wins");
        }
    }
    Ok(tokens)
}

/// One CSV record: comma-separated fields, double-quoted fields may hold commas and `""`.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field".to_string()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// The common name and organizations of a certificate's subject (CN = user, O = groups,
/// as kube-apiserver's x509 authenticator reads them).
pub fn subject_identity(cert: &[u8]) -> Option<(String, Vec<String>)> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serial, signature
    //   algorithm, issuer Name, validity, subject Name, ... }, ... }
    let (_, certificate, _) = der_read(cert)?;
    let (_, tbs, _) = der_read(certificate)?;
    let mut rest = tbs;
    let mut index = 0;
    loop {
        let (tag, value, next) = der_read(rest)?;
        rest = next;
        if index == 0 && tag == 0xa0 {
            continue; // explicit version
        }
        index += 1;
        // serial (1), signature algorithm (2), issuer (3), validity (4), subject (5)
        if index == 5 {
            return Some(name_attributes(value));
        }
    }
}

/// CN and O values of an X.501 Name (SEQUENCE OF SET OF AttributeTypeAndValue).
fn name_attributes(mut name: &[u8]) -> (String, Vec<String>) {
    const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
    const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
    let mut common_name = String::new();
    let mut organizations = Vec::new();
    while let Some((_, mut set, next)) = der_read(name) {
        name = next;
        while let Some((_, attribute, next_attribute)) = der_read(set) {
            set = next_attribute;
            let Some((_, oid, value)) = der_read(attribute) else {
                continue;
            };
            let Some((_, text, _)) = der_read(value) else {
                continue;
            };
            let text = String::from_utf8_lossy(text).into_owned();
            if oid == OID_CN {
                common_name = text;
            } else if oid == OID_O {
                organizations.push(text);
            }
        }
    }
    (common_name, organizations)
}

/// One DER element: (tag, contents, the bytes after it).
pub(crate) fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (length, header) = if first < 0x80 {
        (first, 2)
    } else {
        let count = first & 0x7f;
        if count == 0 || count > 4 {
            return None;
        }
        let mut length = 0usize;
        for i in 0..count {
            length = (length << 8) | *input.get(2 + i)? as usize;
        }
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    if end > input.len() {
        return None;
    }
    Some((tag, &input[header..end], &input[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_format() {
        let tokens =
            parse_token_file("t1,alice,u1,\"dev,ops\"\n\nt2,bob,u2\nt3, carol ,u3,solo\n").unwrap();
        assert_eq!(tokens["t1"].name, "alice");
        assert_eq!(tokens["t1"].groups, vec!["dev", "ops"]);
        assert!(tokens["t2"].groups.is_empty());
        assert_eq!(tokens["t3"].groups, vec!["solo"]);
        assert!(parse_token_file("t1,alice\n").is_err());
        assert!(parse_token_file("t1,alice,u,\"unterminated\n").is_err());
    }

    #[test]
    fn certificate_subject() {
        let mut params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "dev");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (name, groups) = subject_identity(cert.der()).unwrap();
        assert_eq!(name, "alice");
        assert_eq!(groups, vec!["dev"]);
    }
}
