//! The service-account token keys: the signing key (`--service-account-signing-key-file`,
//! or one generated and kept in the data dir) and the verifying keys
//! (`--service-account-key-file`, repeatable), read from PEM as kube-apiserver reads them.
//!
//! Signatures are ring's (already behind rustls and rcgen): RS256 for RSA keys, ES256 for
//! P-256 keys. ring reads PKCS#8 and PKCS#1 RSA keys; a SEC1 `EC PRIVATE KEY` is wrapped
//! into PKCS#8 here, and public keys are read from their SubjectPublicKeyInfo.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde_json::{Value, json};

use crate::authn::der_read;

/// rsaEncryption (1.2.840.113549.1.1.1).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey (1.2.840.10045.2.1).
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (1.2.840.10045.3.1.7).
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A JWS algorithm kubecache signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
        }
    }
}

/// The private key tokens are signed with.
pub struct SigningKey {
    pair: Pair,
    /// Its public half, as tokens are verified and published.
    pub public: PublicKey,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl SigningKey {
    /// A new P-256 key, and its PKCS#8 PEM (to keep).
    pub fn generate() -> Result<(SigningKey, String), String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a P-256 key".to_string())?;
        let key = SigningKey::from_der(SectionKind::PrivateKey, pkcs8.as_ref())?;
        Ok((key, pem("PRIVATE KEY", pkcs8.as_ref())))
    }

    /// The first private key of a PEM file.
    pub fn from_pem(text: &[u8]) -> Result<SigningKey, String> {
        for section in Section::pem_slice_iter(text) {
            let Section(kind, der) = section.map_err(|e| format!("invalid PEM: {e}"))?;
            if matches!(
                kind,
                SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
            ) {
                return SigningKey::from_der(kind, &der);
            }
        }
        Err("no private key found (PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)".into())
    }

    fn from_der(kind: SectionKind, der: &[u8]) -> Result<SigningKey, String> {
        let rsa = |der: &[u8]| match kind {
            SectionKind::RsaPrivateKey => RsaKeyPair::from_der(der),
            _ => RsaKeyPair::from_pkcs8(der),
        };
        let pair = match kind {
            SectionKind::EcPrivateKey => Pair::Ec(ec_pair(&sec1_to_pkcs8(der))?),
            SectionKind::RsaPrivateKey => {
                Pair::Rsa(rsa(der).map_err(|e| format!("unsupported RSA private key: {e}"))?)
            }
            _ => match rsa(der) {
                Ok(pair) => Pair::Rsa(pair),
                Err(_) => Pair::Ec(ec_pair(der)?),
            },
        };
        let public = match &pair {
            Pair::Rsa(pair) => {
                PublicKey::new(Algorithm::Rs256, pair.public_key().as_ref().to_vec())?
            }
            Pair::Ec(pair) => {
                PublicKey::new(Algorithm::Es256, pair.public_key().as_ref().to_vec())?
            }
        };
        Ok(SigningKey { pair, public })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm
    }

    /// The signature of `message` (JWS form: PKCS#1 v1.5, or r‖s for ECDSA).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| "RSA signing failed".to_string())?;
                Ok(out)
            }
            Pair::Ec(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_string()),
        }
    }
}

fn ec_pair(pkcs8: &[u8]) -> Result<EcdsaKeyPair, String> {
    EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8,
        &SystemRandom::new(),
    )
    .map_err(|e| format!("unsupported private key (RSA, or EC on P-256, expected): {e}"))
}

/// A key tokens are verified with.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub algorithm: Algorithm,
    /// RSAPublicKey (PKCS#1) DER for RSA, the uncompressed point for EC: what ring verifies.
    key: Vec<u8>,
    /// kube's key id: base64url(SHA-256(SubjectPublicKeyInfo DER)).
    pub kid: String,
}

impl PublicKey {
    fn new(algorithm: Algorithm, key: Vec<u8>) -> Result<PublicKey, String> {
        let spki = match algorithm {
            Algorithm::Rs256 => spki(&der(0x30, &[&der(0x06, &[OID_RSA]), &der(0x05, &[])]), &key),
            Algorithm::Es256 => spki(
                &der(0x30, &[&der(0x06, &[OID_EC]), &der(0x06, &[OID_P256])]),
                &key,
            ),
        };
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Ok(PublicKey {
            algorithm,
            key,
            kid,
        })
    }

    /// Every public key of a PEM file: `PUBLIC KEY` sections, certificates' keys are not
    /// read; private keys give their public half (kube accepts both in
    /// `--service-account-key-file`).
    pub fn all_from_pem(text: &[u8]) -> Result<Vec<PublicKey>, String> {
        let mut keys = Vec::new();
        for section in Section::pem_slice_iter(text) {
            let Section(kind, der) = section.map_err(|e| format!("invalid PEM: {e}"))?;
            match kind {
                SectionKind::PublicKey => keys.push(PublicKey::from_spki(&der)?),
                SectionKind::PrivateKey
                | SectionKind::RsaPrivateKey
                | SectionKind::EcPrivateKey => {
                    keys.push(SigningKey::from_der(kind, &der)?.public);
                }
                _ => {}
            }
        }
        if keys.is_empty() {
            return Err("no public or private key found".into());
        }
        Ok(keys)
    }

