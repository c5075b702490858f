//! What selectors look at in a cached object (name, namespace, labels, selectable fields),
//! packed into two exact-size allocations: every cached object holds one, so its size is a
//! large part of what an object costs (docs/PERFORMANCE.md, "Memory per cached object").
//!
//! ```text
//!   text:  name | namespace | key₀ value₀ | key₁ value₁ | … | field value₀ | field value₁ | …
//!   index: flags | #labels | #fields | end of each string in text … | field id₀ …
//! ```
//!
//! Labels are sorted by key. A field is stored only when its value is not empty (kube's field
//! sets read an absent field as ""), and is named by its position in [`KNOWN_FIELDS`]; a field
//! not in that list keeps its name in `text`, just before its value. The numbers after the
//! flags are `u16`s, or pairs of `u16`s (high, low) when one does not fit (a `text` longer
//! than 64 KiB): lookups are compiled once for each width.

use std::cmp::Ordering;
use std::fmt;

/// Every selectable field besides `metadata.name` and `metadata.namespace` of the built-in
/// resources (`kubecache_core::fields::supported`): a field is stored as its index here.
pub const KNOWN_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
    "type",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "spec.unschedulable",
    "status.replicas",
    "status.successful",
    "spec.signerName",
];

/// The field id of a field not in [`KNOWN_FIELDS`] (its name is stored in `text`).
const UNKNOWN_FIELD: usize = KNOWN_FIELDS.len();

/// `index[0]`: the numbers after it are pairs of `u16`s.
const WIDE: u16 = 1;
/// `index[0]`: the object has a namespace (the string after its name).
const NAMESPACED: u16 = 2;

/// The index of the default attributes (no allocation): no flags, no labels, no fields, and
/// an empty name.
const EMPTY_INDEX: &[u16] = &[0, 0, 0, 0];

/// Namespace, name, labels and selectable fields of one stored version of an object,
/// extracted once. Built with [`ObjectAttrs::new`]; the default is an object with no name,
/// namespace, labels or fields (what a codec that cannot read an object gives it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ObjectAttrs {
    /// Every string, back to back (see the module docs for the order).
    text: Box<str>,
    /// Flags, counts, string ends and field ids; empty for the default ([`EMPTY_INDEX`]).
    index: Box<[u16]>,
    /// Copies of `index[0]` and of where the name and the namespace end (when not WIDE):
    /// selectors and watcher routing read the name and namespace of every object, and this
    /// spares them a dependent load of the index (8 bytes in what was padding-free 32).
    flags: u16,
    name_end: u16,
    namespace_end: u16,
}

/// The numbers after the flags in an index, read as `u16`s or as `(high, low)` pairs.
trait Numbers: Copy {
    fn get(self, i: usize) -> usize;
    fn len(self) -> usize;
}

#[derive(Clone, Copy)]
struct Narrow<'a>(&'a [u16]);

impl Numbers for Narrow<'_> {
    #[inline(always)]
    fn get(self, i: usize) -> usize {
        usize::from(self.0[i])
    }

    fn len(self) -> usize {
        self.0.len()
    }
}

#[derive(Clone, Copy)]
struct Wide<'a>(&'a [u16]);

impl Numbers for Wide<'_> {
    #[inline(always)]
    fn get(self, i: usize) -> usize {
        usize::from(self.0[2 * i]) << 16 | usize::from(self.0[2 * i + 1])
    }

    fn len(self) -> usize {
        self.0.len() / 2
    }
}

/// Where things are in an [`ObjectAttrs`], for one width of numbers.
#[derive(Clone, Copy)]
struct Layout<'a, N> {
    text: &'a str,
    numbers: N,
    namespaced: bool,
}

/// Runs `f` out of the hot path's way.
#[cold]
#[inline(never)]
fn cold<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `$body` with `$layout` bound to `$attrs`' layout in its width.
macro_rules! with_layout {
    ($attrs:expr, |$layout:ident| $body:expr) => {{
        let attrs: &ObjectAttrs = $attrs;
        let index: &[u16] = if attrs.index.is_empty() {
            EMPTY_INDEX
        } else {
            &attrs.index
        };
        let flags = index[0];
        let namespaced = flags & NAMESPACED != 0;
        if flags & WIDE == 0 {
            let $layout = Layout {
                text: &attrs.text,
                numbers: Narrow(&index[1..]),
                namespaced,
            };
            $body
        } else {
            // Objects with more than 64 KiB of labels and fields: kept out of the way.
            cold(|| {
                let $layout = Layout {
                    text: &attrs.text,
                    numbers: Wide(&index[1..]),
                    namespaced,
                };
                $body
            })
        }
    }};
}

