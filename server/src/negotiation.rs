//! Content negotiation: the `Accept` header read once into media ranges, and one rule for
//! choosing among what the server can answer with.
//!
//! Every place that answers in more than one form asks the same question with its own
//! offers: protobuf or JSON (`crate::edge::protobuf::wants_protobuf`, which also decides the form
//! of error `Status` bodies), a `Table` or the object (`crate::edge::table::requested`), aggregated or
//! legacy discovery (`handlers::discovery::wants_aggregated`), and the OpenAPI document's
//! form (`edge::openapi::serve`, the only one that answers 406 when nothing fits).
//!
//! The rule, kube-apiserver's in its essentials: the client's media ranges are taken by
//! quality, highest first, and in the order written when equal (`q` defaults to 1; a range
//! with `q=0`, or a `q` that is not a number, is refused); the first range that admits one
//! of the offers decides, and among the offers the earliest it admits. Without any media
//! range the client takes the first offer. A range admits an offer when its type matches
//! (exactly, `type/*` or `*/*`) and its conversion parameters (`as`, `g`, `v`) match the
//! offer's [`Conversion`]. Several `Accept` headers count as one, in their order.

use http::{HeaderMap, header};

/// The conversion parameters of a media range: `as` (kind), `g` (group), `v` (version).
const CONVERSION_PARAMS: [&str; 3] = ["as", "g", "v"];

/// One media range of an `Accept` header (`application/json;as=Table;g=meta.k8s.io;v=v1`).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRange {
    /// The type, lower-cased (`application`, or `*`).
    pub type_: String,
    /// The subtype, lower-cased (`json`, or `*`).
    pub subtype: String,
    /// The parameters other than `q`, in order: keys lower-cased, values without quotes.
    pub params: Vec<(String, String)>,
    /// `q`, 1 when absent.
    pub quality: f32,
}

impl MediaRange {
    /// One comma-separated element of an `Accept` header; `None` for one that is no media
    /// range (`json`, an empty element).
    fn parse(text: &str) -> Option<MediaRange> {
        let mut pieces = text.split(';');
        let (type_, subtype) = pieces.next()?.trim().split_once('/')?;
        let (type_, subtype) = (type_.trim(), subtype.trim());
        if type_.is_empty() || subtype.is_empty() {
            return None;
        }
        let mut range = MediaRange {
            type_: type_.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params: Vec::new(),
            quality: 1.0,
        };
        for param in pieces {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim().trim_matches('"');
            if key == "q" {
                range.quality = value.parse().unwrap_or(0.0);
            } else {
                range.params.push((key, value.to_string()));
            }
        }
        Some(range)
    }

    /// The value of parameter `key` (lower-case).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this range names `media_type` (`type/subtype`, lower-case).
    fn names(&self, media_type: &str) -> bool {
        let (type_, subtype) = media_type.split_once('/').unwrap_or((media_type, ""));
        (self.type_ == "*" && self.subtype == "*")
            || (self.type_ == type_ && (self.subtype == "*" || self.subtype == subtype))
    }

    /// Whether this range admits `offer`.
    pub fn admits(&self, offer: &Offer) -> bool {
        self.names(offer.media_type)
            && match offer.conversion {
                Conversion::Any => true,
                Conversion::None => CONVERSION_PARAMS.iter().all(|k| self.param(k).is_none()),
                Conversion::To {
                    group,
                    version,
                    kind,
                } => {
                    self.param("g") == Some(group)
                        && self.param("v") == Some(version)
                        && self.param("as") == Some(kind)
                }
            }
    }
}

/// What a range's conversion parameters must say for it to admit an [`Offer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// The object as it is: the range has none of `as`, `g` and `v`.
    None,
    /// The object converted: `as={kind};g={group};v={version}`, all three.
    To {
        group: &'static str,
        version: &'static str,
        kind: &'static str,
    },
    /// Whatever they say (the question is only the media type).
    Any,
}

/// A form the server can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// `type/subtype`, lower-case.
    pub media_type: &'static str,
    pub conversion: Conversion,
}

