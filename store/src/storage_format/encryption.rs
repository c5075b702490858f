//! Encryption at rest as kube-apiserver does it (`--encryption-provider-config`): an
//! `EncryptionConfiguration` (apiserver.config.k8s.io/v1) names, per resource, an ordered list
//! of providers; the first one encrypts every write, all of them are tried on a read (key
//! rotation), and `identity` stores and reads plaintext.
//!
//! The bytes in storage are kube's, so kube-apiserver and kubecache read each other's values:
//! `k8s:enc:<provider>:v1:<key name>:` followed by
//! - aescbc: a random 16-byte IV, then AES-CBC of the value with PKCS#7 padding;
//! - aesgcm: a random 12-byte nonce, then AES-GCM of the value (with its 16-byte tag) whose
//!   additional authenticated data is the etcd key (kube's `authenticatedDataString`);
//! - secretbox: a random 24-byte nonce, then NaCl secretbox (XSalsa20-Poly1305, tag first).
//!
//! KMS providers need a plugin over gRPC: a configuration naming one is refused at startup.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

/// What every encrypted value starts with; `identity` refuses to read such a value.
const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// A group/resource as the configuration names it: `secrets` (core), `deployments.apps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

/// The parsed `--encryption-provider-config`: which providers each resource uses.
#[derive(Debug)]
pub struct EncryptionConfig {
    rules: Vec<Rule>,
}

/// One `resources[]` entry: the resources it names and their providers, in order.
#[derive(Debug)]
struct Rule {
    resources: Vec<String>,
    providers: Vec<Provider>,
}

#[derive(Debug)]
enum Provider {
    Identity,
    /// One entry per key: the first key encrypts, every key decrypts.
    Keyed {
        kind: Cipher,
        keys: Vec<Key>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cipher {
    AesCbc,
    AesGcm,
    Secretbox,
}

impl Cipher {
    fn name(self) -> &'static str {
        match self {
            Cipher::AesCbc => "aescbc",
            Cipher::AesGcm => "aesgcm",
            Cipher::Secretbox => "secretbox",
        }
    }
}

struct Key {
    /// `k8s:enc:<provider>:v1:<name>:`
    prefix: Vec<u8>,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Key")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .finish_non_exhaustive()
    }
}

// The file's shape (kube's apiserver.config.k8s.io/v1 types).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileConfig {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<FileRule>,
}

#[derive(Deserialize)]
struct FileRule {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<FileProvider>,
}

