//! What kube checks of a CertificateSigningRequest's bytes: `spec.request` is a PEM
//! `CERTIFICATE REQUEST` (PKCS#10) whose signature verifies with its own public key, and
//! `status.certificate` is only `CERTIFICATE` blocks. A small DER reader of the few
//! structures involved; the signature is verified with `ring` (ECDSA P-256/P-384, RSA
//! PKCS#1 v1.5 with SHA-256/384/512, Ed25519: what Go's `CheckSignature` accepts in practice).
//! Messages are Go's where kube passes them through.

use base64::Engine;
use ring::signature;

/// Why `request` (base64 of the PEM, as JSON carries bytes) is not a valid signed CSR.
pub fn request_error(request: &str) -> Option<String> {
    let pem = match base64::engine::general_purpose::STANDARD.decode(request) {
        Ok(pem) => pem,
        Err(_) => return Some("PEM block type must be CERTIFICATE REQUEST".into()),
    };
    match first_block(&pem) {
        Some(("CERTIFICATE REQUEST", der)) => check_signed_request(&der).err(),
        _ => Some("PEM block type must be CERTIFICATE REQUEST".into()),
    }
}

/// Why `certificate` (base64 of PEM, possibly empty) is not a chain of certificates.
pub fn certificate_error(certificate: &str) -> Option<String> {
    if certificate.is_empty() {
        return None;
    }
    let Ok(pem) = base64::engine::general_purpose::STANDARD.decode(certificate) else {
        return Some("must contain at least one CERTIFICATE PEM block".into());
    };
    let mut rest = pem.as_slice();
    let mut blocks = 0;
    while let Some((label, der, after)) = next_block(rest) {
        if label != "CERTIFICATE" {
            return Some(format!(
                "only CERTIFICATE PEM blocks are allowed, found \"{label}\""
            ));
        }
        if Der::new(&der).sequence().is_none() {
            return Some("x509: malformed certificate".into());
        }
        blocks += 1;
        rest = after;
    }
    (blocks == 0).then(|| "must contain at least one CERTIFICATE PEM block".into())
}

fn first_block(pem: &[u8]) -> Option<(&str, Vec<u8>)> {
    next_block(pem).map(|(label, der, _)| (label, der))
}

/// The next PEM block: its label, its decoded bytes and what follows it.
fn next_block(pem: &[u8]) -> Option<(&str, Vec<u8>, &[u8])> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN ")?;
    let after_begin = &text[start + "-----BEGIN ".len()..];
    let label_end = after_begin.find("-----")?;
    let label = &after_begin[..label_end];
    let body_start = after_begin[label_end + 5..].trim_start_matches(['\r', '\n']);
    let end_marker = format!("-----END {label}-----");
    let end = body_start.find(&end_marker)?;
    let body: String = body_start[..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let rest = &body_start[end + end_marker.len()..];
    let consumed = pem.len() - rest.len();
    Some((label, der, &pem[consumed..]))
}

/// A PKCS#10 `CertificationRequest`: the signed info, the algorithm and the signature, and
/// the signature checked against the info's public key.
fn check_signed_request(der: &[u8]) -> Result<(), String> {
    const MALFORMED: &str = "asn1: structure error: malformed certificate request";
    let mut outer = Der::new(der).sequence().ok_or(MALFORMED)?;
    let info = outer.raw(0x30).ok_or(MALFORMED)?;
    let mut algorithm = outer.sequence().ok_or(MALFORMED)?;
    let algorithm = algorithm.element(0x06).ok_or(MALFORMED)?;
    let signature = bit_string(outer.element(0x03).ok_or(MALFORMED)?).ok_or(MALFORMED)?;
    // CertificationRequestInfo: version, subject, subjectPKInfo, attributes.
    let mut fields = Der::new(info).sequence().ok_or(MALFORMED)?;
    fields.element(0x02).ok_or(MALFORMED)?;
    fields.raw(0x30).ok_or(MALFORMED)?;
    let mut key_info = fields.sequence().ok_or(MALFORMED)?;
    let mut key_algorithm = key_info.sequence().ok_or(MALFORMED)?;
    let key_algorithm = key_algorithm.element(0x06).ok_or(MALFORMED)?;
    let key = bit_string(key_info.element(0x03).ok_or(MALFORMED)?).ok_or(MALFORMED)?;
    let scheme = verification(algorithm, key_algorithm)
        .ok_or("x509: cannot verify signature: algorithm unimplemented")?;
    signature::UnparsedPublicKey::new(scheme, key)
        .verify(info, signature)
        .map_err(|_| {
            match key_algorithm {
                RSA => "crypto/rsa: verification error",
                _ => "x509: ECDSA verification failure",
            }
            .to_string()
        })
}

