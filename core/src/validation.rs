//! Object name rules, as kube-apiserver's apimachinery validation states them.
//!
//! Each check returns the list of problems with the value, worded exactly as
//! `k8s.io/apimachinery/pkg/util/validation` words them; an empty list means the value is valid.
//! The regular expressions kube uses are implemented by hand (no regex crate), but the messages
//! still quote them, as kube's do. Lengths are counted in bytes, as Go counts them.

/// Longest DNS-1123 subdomain (`metadata.name` of most resources).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest DNS-1123 label (namespaces, nodes' hostname labels, ...).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1035 label (services).
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// Longest name part of a qualified name (label and annotation keys).
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// Longest label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// apimachinery's `EmptyError()`.
pub fn empty_error() -> String {
    "must be non-empty".to_string()
}

/// apimachinery's `MaxLenError(n)`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// apimachinery's `RegexError(msg, fmt, examples...)`, including its quirky `',  or '`
/// separator between examples.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

// ---- hand-written equivalents of kube's regular expressions (whole-string matches) ----

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1123_label(value: &str) -> bool {
    let b = value.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// `label(\.label)*` with `label` = `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (no per-label length cap).
fn matches_dns1123_subdomain(value: &str) -> bool {
    value.split('.').all(matches_dns1123_label)
}

/// `[a-z]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1035_label(value: &str) -> bool {
    matches_dns1123_label(value) && value.as_bytes()[0].is_ascii_lowercase()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name_part(value: &str) -> bool {
    let b = value.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

// ---- public checks ----

/// `IsDNS1123Subdomain`: at most 253 characters of lowercase alphanumerics, `-` and `.`,
/// every dot-separated part starting and ending with an alphanumeric.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsDNS1123Label`: at most 63 characters of lowercase alphanumerics and `-`, starting and
/// ending with an alphanumeric.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            // A valid subdomain but not a valid label: it has dots.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `IsDNS1035Label`: like a DNS-1123 label but must start with a letter (service names).
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !matches_dns1035_label(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// `IsValidPathSegmentName` (apimachinery/pkg/api/validation/path): the name may not be `.` or
/// `..` and may not contain `/` or `%` (RBAC objects and other names used as one URL segment).
/// An empty name passes: "name is required" is checked by the caller, as in kube.
pub fn is_path_segment_name(value: &str) -> Vec<String> {
    for illegal in [".", ".."] {
        if value == illegal {
            return vec![format!("may not be '{illegal}'")];
        }
    }
    is_path_segment_prefix(value)
}

/// `IsValidPathSegmentPrefix`: the `generateName` variant of [`is_path_segment_name`].
pub fn is_path_segment_prefix(value: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|illegal| value.contains(**illegal))
        .map(|illegal| format!("may not contain '{illegal}'"))
        .collect()
}

/// `IsQualifiedName`: a label or annotation key, `[prefix/]name`, where the optional prefix is
/// a DNS-1123 subdomain and the name is at most 63 alphanumerics, `-`, `_` and `.`, starting
/// and ending with an alphanumeric.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|msg| format!("prefix part {msg}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsValidLabelValue`: empty, or at most 63 alphanumerics, `-`, `_` and `.`, starting and
/// ending with an alphanumeric.
pub fn is_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `IsValidPortNum`: 1 to 65535.
pub fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".to_string()]
    }
}

/// `IsValidPortName`: an IANA service name — at most 15 lowercase alphanumerics and `-`, with
/// a letter, no `--`, not starting or ending with `-`.
pub fn is_valid_port_name(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push(max_len_error(15));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// kube's `maskTrailingDash`: a `generateName` prefix may end in `-` because a random suffix
/// follows it. (Go drops the character before the dash too; kept for identical verdicts.)
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        // Go slices bytes; a non-ASCII character before the dash makes the name invalid
        // either way, so it is simply left in place.
        let cut = name.len() - 2;
        if name.is_char_boundary(cut) {
            return format!("{}a", &name[..cut]);
        }
    }
    name.to_string()
}

/// apimachinery's `IsValidIP` (strict): an IP address Go's sloppy parser accepts, without
/// leading zeros, not IPv4-mapped, and in canonical form.
pub fn is_valid_ip(value: &str) -> Vec<String> {
    match parse_ip_strict(value) {
        Ok(ip) if ip.to_string() != value => {
            vec![format!("must be in canonical form (\"{ip}\")")]
        }
        Ok(_) => Vec::new(),
        Err(errs) => errs,
    }
}