#[derive(Deserialize)]
struct FileProvider {
    aescbc: Option<FileKeys>,
    aesgcm: Option<FileKeys>,
    secretbox: Option<FileKeys>,
    identity: Option<serde::de::IgnoredAny>,
    kms: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct FileKeys {
    #[serde(default)]
    keys: Vec<FileKey>,
}

#[derive(Deserialize)]
struct FileKey {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

impl EncryptionConfig {
    /// Parses an EncryptionConfiguration (YAML or JSON). A file that does not parse fails with
    /// the parser's message, which names the line; one that parses but is not valid names the
    /// offending field.
    pub fn parse(text: &str) -> Result<EncryptionConfig, String> {
        let file: FileConfig = serde_yaml_ng::from_str(text)
            .map_err(|e| format!("encryption provider configuration does not parse: {e}"))?;
        if file.kind.as_deref() != Some("EncryptionConfiguration") {
            return Err(format!(
                "encryption provider configuration: kind must be EncryptionConfiguration, not {:?}",
                file.kind.unwrap_or_default()
            ));
        }
        if file.api_version.as_deref() != Some("apiserver.config.k8s.io/v1") {
            return Err(format!(
                "encryption provider configuration: apiVersion must be apiserver.config.k8s.io/v1, \
                 not {:?}",
                file.api_version.unwrap_or_default()
            ));
        }
        if file.resources.is_empty() {
            return Err("encryption provider configuration: resources: Required value".into());
        }
        let rules = (file.resources.into_iter().enumerate())
            .map(|(i, rule)| Rule::from_file(rule, &format!("resources[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(EncryptionConfig { rules })
    }

    /// The providers of `resource`: the first entry naming it exactly (`secrets`,
    /// `deployments.apps`), by its group (`*.apps`, `*.` for the core group) or `*.*`; `None`
    /// when no entry does (stored as plaintext).
    fn providers(&self, resource: &GroupResource) -> Option<&[Provider]> {
        let exact = if resource.group.is_empty() {
            vec![resource.resource.clone(), format!("{}.", resource.resource)]
        } else {
            vec![format!("{}.{}", resource.resource, resource.group)]
        };
        let group = format!("*.{}", resource.group);
        self.rules
            .iter()
            .find(|rule| {
                rule.resources
                    .iter()
                    .any(|r| exact.contains(r) || *r == group || r == "*.*")
            })
            .map(|rule| rule.providers.as_slice())
    }

    /// Whether writes of `resource` are encrypted (its first provider is not identity).
    pub fn encrypts(&self, resource: &GroupResource) -> bool {
        matches!(
            self.providers(resource).and_then(<[Provider]>::first),
            Some(Provider::Keyed { .. })
        )
    }

    /// The bytes to store for `plain`, the value of `key` (a resource of `resource`).
    pub fn encrypt(
        &self,
        resource: &GroupResource,
        key: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, String> {
        match self.providers(resource).and_then(<[Provider]>::first) {
            None | Some(Provider::Identity) => Ok(plain.to_vec()),
            Some(Provider::Keyed { kind, keys }) => seal(*kind, &keys[0], key, plain),
        }
    }

    /// The plaintext of a stored value: decrypted by the provider and key its prefix names,
    /// or read as is by `identity` when it is not encrypted.
    pub fn decrypt(
        &self,
        resource: &GroupResource,
        key: &str,
        stored: &[u8],
    ) -> Result<Vec<u8>, String> {
        let Some(providers) = self.providers(resource) else {
            return identity(stored);
        };
        let mut errors = Vec::new();
        for provider in providers {
            match provider {
                Provider::Identity => {
                    if let Ok(plain) = identity(stored) {
                        return Ok(plain);
                    }
                }
                Provider::Keyed { kind, keys } => {
                    for candidate in keys {
                        let Some(sealed) = stored.strip_prefix(candidate.prefix.as_slice()) else {
                            continue;
                        };
                        match open(*kind, candidate, key, sealed) {
                            Ok(plain) => return Ok(plain),
                            Err(e) => errors.push(e),
                        }
                    }
                }
            }
        }
        Err(if errors.is_empty() {
            "no matching prefix found".to_string()
        } else {
            errors.join(", ")
        })
    }
}

/// kube's identity transformer: plaintext, but never what looks encrypted.
pub fn identity(stored: &[u8]) -> Result<Vec<u8>, String> {
    if stored.starts_with(ENCRYPTED_PREFIX) {
        return Err("identity transformer tried to read encrypted data".into());
    }
    Ok(stored.to_vec())
}

impl Rule {
    fn from_file(rule: FileRule, at: &str) -> Result<Rule, String> {
        if rule.resources.is_empty() {
            return Err(format!("{at}.resources: Required value"));
        }
        if rule.providers.is_empty() {
            return Err(format!("{at}.providers: Required value"));
        }
        let providers = (rule.providers.into_iter().enumerate())
            .map(|(i, p)| Provider::from_file(p, &format!("{at}.providers[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            resources: rule.resources,
            providers,
        })
    }
}

impl Provider {
    fn from_file(provider: FileProvider, at: &str) -> Result<Provider, String> {
        let keyed = [
            (Cipher::AesCbc, provider.aescbc),
            (Cipher::AesGcm, provider.aesgcm),
            (Cipher::Secretbox, provider.secretbox),
        ];
        let given = keyed.iter().filter(|(_, keys)| keys.is_some()).count()
            + usize::from(provider.identity.is_some())
            + usize::from(provider.kms.is_some());
        if given != 1 {
            return Err(format!(
                "{at}: Invalid value: exactly one provider must be configured"
            ));
        }
        if provider.kms.is_some() {
            return Err(format!(
                "{at}.kms: Unsupported value: KMS providers are not supported by kubecache \
                 (use aescbc, aesgcm, secretbox or identity)"
            ));
        }
        if provider.identity.is_some() {
            return Ok(Provider::Identity);
        }
        let (kind, file_keys) = keyed
            .into_iter()
            .find_map(|(kind, keys)| keys.map(|keys| (kind, keys)))
            .expect("exactly one provider");
        let at = format!("{at}.{}.keys", kind.name());
        if file_keys.keys.is_empty() {
            return Err(format!("{at}: Required value"));
        }
        let mut keys = Vec::new();
        for (i, key) in file_keys.keys.into_iter().enumerate() {
            let at = format!("{at}[{i}]");
            if key.name.is_empty() {
                return Err(format!("{at}.name: Required value"));
            }
            if key.name.contains(':') {
                return Err(format!(
                    "{at}.name: Invalid value: {:?}: should not contain ':'",
                    key.name
                ));
            }
            let secret = BASE64
                .decode(key.secret.trim())
                .map_err(|e| format!("{at}.secret: Invalid value: REDACTED: {e}"))?;
            let sizes: &[usize] = match kind {
                Cipher::AesCbc | Cipher::AesGcm => &[16, 24, 32],
                Cipher::Secretbox => &[32],
            };
            if !sizes.contains(&secret.len()) {
                return Err(format!(
                    "{at}.secret: Invalid value: REDACTED: secret is not of the expected length, \
                     got {}, expected one of {sizes:?}",
                    secret.len()
                ));
            }
            keys.push(Key {
                prefix: format!("k8s:enc:{}:v1:{}:", kind.name(), key.name).into_bytes(),
                secret,
            });
        }
        Ok(Provider::Keyed { kind, keys })
    }
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "no random bytes available".to_string())?;
    Ok(bytes)
}

type CbcEncryptor<C> = cbc::Encryptor<C>;
type CbcDecryptor<C> = cbc::Decryptor<C>;
type Aes192Gcm = aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

/// `prefix` + the sealed value.
fn seal(kind: Cipher, key: &Key, etcd_key: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = key.prefix.clone();
    match kind {
        Cipher::AesCbc => {
            let iv = random::<16>()?;
            out.extend_from_slice(&iv);
            let sealed = match key.secret.len() {
                16 => cbc_seal::<aes::Aes128>(&key.secret, &iv, plain),
                24 => cbc_seal::<aes::Aes192>(&key.secret, &iv, plain),
                _ => cbc_seal::<aes::Aes256>(&key.secret, &iv, plain),
            };
            out.extend_from_slice(&sealed);
        }
        Cipher::AesGcm => {
            let nonce = random::<12>()?;
            out.extend_from_slice(&nonce);
            let payload = Payload {
                msg: plain,
                aad: etcd_key.as_bytes(),
            };
            let nonce = aes_gcm::Nonce::from_slice(&nonce);
            let sealed = match key.secret.len() {
                16 => aes_gcm::Aes128Gcm::new_from_slice(&key.secret)
                    .map_err(|e| e.to_string())?
                    .encrypt(nonce, payload),
                24 => Aes192Gcm::new_from_slice(&key.secret)
                    .map_err(|e| e.to_string())?
                    .encrypt(nonce, payload),
                _ => aes_gcm::Aes256Gcm::new_from_slice(&key.secret)
                    .map_err(|e| e.to_string())?
                    .encrypt(nonce, payload),
            }
            .map_err(|_| "AES-GCM encryption failed".to_string())?;
            out.extend_from_slice(&sealed);
        }
        Cipher::Secretbox => {
            let nonce = random::<24>()?;
            out.extend_from_slice(&nonce);
            let cipher = xsalsa20poly1305::XSalsa20Poly1305::new_from_slice(&key.secret)
                .map_err(|e| e.to_string())?;
            let sealed = cipher
                .encrypt(xsalsa20poly1305::Nonce::from_slice(&nonce), plain)
                .map_err(|_| "secretbox encryption failed".to_string())?;
            out.extend_from_slice(&sealed);
        }
    }
    Ok(out)
}

fn cbc_seal<C>(secret: &[u8], iv: &[u8; 16], plain: &[u8]) -> Vec<u8>
where
    C: aes::cipher::BlockEncryptMut
        + aes::cipher::BlockCipher
        + aes::cipher::KeyInit
        + aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
{
    CbcEncryptor::<C>::new_from_slices(secret, iv)
        .expect("key and IV sizes were checked")
        .encrypt_padded_vec_mut::<Pkcs7>(plain)
}

fn cbc_open<C>(secret: &[u8], iv: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String>
where
    C: aes::cipher::BlockDecryptMut
        + aes::cipher::BlockCipher
        + aes::cipher::KeyInit
        + aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
{
    CbcDecryptor::<C>::new_from_slices(secret, iv)
        .expect("key and IV sizes were checked")
        .decrypt_padded_vec_mut::<Pkcs7>(sealed)
        .map_err(|_| "invalid padding on input".to_string())
}

/// The plaintext of a value sealed by `key` (its prefix already taken off).
fn open(kind: Cipher, key: &Key, etcd_key: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
    match kind {
        Cipher::AesCbc => {
            if sealed.len() < 16 {
                return Err("the stored data was shorter than the required size".into());
            }
            let (iv, body) = sealed.split_at(16);
            if body.len() % 16 != 0 {
                return Err("the stored data is not a multiple of the block size".into());
            }
            match key.secret.len() {
                16 => cbc_open::<aes::Aes128>(&key.secret, iv, body),
                24 => cbc_open::<aes::Aes192>(&key.secret, iv, body),
                _ => cbc_open::<aes::Aes256>(&key.secret, iv, body),
            }
        }
        Cipher::AesGcm => {
            if sealed.len() < 12 {
                return Err("the stored data was shorter than the required size".into());
            }
            let (nonce, body) = sealed.split_at(12);
            let payload = Payload {
                msg: body,
                aad: etcd_key.as_bytes(),
            };
            let nonce = aes_gcm::Nonce::from_slice(nonce);
            match key.secret.len() {
                16 => aes_gcm::Aes128Gcm::new_from_slice(&key.secret)
                    .map_err(|e| e.to_string())?
                    .decrypt(nonce, payload),
                24 => Aes192Gcm::new_from_slice(&key.secret)
                    .map_err(|e| e.to_string())?
                    .decrypt(nonce, payload),
                _ => aes_gcm::Aes256Gcm::new_from_slice(&key.secret)
                    .map_err(|e| e.to_string())?
                    .decrypt(nonce, payload),
            }
            .map_err(|_| "cipher: message authentication failed".to_string())
        }
        Cipher::Secretbox => {
            if sealed.len() < 24 + 16 {
                return Err("the stored data was shorter than the required size".into());
            }
            let (nonce, body) = sealed.split_at(24);
            xsalsa20poly1305::XSalsa20Poly1305::new_from_slice(&key.secret)
                .map_err(|e| e.to_string())?
                .decrypt(xsalsa20poly1305::Nonce::from_slice(nonce), body)
                .map_err(|_| "output array was not large enough for encryption".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const KEY2: &str = "MTIzNDU2Nzg5MDEyMzQ1Ng=="; // 16 bytes

    fn config(providers: &str) -> EncryptionConfig {
        EncryptionConfig::parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources:\n- resources: [secrets, '*.apps']\n  providers:\n{providers}"
        ))
        .unwrap()
    }

    fn secrets() -> GroupResource {
        GroupResource {
            group: String::new(),
            resource: "secrets".into(),
        }
    }

    #[test]
    fn every_provider_round_trips_with_kubes_prefix() {
        for provider in ["aescbc", "aesgcm", "secretbox"] {
            let config = config(&format!(
                "  - {provider}:\n      keys:\n      - name: k1\n        secret: {KEY1}\n"
            ));
            let stored = config
                .encrypt(&secrets(), "/registry/secrets/ns/s", b"plain")
                .unwrap();
            let prefix = format!("k8s:enc:{provider}:v1:k1:");
            assert!(stored.starts_with(prefix.as_bytes()), "{provider}");
            let plain = config
                .decrypt(&secrets(), "/registry/secrets/ns/s", &stored)
                .unwrap();
            assert_eq!(plain, b"plain", "{provider}");
        }
    }

    #[test]
    fn gcm_binds_the_value_to_its_key() {
        let config = config(&format!(
            "  - aesgcm:\n      keys:\n      - name: k1\n        secret: {KEY2}\n"
        ));
        let stored = config
            .encrypt(&secrets(), "/registry/secrets/ns/a", b"plain")
            .unwrap();
        let moved = config.decrypt(&secrets(), "/registry/secrets/ns/b", &stored);
        assert!(moved.unwrap_err().contains("authentication failed"));
    }

    #[test]
    fn rotation_reads_every_key_and_writes_with_the_first() {
        let old = config(&format!(
            "  - aescbc:\n      keys:\n      - name: k1\n        secret: {KEY1}\n"
        ));
        let stored = old.encrypt(&secrets(), "/k", b"v").unwrap();
        let rotated = config(&format!(
            "  - aescbc:\n      keys:\n      - name: k2\n        secret: {KEY2}\n      \
             - name: k1\n        secret: {KEY1}\n"
        ));
        assert_eq!(rotated.decrypt(&secrets(), "/k", &stored).unwrap(), b"v");
        let rewritten = rotated.encrypt(&secrets(), "/k", b"v").unwrap();
        assert!(rewritten.starts_with(b"k8s:enc:aescbc:v1:k2:"));
        let unknown = old.decrypt(&secrets(), "/k", &rewritten);
        assert_eq!(unknown.unwrap_err(), "no matching prefix found");
    }

    #[test]
    fn identity_reads_plaintext_but_not_ciphertext() {
        let config = config(&format!(
            "  - aesgcm:\n      keys:\n      - name: k1\n        secret: {KEY1}\n  - identity: {{}}\n"
        ));
        assert_eq!(config.decrypt(&secrets(), "/k", b"{}").unwrap(), b"{}");
        let configmaps = GroupResource {
            group: String::new(),
            resource: "configmaps".into(),
        };
        assert!(!config.encrypts(&configmaps));
        let deployments = GroupResource {
            group: "apps".into(),
            resource: "deployments".into(),
        };
        assert!(config.encrypts(&deployments));
        assert!(
            config
                .decrypt(&configmaps, "/k", b"k8s:enc:aesgcm:v1:k1:xx")
                .unwrap_err()
                .contains("identity transformer")
        );
    }

    #[test]
    fn bad_configurations_are_refused_with_where() {
        let err =
            EncryptionConfig::parse("kind: EncryptionConfiguration\nresources: [\n").unwrap_err();
        assert!(err.contains("line"), "{err}");
        let err = EncryptionConfig::parse(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources:\n- resources: [secrets]\n  providers:\n  - kms: {name: x}\n",
        )
        .unwrap_err();
        assert!(err.contains("KMS"), "{err}");
        let err = EncryptionConfig::parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources:\n- resources: [secrets]\n  providers:\n  - secretbox:\n      keys:\n      \
             - name: k\n        secret: {KEY2}\n",
        ))
        .unwrap_err();
        assert!(err.contains("expected length"), "{err}");
    }
}