const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The verification algorithm of a signature algorithm OID over a key algorithm OID.
fn verification(
    algorithm: &[u8],
    key_algorithm: &[u8],
) -> Option<&'static dyn signature::VerificationAlgorithm> {
    const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    const RSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    const RSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    const RSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    Some(match (algorithm, key_algorithm) {
        (ECDSA_SHA256, EC) => &signature::ECDSA_P256_SHA256_ASN1,
        (ECDSA_SHA384, EC) => &signature::ECDSA_P384_SHA384_ASN1,
        (RSA_SHA256, RSA) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (RSA_SHA384, RSA) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (RSA_SHA512, RSA) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (ED25519, ED25519) => &signature::ED25519,
        _ => return None,
    })
}

/// A BIT STRING's bytes (no unused bits).
fn bit_string(content: &[u8]) -> Option<&[u8]> {
    match content.split_first() {
        Some((0, bits)) => Some(bits),
        _ => None,
    }
}

/// A cursor over DER elements.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    /// The next element (tag, content, whole encoding), if it is well formed.
    fn next(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let (&tag, after_tag) = self.rest.split_first()?;
        let (&first, after_length) = after_tag.split_first()?;
        let (length, header) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let count = (first & 0x7f) as usize;
            if count == 0 || count > 4 || after_length.len() < count {
                return None;
            }
            let length = after_length[..count]
                .iter()
                .fold(0usize, |n, &b| (n << 8) | b as usize);
            (length, 2 + count)
        };
        let end = header.checked_add(length)?;
        if self.rest.len() < end {
            return None;
        }
        let whole = &self.rest[..end];
        self.rest = &self.rest[end..];
        Some((tag, &whole[header..], whole))
    }

    /// The content of the next element, which must have `tag`.
    fn element(&mut self, tag: u8) -> Option<&'a [u8]> {
        self.next()
            .filter(|(t, _, _)| *t == tag)
            .map(|(_, content, _)| content)
    }

    /// The whole encoding of the next element, which must have `tag`.
    fn raw(&mut self, tag: u8) -> Option<&'a [u8]> {
        self.next()
            .filter(|(t, _, _)| *t == tag)
            .map(|(_, _, whole)| whole)
    }

    /// A cursor over the next element, a SEQUENCE.
    fn sequence(&mut self) -> Option<Der<'a>> {
        self.element(0x30).map(Der::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(pem: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    #[test]
    fn a_signed_request_verifies_and_a_tampered_one_does_not() {
        for algorithm in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let key = rcgen::KeyPair::generate_for(algorithm).unwrap();
            let pem = rcgen::CertificateParams::new(vec!["a.example".to_string()])
                .unwrap()
                .serialize_request(&key)
                .unwrap()
                .pem()
                .unwrap();
            assert_eq!(request_error(&encoded(&pem)), None, "{algorithm:?}");
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .serialize_request(&key)
            .unwrap();
        let mut der = csr.der().to_vec();
        // Flip a bit of the subject's name: the signature no longer matches.
        let at = der
            .windows(9)
            .position(|w| w == b"a.example")
            .expect("the name is in the request");
        der[at] ^= 1;
        let body = base64::engine::general_purpose::STANDARD.encode(&der);
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"
        );
        assert_eq!(
            request_error(&encoded(&tampered)).as_deref(),
            Some("x509: ECDSA verification failure")
        );
        assert_eq!(
            request_error(&encoded(
                "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
            ))
            .as_deref(),
            Some("PEM block type must be CERTIFICATE REQUEST")
        );
    }

    #[test]
    fn certificates_are_certificate_blocks() {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        assert_eq!(certificate_error(&encoded(&certificate)), None);
        assert_eq!(certificate_error(""), None);
        assert_eq!(
            certificate_error(&encoded("nothing")).as_deref(),
            Some("must contain at least one CERTIFICATE PEM block")
        );
    }
}