/// apimachinery's `IsValidCIDR` (strict): a subnet (`10.0.0.0/24`, no bits set beyond the
/// prefix), without leading zeros, not IPv4-mapped, in canonical form.
pub fn is_valid_cidr(value: &str) -> Vec<String> {
    const INVALID: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
    let Some((address, bits)) = value.split_once('/') else {
        return vec![INVALID.to_string()];
    };
    let sloppy_bits = bits
        .parse::<u8>()
        .ok()
        .filter(|_| !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit()));
    let (Some(ip), Some(prefix)) = (parse_ip_sloppy(address), sloppy_bits) else {
        return vec![INVALID.to_string()];
    };
    let width = if ip.is_ipv4() { 32 } else { 128 };
    if u32::from(prefix) > width {
        return vec![INVALID.to_string()];
    }
    if address.parse::<std::net::IpAddr>().is_err() || (bits.len() > 1 && bits.starts_with('0')) {
        return vec!["must not have leading 0s in IP or prefix length".to_string()];
    }
    if is_ipv4_mapped(ip) {
        return vec!["must not have an IPv4-mapped IPv6 address".to_string()];
    }
    let raw = match ip {
        std::net::IpAddr::V4(v4) => u128::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    };
    let host_bits = width - u32::from(prefix);
    if host_bits > 0 && raw & ((1u128 << host_bits) - 1) != 0 {
        return vec!["must not have bits set beyond the prefix length".to_string()];
    }
    let canonical = format!("{ip}/{prefix}");
    if canonical != value {
        return vec![format!("must be in canonical form (\"{canonical}\")")];
    }
    Vec::new()
}

/// The address Go's `ParseIPSloppy` reads: also IPv4 octets with leading zeros (read as
/// decimal).
fn parse_ip_sloppy(value: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = value.parse() {
        return Some(ip);
    }
    let octets: Vec<&str> = value.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let mut bytes = [0u8; 4];
    for (byte, octet) in bytes.iter_mut().zip(&octets) {
        if octet.is_empty() || !octet.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *byte = octet.parse().ok()?;
    }
    Some(std::net::IpAddr::from(bytes))
}