    /// SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE { OID, params }, BIT STRING }
    fn from_spki(spki: &[u8]) -> Result<PublicKey, String> {
        let invalid = || "invalid public key".to_string();
        let (_, body, _) = der_read(spki).ok_or_else(invalid)?;
        let (_, algorithm, rest) = der_read(body).ok_or_else(invalid)?;
        let (_, bits, _) = der_read(rest).ok_or_else(invalid)?;
        let (_, oid, params) = der_read(algorithm).ok_or_else(invalid)?;
        let key = bits.get(1..).ok_or_else(invalid)?.to_vec();
        if oid == OID_RSA {
            PublicKey::new(Algorithm::Rs256, key)
        } else if oid == OID_EC && der_read(params).is_some_and(|(_, curve, _)| curve == OID_P256) {
            PublicKey::new(Algorithm::Es256, key)
        } else {
            Err("unsupported public key (RSA, or EC on P-256, expected)".into())
        }
    }

    /// Whether `signature` signs `message` with this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &dyn signature::VerificationAlgorithm = match self.algorithm {
            Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        };
        UnparsedPublicKey::new(algorithm, &self.key)
            .verify(message, signature)
            .is_ok()
    }

    /// The key as a JSON Web Key, as kube publishes it at `/openid/v1/jwks`.
    pub fn jwk(&self) -> Value {
        match self.algorithm {
            Algorithm::Rs256 => {
                let (n, e) = rsa_components(&self.key).unwrap_or_default();
                json!({"use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
                       "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)})
            }
            Algorithm::Es256 => {
                let point = self.key.get(1..).unwrap_or_default();
                let (x, y) = point.split_at(point.len() / 2);
                json!({"use": "sig", "kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
                       "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
            }
        }
    }
}

/// The modulus and exponent of an RSAPublicKey, without DER's sign bytes.
fn rsa_components(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, body, _) = der_read(key)?;
    let (_, n, rest) = der_read(body)?;
    let (_, e, _) = der_read(rest)?;
    let trim = |v: &[u8]| -> usize { v.iter().take_while(|b| **b == 0).count() };
    Some((&n[trim(n)..], &e[trim(e)..]))
}

/// Loads the signing key: the file given, else the one kept in `keep_dir` (generated there
/// on first start), else a new one for this process only.
pub fn load_signing_key(
    file: Option<&Path>,
    keep_dir: Option<&Path>,
) -> Result<SigningKey, String> {
    if let Some(path) = file {
        let text = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read --service-account-signing-key-file {}: {e}",
                path.display()
            )
        })?;
        return SigningKey::from_pem(&text)
            .map_err(|e| format!("--service-account-signing-key-file {}: {e}", path.display()));
    }
    let Some(dir) = keep_dir else {
        return Ok(SigningKey::generate()?.0);
    };
    let path = dir.join(GENERATED_KEY);
    if let Ok(text) = std::fs::read(&path) {
        return SigningKey::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()));
    }
    let (key, pem) = SigningKey::generate()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(&path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(key)
}

/// The generated signing key's file name in its directory.
pub const GENERATED_KEY: &str = "service-account.key";

/// Loads every `--service-account-key-file`.
pub fn load_public_keys(files: &[impl AsRef<Path>]) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for path in files {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read --service-account-key-file {}: {e}",
                path.display()
            )
        })?;
        keys.extend(
            PublicKey::all_from_pem(&text)
                .map_err(|e| format!("--service-account-key-file {}: {e}", path.display()))?,
        );
    }
    Ok(keys)
}

/// One PEM section of any kind.
struct Section(SectionKind, Vec<u8>);

impl PemObject for Section {
    fn from_pem(kind: SectionKind, der: Vec<u8>) -> Option<Self> {
        Some(Section(kind, der))
    }
}

/// A DER element of `tag` holding the concatenation of `parts`.
fn der(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let length: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = vec![tag];
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes = length.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// SubjectPublicKeyInfo DER of a key (the algorithm identifier given).
fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    der(0x30, &[algorithm, &der(0x03, &[&[0], key])])
}

/// PKCS#8 around a SEC1 ECPrivateKey on P-256 (what ring reads).
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    der(
        0x30,
        &[
            &der(0x02, &[&[0]]),
            &der(0x30, &[&der(0x06, &[OID_EC]), &der(0x06, &[OID_P256])]),
            &der(0x04, &[sec1]),
        ],
    )
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_and_round_trips_through_pem() {
        let (key, pem) = SigningKey::generate().unwrap();
        assert_eq!(key.algorithm(), Algorithm::Es256);
        let signature = key.sign(b"message").unwrap();
        assert!(key.public.verifies(b"message", &signature));
        assert!(!key.public.verifies(b"other", &signature));
        let again = SigningKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(again.public.kid, key.public.kid);
        let publics = PublicKey::all_from_pem(pem.as_bytes()).unwrap();
        assert!(publics[0].verifies(b"message", &signature));
        let jwk = key.public.jwk();
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }

    #[test]
    fn rcgen_keys_and_their_spki_agree() {
        // rcgen writes the SubjectPublicKeyInfo the way Go's MarshalPKIXPublicKey does: the
        // key id computed from a private key equals the one from its public PEM.
        let pair = rcgen::KeyPair::generate().unwrap();
        let private = SigningKey::from_pem(pair.serialize_pem().as_bytes()).unwrap();
        let public = PublicKey::all_from_pem(pair.public_key_pem().as_bytes()).unwrap();
        assert_eq!(private.public.kid, public[0].kid);
        let signature = private.sign(b"m").unwrap();
        assert!(public[0].verifies(b"m", &signature));
    }
}
