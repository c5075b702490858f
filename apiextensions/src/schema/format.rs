//! The string formats kube validates custom objects against. kube strips every other
//! `format` from the schema before validating (`int32`, `date-time`, ... check nothing),
//! so [`Format::parse`] returns `None` for them.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use base64::Engine;
use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    BsonObjectId,
    Uri,
    Email,
    Hostname,
    Ipv4,
    Ipv6,
    Cidr,
    Mac,
    Uuid,
    Uuid3,
    Uuid4,
    Uuid5,
    Isbn,
    Isbn10,
    Isbn13,
    CreditCard,
    Ssn,
    HexColor,
    RgbColor,
    Byte,
    Password,
    Date,
    Duration,
    DateTime,
    K8sShortName,
    K8sLongName,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "bsonobjectid" => Format::BsonObjectId,
            "uri" => Format::Uri,
            "email" => Format::Email,
            "hostname" => Format::Hostname,
            "ipv4" => Format::Ipv4,
            "ipv6" => Format::Ipv6,
            "cidr" => Format::Cidr,
            "mac" => Format::Mac,
            "uuid" => Format::Uuid,
            "uuid3" => Format::Uuid3,
            "uuid4" => Format::Uuid4,
            "uuid5" => Format::Uuid5,
            "isbn" => Format::Isbn,
            "isbn10" => Format::Isbn10,
            "isbn13" => Format::Isbn13,
            "creditcard" => Format::CreditCard,
            "ssn" => Format::Ssn,
            "hexcolor" => Format::HexColor,
            "rgbcolor" => Format::RgbColor,
            "byte" => Format::Byte,
            "password" => Format::Password,
            "date" => Format::Date,
            "duration" => Format::Duration,
            "datetime" => Format::DateTime,
            "k8s-short-name" => Format::K8sShortName,
            "k8s-long-name" => Format::K8sLongName,
            _ => return None,
        })
    }

    /// The name kube prints in `must be of type <format>`.
    pub fn name(self) -> &'static str {
        match self {
            Format::BsonObjectId => "bsonobjectid",
            Format::Uri => "uri",
            Format::Email => "email",
            Format::Hostname => "hostname",
            Format::Ipv4 => "ipv4",
            Format::Ipv6 => "ipv6",
            Format::Cidr => "cidr",
            Format::Mac => "mac",
            Format::Uuid => "uuid",
            Format::Uuid3 => "uuid3",
            Format::Uuid4 => "uuid4",
            Format::Uuid5 => "uuid5",
            Format::Isbn => "isbn",
            Format::Isbn10 => "isbn10",
            Format::Isbn13 => "isbn13",
            Format::CreditCard => "creditcard",
            Format::Ssn => "ssn",
            Format::HexColor => "hexcolor",
            Format::RgbColor => "rgbcolor",
            Format::Byte => "byte",
            Format::Password => "password",
            Format::Date => "date",
            Format::Duration => "duration",
            Format::DateTime => "datetime",
            Format::K8sShortName => "k8s-short-name",
            Format::K8sLongName => "k8s-long-name",
        }
    }

    pub fn accepts(self, s: &str) -> bool {
        match self {
            Format::BsonObjectId => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
            Format::Uri => uri(s),
            Format::Email => matches(&EMAIL, r"^[^@\s]+@[^@\s]+$", s),
            Format::Hostname => hostname(s),
            Format::Ipv4 => s.parse::<Ipv4Addr>().is_ok(),
            Format::Ipv6 => s.contains(':') && s.parse::<Ipv6Addr>().is_ok(),
            Format::Cidr => cidr(s),
            Format::Mac => {
                matches(
                    &MAC,
                    r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}-){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$",
                    s,
                ) || mac_long(s)
            }
            Format::Uuid => matches(
                &UUID,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
                s,
            ),
            Format::Uuid3 => matches(
                &UUID3,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
                s,
            ),
            Format::Uuid4 => matches(
                &UUID4,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
                s,
            ),
            Format::Uuid5 => matches(
                &UUID5,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
                s,
            ),
            Format::Isbn => isbn10(s) || isbn13(s),
            Format::Isbn10 => isbn10(s),
            Format::Isbn13 => isbn13(s),
            Format::CreditCard => {
                let digits: String = s.chars().filter(char::is_ascii_digit).collect();
                matches(
                    &CREDIT_CARD,
                    r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35[0-9]{3})[0-9]{11})$",
                    &digits,
                )
            }
            Format::Ssn => matches(&SSN, r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$", s),
            Format::HexColor => matches(&HEX_COLOR, r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", s),
            Format::RgbColor => matches(
                &RGB_COLOR,
                r"^rgb\(\s*(0|[1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\s*,\s*(0|[1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\s*,\s*(0|[1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\s*\)$",
                s,
            ),
            Format::Byte => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
            Format::Password => true,
            Format::Date => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
            Format::Duration => duration(s),
            Format::DateTime => date_time(s),
            Format::K8sShortName => {
                s.len() <= 63 && matches(&SHORT_NAME, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", s)
            }
            Format::K8sLongName => {
                s.len() <= 253
                    && matches(
                        &LONG_NAME,
                        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                        s,
                    )
            }
        }
    }
}