fn is_ipv4_mapped(ip: std::net::IpAddr) -> bool {
    matches!(ip, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

/// The address, or kube's reasons for refusing it.
fn parse_ip_strict(value: &str) -> Result<std::net::IpAddr, Vec<String>> {
    let Some(ip) = parse_ip_sloppy(value) else {
        return Err(vec![
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string(),
        ]);
    };
    let mut errs = Vec::new();
    if value.parse::<std::net::IpAddr>().is_err() {
        errs.push("must not have leading 0s".to_string());
    }
    if is_ipv4_mapped(ip) {
        errs.push("must not be an IPv4-mapped IPv6 address".to_string());
    }
    if errs.is_empty() { Ok(ip) } else { Err(errs) }
}

/// Which rule a resource's `metadata.name` must satisfy (kube's `ValidateNameFunc`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameRule {
    /// `NameIsDNSSubdomain`: most resources.
    Subdomain,
    /// `NameIsDNSLabel`: namespaces and a few others.
    Label,
    /// `NameIsDNS1035Label`: services.
    Dns1035Label,
    /// `ValidatePathSegmentName`: RBAC roles and bindings and other free-form names.
    PathSegment,
    /// `ValidateIPAddressName`: an IPAddress is named by its IP, in canonical form.
    IpAddress,
}

impl NameRule {
    /// Problems with `name` as a full `metadata.name`; empty means valid. An empty name is
    /// reported by every rule but [`NameRule::PathSegment`]; callers check "Required value"
    /// first, as kube's `ValidateObjectMeta` does.
    pub fn check(&self, name: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => is_dns1123_subdomain(name),
            NameRule::Label => is_dns1123_label(name),
            NameRule::Dns1035Label => is_dns1035_label(name),
            NameRule::PathSegment => is_path_segment_name(name),
            NameRule::IpAddress => is_valid_ip(name),
        }
    }

    /// Problems with `prefix` as a `metadata.generateName`: the same rule, except that a
    /// trailing `-` is allowed (kube's `prefix == true` mode).
    pub fn check_prefix(&self, prefix: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => is_dns1123_subdomain(&mask_trailing_dash(prefix)),
            NameRule::Label => is_dns1123_label(&mask_trailing_dash(prefix)),
            NameRule::Dns1035Label => is_dns1035_label(&mask_trailing_dash(prefix)),
            NameRule::PathSegment => is_path_segment_prefix(prefix),
            // kube ignores the prefix mode: such a name cannot be generated.
            NameRule::IpAddress => is_valid_ip(prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    const QNAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    #[test]
    fn regex_error_formats_like_apimachinery() {
        assert_eq!(
            regex_error("m", "f", &[]),
            "m (regex used for validation is 'f')"
        );
        assert_eq!(
            regex_error("m", "f", &["a"]),
            "m (e.g. 'a', regex used for validation is 'f')"
        );
        assert_eq!(
            regex_error("m", "f", &["a", "b"]),
            "m (e.g. 'a',  or 'b', regex used for validation is 'f')"
        );
    }

    #[test]
    fn subdomain_accepts_valid_names() {
        for name in [
            "a",
            "0",
            "ab",
            "a-b",
            "a.b",
            "example.com",
            "1.2.3.4",
            "a--b",
            "kube-system",
            &"a".repeat(253),
            &format!("{}.{}", "a".repeat(63), "b".repeat(100)),
        ] {
            assert!(is_dns1123_subdomain(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn subdomain_rejects_invalid_names() {
        for name in [
            "", "A", "aB", "-a", "a-", ".a", "a.", "a..b", "a.-b", "a-.b", "a_b", "a b", "a/b",
            "é", "a:b",
        ] {
            assert_eq!(is_dns1123_subdomain(name), vec![SUBDOMAIN_MSG], "{name:?}");
        }
    }

    #[test]
    fn subdomain_length() {
        let long = "a".repeat(254);
        assert_eq!(
            is_dns1123_subdomain(&long),
            vec!["must be no more than 253 characters".to_string()]
        );
        let long_bad = format!("{}-", "a".repeat(254));
        assert_eq!(
            is_dns1123_subdomain(&long_bad),
            vec![
                "must be no more than 253 characters".to_string(),
                SUBDOMAIN_MSG.to_string()
            ]
        );
    }

    #[test]
    fn label_rules() {
        for name in ["a", "0", "my-name", "123-abc", &"a".repeat(63)] {
            assert!(is_dns1123_label(name).is_empty(), "{name}");
        }
        for name in ["", "A", "-a", "a-", "a_b", "a/b", "a..b", ".a"] {
            assert_eq!(is_dns1123_label(name), vec![LABEL_MSG], "{name:?}");
        }
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn dns1035_rules() {
        for name in ["a", "my-name", "abc-123", &"a".repeat(63)] {
            assert!(is_dns1035_label(name).is_empty(), "{name}");
        }
        for name in ["", "0", "1abc", "-a", "a-", "A", "a.b", "a_b"] {
            assert_eq!(is_dns1035_label(name), vec![DNS1035_MSG], "{name:?}");
        }
        assert_eq!(
            is_dns1035_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn path_segment_rules() {
        for name in [
            "",
            "a",
            "system:admin",
            "Foo Bar",
            "a.b",
            "...",
            "a..b",
            "é",
        ] {
            assert!(is_path_segment_name(name).is_empty(), "{name:?}");
        }
        assert_eq!(is_path_segment_name("."), vec!["may not be '.'"]);
        assert_eq!(is_path_segment_name(".."), vec!["may not be '..'"]);
        assert_eq!(is_path_segment_name("a/b"), vec!["may not contain '/'"]);
        assert_eq!(is_path_segment_name("a%b"), vec!["may not contain '%'"]);
        assert_eq!(
            is_path_segment_name("%/"),
            vec!["may not contain '/'", "may not contain '%'"]
        );
        assert!(is_path_segment_prefix("..").is_empty());
        assert_eq!(is_path_segment_prefix("a/"), vec!["may not contain '/'"]);
    }

    #[test]
    fn qualified_name_rules() {
        for key in [
            "a",
            "A",
            "app",
            "MyName",
            "my.name",
            "123-abc",
            "a_b",
            "example.com/MyName",
            "app.kubernetes.io/name",
            "kubernetes.io/hostname",
            &"a".repeat(63),
            &format!("{}/{}", "a".repeat(253), "b".repeat(63)),
        ] {
            assert!(is_qualified_name(key).is_empty(), "{key}");
        }
        assert_eq!(is_qualified_name("-a"), vec![QNAME_MSG]);
        assert_eq!(is_qualified_name("a-"), vec![QNAME_MSG]);
        assert_eq!(is_qualified_name("a b"), vec![QNAME_MSG]);
        assert_eq!(
            is_qualified_name(""),
            vec![
                "name part must be non-empty".to_string(),
                QNAME_MSG.to_string()
            ]
        );
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert_eq!(
            is_qualified_name("/a"),
            vec!["prefix part must be non-empty"]
        );
        assert_eq!(
            is_qualified_name("Example.com/a"),
            vec![format!("prefix part {SUBDOMAIN_MSG}")]
        );
        assert_eq!(
            is_qualified_name("example.com/"),
            vec![
                "name part must be non-empty".to_string(),
                QNAME_MSG.to_string()
            ]
        );
        assert_eq!(
            is_qualified_name("a/b/c"),
            vec![
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ]
        );
    }

    #[test]
    fn label_value_rules() {
        for value in [
            "",
            "a",
            "MyValue",
            "my_value",
            "12345",
            "a.b-c_d",
            &"a".repeat(63),
        ] {
            assert!(is_label_value(value).is_empty(), "{value}");
        }
        for value in ["-a", "a-", "_a", ".", "a b", "a/b", "é", "a=b"] {
            assert_eq!(is_label_value(value), vec![LABEL_VALUE_MSG], "{value:?}");
        }
        assert_eq!(
            is_label_value(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn ports() {
        assert!(is_valid_port_num(1).is_empty() && is_valid_port_num(65535).is_empty());
        assert_eq!(
            is_valid_port_num(0),
            vec!["must be between 1 and 65535, inclusive"]
        );
        assert!(is_valid_port_num(65536).len() == 1);
        assert!(is_valid_port_name("http").is_empty());
        assert!(is_valid_port_name("h2-web").is_empty());
        assert_eq!(
            is_valid_port_name("-80"),
            vec![
                "must contain at least one letter (a-z)",
                "must not begin or end with a hyphen"
            ]
        );
        assert_eq!(
            is_valid_port_name("Http--x"),
            vec![
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must not contain consecutive hyphens"
            ]
        );
        assert_eq!(
            is_valid_port_name("abcdefghijklmnop"),
            vec!["must be no more than 15 characters"]
        );
    }

    #[test]
    fn name_rule_dispatch() {
        assert!(NameRule::Subdomain.check("a.b").is_empty());
        assert_eq!(NameRule::Label.check("a.b"), vec!["must not contain dots"]);
        assert_eq!(NameRule::Dns1035Label.check("1a"), vec![DNS1035_MSG]);
        assert!(NameRule::PathSegment.check("system:node:a").is_empty());
        assert_eq!(NameRule::PathSegment.check(".."), vec!["may not be '..'"]);
        assert_eq!(NameRule::Subdomain.check(""), vec![SUBDOMAIN_MSG]);
        assert!(NameRule::PathSegment.check("").is_empty());
    }

    #[test]
    fn generate_name_prefixes_may_end_with_dash() {
        for rule in [NameRule::Subdomain, NameRule::Label, NameRule::Dns1035Label] {
            assert!(rule.check_prefix("web-").is_empty(), "{rule:?}");
            assert!(rule.check_prefix("w-").is_empty(), "{rule:?}");
            assert!(!rule.check("web-").is_empty(), "{rule:?}");
            assert!(!rule.check_prefix("Web-").is_empty(), "{rule:?}");
            assert!(!rule.check_prefix("-").is_empty(), "{rule:?}");
        }
        assert!(NameRule::Subdomain.check_prefix("a.b-").is_empty());
        assert!(NameRule::PathSegment.check_prefix("..").is_empty());
        assert_eq!(
            NameRule::PathSegment.check_prefix("a/"),
            vec!["may not contain '/'"]
        );
        // A multi-byte character before the dash is not split.
        assert!(!NameRule::Subdomain.check_prefix("é-").is_empty());
    }

    /// kube's strict IP and CIDR checks (`IsValidIP`, `IsValidCIDR`): the address forms Go's
    /// sloppy parser reads but kube refuses each get their own message.
    #[test]
    fn ip_and_cidr_rules() {
        for ip in ["10.0.0.1", "2001:db8::1", "::1"] {
            assert!(is_valid_ip(ip).is_empty(), "{ip}");
            assert!(NameRule::IpAddress.check(ip).is_empty(), "{ip}");
        }
        let invalid = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
        assert_eq!(is_valid_ip("a.b.c.d"), vec![invalid]);
        assert_eq!(is_valid_ip(""), vec![invalid]);
        assert_eq!(is_valid_ip("010.0.0.1"), vec!["must not have leading 0s"]);
        assert_eq!(
            is_valid_ip("::ffff:1.2.3.4"),
            vec!["must not be an IPv4-mapped IPv6 address"]
        );
        assert_eq!(
            is_valid_ip("2001:DB8:0:0::1"),
            vec!["must be in canonical form (\"2001:db8::1\")"]
        );
        for cidr in ["10.96.0.0/12", "fd00::/108", "0.0.0.0/0"] {
            assert!(is_valid_cidr(cidr).is_empty(), "{cidr}");
        }
        let invalid = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
        for cidr in ["10.0.0.0", "10.0.0.0/33", "x/8", "10.0.0.0/", "::/129"] {
            assert_eq!(is_valid_cidr(cidr), vec![invalid], "{cidr}");
        }
        assert_eq!(
            is_valid_cidr("10.0.0.1/24"),
            vec!["must not have bits set beyond the prefix length"]
        );
        assert_eq!(
            is_valid_cidr("10.0.0.0/08"),
            vec!["must not have leading 0s in IP or prefix length"]
        );
        assert_eq!(
            is_valid_cidr("FD00::/108"),
            vec!["must be in canonical form (\"fd00::/108\")"]
        );
    }
}