impl Offer {
    /// `media_type` for any range that names it, whatever its conversion parameters.
    pub const fn any(media_type: &'static str) -> Offer {
        Offer {
            media_type,
            conversion: Conversion::Any,
        }
    }

    /// `media_type` unconverted: for ranges without `as`, `g` or `v`.
    pub const fn plain(media_type: &'static str) -> Offer {
        Offer {
            media_type,
            conversion: Conversion::None,
        }
    }

    /// `media_type` converted to `group`/`version` `kind`.
    pub const fn converted(
        media_type: &'static str,
        group: &'static str,
        version: &'static str,
        kind: &'static str,
    ) -> Offer {
        Offer {
            media_type,
            conversion: Conversion::To {
                group,
                version,
                kind,
            },
        }
    }
}

/// A request's `Accept` header(s), parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accept {
    /// The acceptable ranges in the client's order of preference: by quality, highest
    /// first, in the written order when equal; refused ones (`q=0`) left out.
    ranges: Vec<MediaRange>,
    /// Whether the client wrote anything (a header of only `q=0` ranges accepts nothing;
    /// no header, or an empty one, accepts the first offer).
    written: bool,
}

impl Accept {
    /// Every `Accept` header of a request, in order, as one list (a value that is not
    /// visible ASCII is ignored).
    pub fn from_headers(headers: &HeaderMap) -> Accept {
        let mut accept = Accept::default();
        for value in headers.get_all(header::ACCEPT) {
            if let Ok(value) = value.to_str() {
                accept.add(value);
            }
        }
        accept.order();
        accept
    }

    /// One `Accept` header value.
    pub fn parse(value: &str) -> Accept {
        let mut accept = Accept::default();
        accept.add(value);
        accept.order();
        accept
    }

    fn add(&mut self, value: &str) {
        for element in value.split(',') {
            self.written |= !element.trim().is_empty();
            self.ranges.extend(MediaRange::parse(element));
        }
    }

    fn order(&mut self) {
        self.ranges.retain(|r| r.quality > 0.0);
        // A stable sort: equal qualities keep the written order.
        self.ranges.sort_by(|a, b| b.quality.total_cmp(&a.quality));
    }

    /// The acceptable ranges, most preferred first.
    pub fn ranges(&self) -> &[MediaRange] {
        &self.ranges
    }