static EMAIL: OnceLock<Regex> = OnceLock::new();
static MAC: OnceLock<Regex> = OnceLock::new();
static UUID: OnceLock<Regex> = OnceLock::new();
static UUID3: OnceLock<Regex> = OnceLock::new();
static UUID4: OnceLock<Regex> = OnceLock::new();
static UUID5: OnceLock<Regex> = OnceLock::new();
static CREDIT_CARD: OnceLock<Regex> = OnceLock::new();
static SSN: OnceLock<Regex> = OnceLock::new();
static HEX_COLOR: OnceLock<Regex> = OnceLock::new();
static RGB_COLOR: OnceLock<Regex> = OnceLock::new();
static SHORT_NAME: OnceLock<Regex> = OnceLock::new();
static LONG_NAME: OnceLock<Regex> = OnceLock::new();
static HOSTNAME: OnceLock<Regex> = OnceLock::new();
static DURATION: OnceLock<Regex> = OnceLock::new();

fn matches(cell: &OnceLock<Regex>, pattern: &str, s: &str) -> bool {
    cell.get_or_init(|| Regex::new(pattern).expect("built-in format pattern compiles"))
        .is_match(s)
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path.
fn uri(s: &str) -> bool {
    if s.is_empty() || s.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    match s.split_once(':') {
        Some((scheme, _)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

fn hostname(s: &str) -> bool {
    s.len() <= 255
        && matches(
            &HOSTNAME,
            r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
            s,
        )
}

fn cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if ip.parse::<Ipv4Addr>().is_ok() {
        bits <= 32
    } else {
        ip.parse::<Ipv6Addr>().is_ok() && bits <= 128
    }
}

/// EUI-64 and 20-octet IP-over-InfiniBand forms, which Go's `net.ParseMAC` also accepts.
fn mac_long(s: &str) -> bool {
    for sep in [':', '-'] {
        let groups: Vec<&str> = s.split(sep).collect();
        if (groups.len() == 8 || groups.len() == 20)
            && groups
                .iter()
                .all(|g| g.len() == 2 && g.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return true;
        }
    }
    false
}

fn isbn10(s: &str) -> bool {
    let chars: Vec<char> = s.chars().filter(|c| *c != '-' && *c != ' ').collect();
    if chars.len() != 10 {
        return false;
    }
    let mut sum = 0;
    for (i, c) in chars.iter().enumerate() {
        let digit = match c {
            'X' if i == 9 => 10,
            c => match c.to_digit(10) {
                Some(d) => d,
                None => return false,
            },
        };
        sum += digit * (10 - i as u32);
    }
    sum % 11 == 0
}

fn isbn13(s: &str) -> bool {
    let digits: Option<Vec<u32>> = s
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_digit(10))
        .collect();
    let Some(digits) = digits else { return false };
    digits.len() == 13
        && digits
            .iter()
            .enumerate()
            .map(|(i, d)| if i % 2 == 0 { *d } else { d * 3 })
            .sum::<u32>()
            % 10
            == 0
}

/// Go `time.ParseDuration` syntax, or the Scala-like `22 ns` form kube-openapi also takes.
fn duration(s: &str) -> bool {
    matches(
        &DURATION,
        r"^(?:[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+|[-+]?0|[0-9]+\s*(?:ns|us|µs|ms|s|m|h|d|w|ns?|nanos?|nanoseconds?|micros?|microseconds?|millis?|milliseconds?|seconds?|sec|minutes?|min|hours?|hr|days?|weeks?|wk))$",
        s,
    )
}

/// RFC 3339 date-time, as kube-openapi's `datetime` accepts it (with or without fractional
/// seconds, `Z` or an offset).
fn date_time(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_formats_are_dropped_as_kube_strips_them() {
        assert_eq!(Format::parse("int32"), None);
        assert_eq!(Format::parse("date-time"), None);
        assert_eq!(Format::parse("byte"), Some(Format::Byte));
    }

    #[test]
    fn formats_accept_and_reject() {
        let cases = [
            (Format::Byte, "aGVsbG8=", "not base64!"),
            (Format::Ipv4, "10.0.0.1", "10.0.0"),
            (Format::Ipv6, "::1", "10.0.0.1"),
            (Format::Cidr, "10.0.0.0/8", "10.0.0.0/33"),
            (Format::Uuid, "123e4567-e89b-12d3-a456-426614174000", "123"),
            (Format::Date, "2024-02-29", "2023-02-29"),
            (Format::DateTime, "2024-01-02T03:04:05Z", "2024-01-02 03:04"),
            (Format::Duration, "1h30m", "1x"),
            (Format::Uri, "https://example.com/x", "example.com"),
            (Format::Email, "a@b.c", "a.b.c"),
            (Format::Hostname, "example.com", "-bad-.com"),
            (Format::Mac, "00:11:22:33:44:55", "00:11:22"),
            (Format::K8sShortName, "my-name", "My-Name"),
            (Format::K8sLongName, "a.b-c.d", "a..b"),
            (Format::HexColor, "#ffcc00", "#ffcc0"),
        ];
        for (format, good, bad) in cases {
            assert!(
                format.accepts(good),
                "{} should accept {good}",
                format.name()
            );
            assert!(
                !format.accepts(bad),
                "{} should reject {bad}",
                format.name()
            );
        }
    }
}