impl<'a, N: Numbers> Layout<'a, N> {
    #[inline(always)]
    fn labels(self) -> usize {
        self.numbers.get(0)
    }

    #[inline(always)]
    fn fields(self) -> usize {
        self.numbers.get(1)
    }

    /// Where string number `slot` ends in `text`.
    #[inline(always)]
    fn end(self, slot: usize) -> usize {
        self.numbers.get(2 + slot)
    }

    /// String number `slot`.
    #[inline(always)]
    fn str(self, slot: usize) -> &'a str {
        let start = if slot == 0 { 0 } else { self.end(slot - 1) };
        &self.text[start..self.end(slot)]
    }

    /// The slot of the first label's key.
    #[inline(always)]
    fn first_label(self) -> usize {
        1 + usize::from(self.namespaced)
    }

    fn name(self) -> &'a str {
        self.str(0)
    }

    fn namespace(self) -> Option<&'a str> {
        self.namespaced.then(|| self.str(1))
    }

    /// The value of label `key`.
    #[inline]
    fn label(self, key: &str) -> Option<&'a str> {
        let n = self.labels();
        // Key i is slot first + 2i: it starts where slot first + 2i - 1 ends.
        let before = 2 + self.first_label() - 1;
        let bytes = self.text.as_bytes();
        let key_at = |i: usize| {
            let at = before + 2 * i;
            &bytes[self.numbers.get(at)..self.numbers.get(at + 1)]
        };
        let value_at = |i: usize| {
            let at = before + 2 * i + 1;
            &self.text[self.numbers.get(at)..self.numbers.get(at + 1)]
        };
        // Objects carry a handful of labels: a linear walk that stops at the first greater key
        // (as a B-tree node is searched) beats a binary search's mispredicted branches.
        if n > 16 {
            let (mut low, mut high) = (0, n);
            while low < high {
                let mid = low + (high - low) / 2;
                match key_at(mid).cmp(key.as_bytes()) {
                    Ordering::Less => low = mid + 1,
                    Ordering::Equal => return Some(value_at(mid)),
                    Ordering::Greater => high = mid,
                }
            }
            return None;
        }
        for i in 0..n {
            match key_at(i).cmp(key.as_bytes()) {
                Ordering::Less => {}
                Ordering::Equal => return Some(value_at(i)),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// `(key, value)` of label number `i`.
    fn label_at(self, i: usize) -> (&'a str, &'a str) {
        let key = self.first_label() + 2 * i;
        (self.str(key), self.str(key + 1))
    }

    /// Calls `f` with `(name, slot of the value)` of each stored field until it returns
    /// `Some`.
    #[inline]
    fn find_field<R>(self, mut f: impl FnMut(&'a str, usize) -> Option<R>) -> Option<R> {
        let fields = self.fields();
        let ids = self.numbers.len() - fields;
        let mut slot = self.first_label() + 2 * self.labels();
        for i in 0..fields {
            let name = match KNOWN_FIELDS.get(self.numbers.get(ids + i)) {
                Some(name) => name,
                None => {
                    slot += 1;
                    self.str(slot - 1)
                }
            };
            if let Some(found) = f(name, slot) {
                return Some(found);
            }
            slot += 1;
        }
        None
    }
}

impl ObjectAttrs {
    /// Packs an object's attributes. Labels are sorted by key; of repeated keys the last one
    /// wins (as when inserting into a map). Fields with an empty value are left out: they
    /// read as empty either way.
    pub fn new<'f, K, V, F>(
        namespace: Option<&str>,
        name: &str,
        labels: impl IntoIterator<Item = (K, V)>,
        fields: impl IntoIterator<Item = (&'f str, F)>,
    ) -> ObjectAttrs
    where
        K: AsRef<str>,
        V: AsRef<str>,
        F: AsRef<str>,
    {
        let mut labels: Vec<(K, V)> = labels.into_iter().collect();
        labels.reverse();
        // Stable: of equal keys, the last given comes first and is the one kept.
        labels.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        labels.dedup_by(|later, earlier| later.0.as_ref() == earlier.0.as_ref());
        let fields: Vec<(&str, F, usize)> = fields
            .into_iter()
            .filter(|(_, value)| !value.as_ref().is_empty())
            .map(|(field, value)| {
                let id = KNOWN_FIELDS
                    .iter()
                    .position(|known| *known == field)
                    .unwrap_or(UNKNOWN_FIELD);
                (field, value, id)
            })
            .collect();

        let mut strings: Vec<&str> = Vec::with_capacity(2 + 2 * labels.len() + 2 * fields.len());
        strings.push(name);
        strings.extend(namespace);
        for (key, value) in &labels {
            strings.push(key.as_ref());
            strings.push(value.as_ref());
        }
        for (field, value, id) in &fields {
            if *id == UNKNOWN_FIELD {
                strings.push(field);
            }
            strings.push(value.as_ref());
        }
        let mut text = String::with_capacity(strings.iter().map(|s| s.len()).sum());
        let mut numbers = Vec::with_capacity(2 + strings.len() + fields.len());
        numbers.push(labels.len());
        numbers.push(fields.len());
        for s in strings {
            text.push_str(s);
            numbers.push(text.len());
        }
        numbers.extend(fields.iter().map(|(_, _, id)| *id));

        // The ends are at most the text's length, the counts and ids below it (but for an
        // object with almost no text).
        let wide = numbers.iter().any(|n| *n > usize::from(u16::MAX));
        let mut flags = 0;
        if wide {
            flags |= WIDE;
        }
        if namespace.is_some() {
            flags |= NAMESPACED;
        }
        let mut index = Vec::with_capacity(1 + numbers.len() * (1 + usize::from(wide)));
        index.push(flags);
        for n in numbers {
            if wide {
                // An object's attributes are far below 4 GiB (etcd's limit is 1.5 MiB).
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                index.push((n >> 16) as u16);
                index.push(n as u16);
            } else {
                index.push(n as u16);
            }
        }
        let (name_end, namespace_end) = if wide {
            (0, 0)
        } else {
            (
                index[3],
                if namespace.is_some() {
                    index[4]
                } else {
                    index[3]
                },
            )
        };
        ObjectAttrs {
            text: text.into_boxed_str(),
            index: index.into_boxed_slice(),
            flags,
            name_end,
            namespace_end,
        }
    }

    // name, namespace and field are the selectors' hot path: each reads the narrow form (all
    // but huge objects) directly, and leaves the other width to `with_layout!` out of line.

    #[inline]
    pub fn name(&self) -> &str {
        if self.flags & WIDE == 0 {
            &self.text[..usize::from(self.name_end)]
        } else {
            self.name_out_of_line()
        }
    }

    #[inline(never)]
    fn name_out_of_line(&self) -> &str {
        with_layout!(self, |layout| layout.name())
    }

    #[inline]
    pub fn namespace(&self) -> Option<&str> {
        match self.flags {
            flags if flags & WIDE != 0 => self.namespace_out_of_line(),
            flags if flags & NAMESPACED != 0 => {
                Some(&self.text[usize::from(self.name_end)..usize::from(self.namespace_end)])
            }
            _ => None,
        }
    }

    #[inline(never)]
    fn namespace_out_of_line(&self) -> Option<&str> {
        with_layout!(self, |layout| layout.namespace())
    }

    #[inline]
    pub fn labels(&self) -> Labels<'_> {
        Labels(self)
    }

    /// The value of a selectable field; `None` for an empty or unknown one (both compare as
    /// the empty string).
    #[inline]
    pub fn field(&self, field: &str) -> Option<&str> {
        match field {
            "metadata.name" => Some(self.name()),
            "metadata.namespace" => Some(self.namespace().unwrap_or("")),
            _ => self.selectable_field(field),
        }
    }

    /// A field other than `metadata.name` and `metadata.namespace`.
    fn selectable_field(&self, field: &str) -> Option<&str> {
        let [flags, labels, fields, ref rest @ ..] = *self.index else {
            return self.field_out_of_line(field);
        };
        if flags & WIDE != 0 {
            return self.field_out_of_line(field);
        }
        // The walk of `Layout::find_field`, on the slices themselves.
        let (ends, ids) = rest.split_at(rest.len() - usize::from(fields));
        let text = |slot: usize| &self.text[usize::from(ends[slot - 1])..usize::from(ends[slot])];
        let mut slot = 1 + usize::from(flags & NAMESPACED != 0) + 2 * usize::from(labels);
        for &id in ids {
            let name = match KNOWN_FIELDS.get(usize::from(id)) {
                Some(name) => *name,
                None => {
                    slot += 1;
                    text(slot - 1)
                }
            };
            if name == field {
                return Some(text(slot));
            }
            slot += 1;
        }
        None
    }

    #[inline(never)]
    fn field_out_of_line(&self, field: &str) -> Option<&str> {
        with_layout!(self, |layout| layout
            .find_field(|name, slot| (name == field).then(|| layout.str(slot))))
    }

    /// The stored fields (those with a value) as `(field, value)`, in the order given.
    pub fn fields(&self) -> Vec<(&str, &str)> {
        with_layout!(self, |layout| {
            let mut fields = Vec::with_capacity(layout.fields());
            layout.find_field(|name, slot| {
                fields.push((name, layout.str(slot)));
                None::<()>
            });
            fields
        })
    }

    /// Bytes allocated for the attributes besides the struct itself.
    pub fn heap_size(&self) -> usize {
        self.text.len() + std::mem::size_of_val(&*self.index)
    }
}

impl fmt::Debug for ObjectAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectAttrs")
            .field("namespace", &self.namespace())
            .field("name", &self.name())
            .field("labels", &self.labels())
            .field("fields", &self.fields())
            .finish()
    }
}