    /// The offer the client takes first: the earliest of `offers` admitted by its most
    /// preferred range that admits any; the first offer when it wrote no range; `None`
    /// when nothing offered is acceptable.
    pub fn choose<'o>(&self, offers: &'o [Offer]) -> Option<&'o Offer> {
        if !self.written {
            return offers.first();
        }
        self.ranges
            .iter()
            .find_map(|range| offers.iter().find(|offer| range.admits(offer)))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const JSON: Offer = Offer::plain("application/json");
    const PROTOBUF: Offer = Offer::plain("application/vnd.kubernetes.protobuf");
    const TABLE: Offer = Offer::converted("application/json", "meta.k8s.io", "v1", "Table");

    fn choose(accept: &str, offers: &'static [Offer]) -> Option<&'static Offer> {
        Accept::parse(accept).choose(offers)
    }

    #[test]
    fn ranges_are_parsed() {
        let accept = Accept::parse(
            "Application/JSON ; AS=Table; g=\"meta.k8s.io\";v=v1;q=0.5, text/*, */*;q=0.1, json,",
        );
        let ranges = accept.ranges();
        assert_eq!(ranges.len(), 3);
        assert_eq!(
            (ranges[0].type_.as_str(), ranges[0].subtype.as_str()),
            ("text", "*")
        );
        assert_eq!(ranges[1].quality, 0.5);
        assert_eq!(ranges[1].subtype, "json");
        assert_eq!(ranges[1].param("as"), Some("Table"));
        assert_eq!(ranges[1].param("g"), Some("meta.k8s.io"));
        assert_eq!(ranges[1].param("q"), None);
        assert_eq!(ranges[2].quality, 0.1);
    }

    #[test]
    fn no_range_takes_the_first_offer() {
        assert_eq!(Accept::default().choose(&[PROTOBUF, JSON]), Some(&PROTOBUF));
        assert_eq!(choose("", &[JSON, PROTOBUF]), Some(&JSON));
        assert_eq!(choose(" , ", &[JSON]), Some(&JSON));
        assert_eq!(
            Accept::from_headers(&HeaderMap::new()).choose(&[JSON]),
            Some(&JSON)
        );
        // Written, but nothing acceptable.
        assert_eq!(choose("application/json;q=0", &[JSON]), None);
        assert_eq!(choose("text/html", &[JSON]), None);
        assert_eq!(choose("json", &[JSON]), None);
    }

    #[test]
    fn quality_then_written_order() {
        let offers = &[JSON, PROTOBUF];
        assert_eq!(
            choose(
                "application/vnd.kubernetes.protobuf, application/json",
                offers
            ),
            Some(&PROTOBUF)
        );
        assert_eq!(
            choose(
                "application/json, application/vnd.kubernetes.protobuf",
                offers
            ),
            Some(&JSON)
        );
        assert_eq!(
            choose(
                "application/json;q=0.5, application/vnd.kubernetes.protobuf",
                offers
            ),
            Some(&PROTOBUF)
        );
        assert_eq!(
            choose(
                "application/vnd.kubernetes.protobuf;q=0.1, application/json",
                offers
            ),
            Some(&JSON)
        );
        // Refused: q=0 in any spelling, or a q that is no number.
        for refused in ["q=0", "q=0.000", " Q = 0 ", "q=none"] {
            let accept =
                format!("application/vnd.kubernetes.protobuf;{refused}, application/json;q=0.1");
            assert_eq!(choose(&accept, offers), Some(&JSON), "{refused}");
        }
    }

    #[test]
    fn wildcards_take_the_earliest_offer_they_name() {
        assert_eq!(choose("*/*", &[JSON, PROTOBUF]), Some(&JSON));
        assert_eq!(choose("*/*", &[PROTOBUF, JSON]), Some(&PROTOBUF));
        assert_eq!(choose("application/*", &[JSON, PROTOBUF]), Some(&JSON));
        assert_eq!(choose("text/*", &[JSON, PROTOBUF]), None);
        // A more specific range later in the header does not beat an earlier wildcard.
        assert_eq!(
            choose(
                "*/*, application/vnd.kubernetes.protobuf",
                &[JSON, PROTOBUF]
            ),
            Some(&JSON)
        );
    }

    #[test]
    fn conversion_parameters() {
        let offers = &[JSON, TABLE];
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(choose(kubectl, offers), Some(&TABLE));
        // A conversion not offered is skipped, so a later plain range decides.
        assert_eq!(
            choose(
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
                offers
            ),
            Some(&JSON)
        );
        // All three parameters must match; any of them rules out the plain offer.
        assert_eq!(choose("application/json;as=Table;v=v1", offers), None);
        assert_eq!(choose("application/json;v=v1", offers), None);
        assert_eq!(
            choose("*/*;as=Table;g=meta.k8s.io;v=v1", offers),
            Some(&TABLE)
        );
        // Other parameters do not matter.
        assert_eq!(
            choose("application/json;stream=watch;pretty=1", offers),
            Some(&JSON)
        );
        // A range with conversion parameters admits an offer that does not care.
        const ANY: &[Offer] = &[Offer::any("application/json")];
        assert_eq!(choose("application/json;as=Unknown", ANY), Some(&ANY[0]));
    }

    #[test]
    fn several_headers_are_one_list() {
        let mut headers = HeaderMap::new();
        headers.append(header::ACCEPT, HeaderValue::from_static("text/html"));
        headers.append(
            header::ACCEPT,
            HeaderValue::from_bytes(b"application/\xff").unwrap(),
        );
        headers.append(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/vnd.kubernetes.protobuf;q=0.9, application/json;q=0.8",
            ),
        );
        let accept = Accept::from_headers(&headers);
        assert_eq!(accept.ranges().len(), 3);
        assert_eq!(accept.choose(&[JSON, PROTOBUF]), Some(&PROTOBUF));
        assert_eq!(accept.choose(&[JSON]), Some(&JSON));
    }
}
