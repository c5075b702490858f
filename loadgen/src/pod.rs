//! The pods the writers make: ~1 KiB of JSON each, named so any receiver can tell which run,
//! which simulated node and which pod an event is about, and annotated with the write's
//! generation and send time.
//!
//! A write is identified by an [`OpKey`]: the pod and its generation (0 for the create, 1, 2,
//! … for each patch) or [`DELETE_GEN`] for the delete. Receivers read the generation from the
//! annotation of ADDED/MODIFIED events; a DELETED event carries the pod's last state, so it is
//! keyed by the pod alone. Keying by write rather than by resourceVersion keeps latency and
//! correctness independent of which resourceVersion a server puts in a DELETE's response.

use serde::Deserialize;
use std::borrow::Cow;

/// Annotation holding the write's generation.
pub const GEN_ANNOTATION: &str = "kubecache-loadgen/gen";
/// Annotation holding the write's send time, nanoseconds since the run's epoch.
pub const SENT_ANNOTATION: &str = "kubecache-loadgen/sent";
/// Label holding the run id (for cleanup by label selector).
pub const RUN_LABEL: &str = "kubecache-loadgen/run";
/// The generation that stands for the delete.
pub const DELETE_GEN: u32 = u16::MAX as u32;

/// One write: which pod, which generation.
pub type OpKey = u64;

pub fn op_key(pod: u32, generation: u32) -> OpKey {
    ((pod as u64) << 16) | (generation.min(DELETE_GEN) as u64)
}

#[cfg(test)]
pub fn op_pod(key: OpKey) -> u32 {
    (key >> 16) as u32
}

/// Names of one run's pods and nodes.
#[derive(Clone, Debug)]
pub struct Naming {
    /// `lg<run>`: every pod of this run starts with it.
    pub prefix: String,
    pub run: String,
    pub namespace: String,
}

impl Naming {
    pub fn new(run: &str, namespace: &str) -> Naming {
        Naming {
            prefix: format!("lg{run}"),
            run: run.to_string(),
            namespace: namespace.to_string(),
        }
    }

    /// `lg<run>-n<node>-<pod>`.
    pub fn pod_name(&self, node: u32, pod: u32) -> String {
        format!("{}-n{node}-{pod}", self.prefix)
    }

    /// The node and pod of one of this run's pod names; `None` for anything else.
    pub fn parse(&self, name: &str) -> Option<(u32, u32)> {
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix("-n")?;
        let (node, pod) = rest.split_once('-')?;
        Some((node.parse().ok()?, pod.parse().ok()?))
    }
}

/// The simulated node `index`.
pub fn node_name(index: u32) -> String {
    format!("lg-node-{index}")
}

/// The pod's full JSON at generation `generation` (~1 KiB).
pub fn pod_json(naming: &Naming, node: u32, pod: u32, generation: u32, sent_ns: u64) -> String {
    let name = naming.pod_name(node, pod);
    let node = node_name(node);
    // Padding brings the object to ~1 KiB, the size of a small real pod.
    let padding = "x".repeat(420);
    format!(
        concat!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"{ns}","#,
            r#""labels":{{"app":"loadgen","{run_label}":"{run}"}},"#,
            r#""annotations":{{"{gen_a}":"{generation}","{sent_a}":"{sent}"}}}},"#,
            r#""spec":{{"nodeName":"{node}","restartPolicy":"Always","terminationGracePeriodSeconds":0,"#,
            r#""containers":[{{"name":"app","image":"registry.k8s.io/pause:3.10","#,
            r#""command":["/pause"],"ports":[{{"containerPort":8080,"protocol":"TCP"}}],"#,
            r#""env":[{{"name":"PADDING","value":"{padding}"}}],"#,
            r#""resources":{{"requests":{{"cpu":"10m","memory":"16Mi"}},"limits":{{"memory":"32Mi"}}}}}}]}}}}"#
        ),
        name = name,
        ns = naming.namespace,
        run_label = RUN_LABEL,
        run = naming.run,
        gen_a = GEN_ANNOTATION,
        generation = generation,
        sent_a = SENT_ANNOTATION,
        sent = sent_ns,
        node = node,
        padding = padding,
    )
}

/// The merge patch that moves a pod to `generation`.
pub fn patch_json(generation: u32, sent_ns: u64) -> String {
    format!(
        r#"{{"metadata":{{"annotations":{{"{GEN_ANNOTATION}":"{generation}","{SENT_ANNOTATION}":"{sent_ns}"}}}}}}"#
    )
}

/// The few fields of an object the receivers need; everything else is skipped unallocated.
#[derive(Deserialize, Default)]
pub struct ObjectFields<'a> {
    #[serde(borrow, default)]
    pub metadata: Meta<'a>,
    /// Set on the Status object of an ERROR event.
    #[serde(default)]
    pub code: Option<u16>,
}

#[derive(Deserialize, Default)]
pub struct Meta<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "resourceVersion")]
    pub resource_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub annotations: Option<Annotations<'a>>,
}

#[derive(Deserialize, Default)]
pub struct Annotations<'a> {
    #[serde(borrow, default, rename = "kubecache-loadgen/gen")]
    pub generation: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "kubecache-loadgen/sent")]
    pub sent: Option<Cow<'a, str>>,
}

impl Meta<'_> {
    pub fn generation(&self) -> Option<u32> {
        self.annotations.as_ref()?.generation.as_ref()?.parse().ok()
    }

    pub fn sent_ns(&self) -> Option<u64> {
        self.annotations.as_ref()?.sent.as_ref()?.parse().ok()
    }

    pub fn rv(&self) -> Option<u64> {
        self.resource_version.as_ref()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_about_one_kib_and_carry_their_identity() {
        let naming = Naming::new("abc123", "loadgen");
        let json = pod_json(&naming, 7, 42, 3, 123_456);
        assert!((900..1300).contains(&json.len()), "{} bytes", json.len());
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["spec"]["nodeName"], "lg-node-7");
        let fields: ObjectFields = serde_json::from_str(&json).expect("fields");
        let name = fields.metadata.name.as_deref().expect("a name");
        assert_eq!(naming.parse(name), Some((7, 42)));
        assert_eq!(fields.metadata.generation(), Some(3));
        assert_eq!(fields.metadata.sent_ns(), Some(123_456));
        assert_eq!(naming.parse("lgother-n1-2"), None);
        let patch: serde_json::Value = serde_json::from_str(&patch_json(4, 9)).expect("patch");
        assert_eq!(patch["metadata"]["annotations"][GEN_ANNOTATION], "4");
    }

    #[test]
    fn op_keys_round_trip() {
        let key = op_key(123_456, 5);
        assert_eq!(op_pod(key), 123_456);
        assert_ne!(op_key(1, DELETE_GEN), op_key(1, 0));
    }
}