/// An object's labels, sorted by key (a view into its [`ObjectAttrs`]).
#[derive(Clone, Copy)]
pub struct Labels<'a>(&'a ObjectAttrs);

impl<'a> Labels<'a> {
    #[inline]
    pub fn get(&self, key: &str) -> Option<&'a str> {
        with_layout!(self.0, |layout| layout.label(key))
    }

    /// `(key, value)` of each label, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        let attrs = self.0;
        (0..self.len()).map(move |i| with_layout!(attrs, |layout| layout.label_at(i)))
    }

    pub fn len(&self) -> usize {
        with_layout!(self.0, |layout| layout.labels())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_labels() -> [(&'static str, &'static str); 0] {
        []
    }

    fn no_fields() -> [(&'static str, &'static str); 0] {
        []
    }

    #[test]
    fn labels_are_sorted_and_looked_up_by_key() {
        let attrs = ObjectAttrs::new(
            None,
            "p",
            [("tier", "web"), ("app", "a"), ("zone", "z"), ("app", "b")],
            no_fields(),
        );
        let labels = attrs.labels();
        assert_eq!(labels.len(), 3, "a repeated key is kept once");
        assert_eq!(labels.get("app"), Some("b"), "the last value of a key wins");
        assert_eq!(labels.get("tier"), Some("web"));
        assert_eq!(labels.get("zone"), Some("z"));
        assert_eq!(labels.get("ap"), None);
        assert_eq!(labels.get("apps"), None);
        assert_eq!(labels.get("a"), None);
        assert_eq!(labels.get("zzz"), None, "past the last key");
        assert_eq!(labels.get(""), None);
        let keys: Vec<&str> = labels.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["app", "tier", "zone"]);
    }

    #[test]
    fn default_is_empty() {
        let attrs = ObjectAttrs::default();
        assert_eq!(attrs.name(), "");
        assert_eq!(attrs.namespace(), None);
        assert!(attrs.labels().is_empty());
        assert_eq!(attrs.labels().get("app"), None);
        assert_eq!(attrs.fields().len(), 0);
        assert_eq!(attrs.field("spec.nodeName"), None);
        assert_eq!(attrs.field("metadata.name"), Some(""));
        assert_eq!(attrs.field("metadata.namespace"), Some(""));
        assert_eq!(attrs.heap_size(), 0);
        assert_eq!(
            ObjectAttrs::new(None, "", no_labels(), no_fields()).name(),
            ""
        );
    }

    #[test]
    fn round_trip_of_everything() {
        let labels = [
            ("app.kubernetes.io/name", "web"),
            ("empty", ""),
            ("ünïcödé", "värdé-✓"),
            ("tier", "front"),
        ];
        let fields = [
            ("spec.nodeName", "node-1".to_string()),
            ("status.nominatedNodeName", String::new()),
            ("custom.field", "x".to_string()),
            ("status.phase", "Running".to_string()),
            ("other.custom", "ÿ".to_string()),
        ];
        let attrs = ObjectAttrs::new(Some("ns-ü"), "pöd", labels, fields);
        assert_eq!(attrs.name(), "pöd");
        assert_eq!(attrs.namespace(), Some("ns-ü"));
        let mut sorted = labels.to_vec();
        sorted.sort();
        assert_eq!(attrs.labels().iter().collect::<Vec<_>>(), sorted);
        for (k, v) in labels {
            assert_eq!(attrs.labels().get(k), Some(v), "label {k}");
        }
        assert_eq!(attrs.labels().get("ünïcöd"), None);
        assert_eq!(
            attrs.fields(),
            [
                ("spec.nodeName", "node-1"),
                ("custom.field", "x"),
                ("status.phase", "Running"),
                ("other.custom", "ÿ"),
            ],
            "empty fields left out, the others in order, unknown names kept"
        );
        assert_eq!(attrs.field("spec.nodeName"), Some("node-1"));
        assert_eq!(attrs.field("custom.field"), Some("x"));
        assert_eq!(attrs.field("other.custom"), Some("ÿ"));
        assert_eq!(attrs.field("status.phase"), Some("Running"));
        assert_eq!(attrs.field("status.nominatedNodeName"), None);
        assert_eq!(attrs.field("status.podIP"), None);
        assert_eq!(attrs.field("no.such"), None);
        assert_eq!(attrs.field("metadata.name"), Some("pöd"));
        assert_eq!(attrs.field("metadata.namespace"), Some("ns-ü"));
        let debug = format!("{attrs:?}");
        assert!(
            debug.contains("värdé-✓") && debug.contains("custom.field"),
            "{debug}"
        );
    }

    #[test]
    fn a_namespace_can_be_empty_or_absent() {
        let empty = ObjectAttrs::new(Some(""), "n", [("a", "1")], no_fields());
        let absent = ObjectAttrs::new(None, "n", [("a", "1")], no_fields());
        assert_eq!(empty.namespace(), Some(""));
        assert_eq!(absent.namespace(), None);
        assert_ne!(empty, absent);
        assert_eq!(empty.labels().get("a"), Some("1"));
        assert_eq!(absent.labels().get("a"), Some("1"));
    }

    #[test]
    fn many_labels_use_a_binary_search() {
        let labels: Vec<(String, String)> = (0..100)
            .map(|i| (format!("key-{i:03}"), format!("value-{i}")))
            .collect();
        let attrs = ObjectAttrs::new(
            Some("ns"),
            "many",
            labels.iter().rev().cloned(),
            [("spec.nodeName", "n")],
        );
        assert_eq!(attrs.labels().len(), 100);
        for (k, v) in &labels {
            assert_eq!(attrs.labels().get(k), Some(v.as_str()), "label {k}");
        }
        for absent in ["key-", "key-1000", "key-0005", "a", "z", ""] {
            assert_eq!(attrs.labels().get(absent), None, "label {absent}");
        }
        assert_eq!(attrs.field("spec.nodeName"), Some("n"));
    }

    #[test]
    fn text_past_u16_offsets_uses_wide_numbers() {
        // 70,000 bytes of labels: ends past u16::MAX are stored as pairs.
        let value = "v".repeat(60);
        let labels: Vec<(String, String)> = (0..1_000)
            .map(|i| (format!("k{i:04}"), value.clone()))
            .collect();
        let long = "x".repeat(70_000);
        let attrs = ObjectAttrs::new(
            Some("ns"),
            "wide",
            labels.clone(),
            [
                ("spec.nodeName", "node-9".to_string()),
                ("status.phase", long.clone()),
                ("custom", "c".to_string()),
            ],
        );
        assert_eq!(attrs.index[0] & WIDE, WIDE);
        assert_eq!(attrs.name(), "wide");
        assert_eq!(attrs.namespace(), Some("ns"));
        assert_eq!(attrs.labels().len(), 1_000);
        for (k, v) in &labels {
            assert_eq!(attrs.labels().get(k), Some(v.as_str()));
        }
        assert_eq!(attrs.labels().get("k1000"), None);
        assert_eq!(attrs.field("spec.nodeName"), Some("node-9"));
        assert_eq!(attrs.field("status.phase"), Some(long.as_str()));
        assert_eq!(attrs.field("custom"), Some("c"));

        let narrow = ObjectAttrs::new(
            Some("ns"),
            "n",
            labels.iter().take(10).cloned(),
            no_fields(),
        );
        assert_eq!(narrow.index[0] & WIDE, 0);
    }

    #[test]
    fn packed_size_is_exact() {
        // name, namespace, 2 labels, 2 known fields: 1 flag word, 2 counts, 2 ids, 8 ends.
        let attrs = ObjectAttrs::new(
            Some("ns"),
            "name",
            [("app", "web"), ("tier", "fe")],
            [("spec.nodeName", "node-1"), ("status.phase", "Running")],
        );
        let text = "name".len() + "ns".len() + "appwebtierfe".len() + "node-1Running".len();
        assert_eq!(attrs.heap_size(), text + 2 * (1 + 2 + 2 + 8));
        assert_eq!(
            std::mem::size_of::<ObjectAttrs>(),
            40,
            "two boxes and three u16s"
        );
    }

    #[test]
    fn every_builtin_selectable_field_is_known() {
        for resource in &crate::json::tests::resources_with_each_field_set() {
            for field in kubecache_core::fields::supported(resource) {
                assert!(
                    field.starts_with("metadata.") || KNOWN_FIELDS.contains(&field),
                    "{field} of {} is stored by name; add it to KNOWN_FIELDS",
                    resource.resource
                );
            }
        }
    }
}
