use crate::registry::Registry;
use serde_json::{Value, json};

use super::transcode::{format_duration, parse_duration};
use super::*;
use crate::typed;

/// One realistic object of every built-in kind (times, quantities, int-or-strings, maps,
/// bytes, embedded JSON, nested lists).
pub fn samples() -> Vec<Value> {
    serde_json::from_str(include_str!("samples.json")).expect("samples.json is JSON")
}

/// What the server stores from a decoded body: its typed form. (The only thing it adds
/// back is the `apiVersion`/`kind` k8s-openapi writes into embedded objects such as a
/// StatefulSet's volumeClaimTemplates, which protobuf does not carry.)
fn stored_form(object: Value) -> Value {
    let registry = Registry::builtin();
    let version = object["apiVersion"].as_str().unwrap();
    let (group, version) = version.split_once('/').unwrap_or(("", version));
    let resource = registry
        .by_kind(group, version, object["kind"].as_str().unwrap())
        .expect("a registered kind");
    let (typed, unknown) = typed::normalize(&resource, object).unwrap();
    assert!(unknown.is_empty(), "{unknown:?}");
    typed
}

#[test]
fn descriptors_are_generated() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = std::process::Command::new("python3")
        .current_dir(root)
        .args([
            "scripts/gen-protobuf-descriptors.py",
            "--check",
            "apimachinery/src/protobuf/descriptors.rs",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_registered_resource_and_its_list_has_a_message() {
    for r in Registry::builtin().snapshot().iter() {
        let version = r.api_version();
        assert!(
            message_for(&version, &r.kind).is_some(),
            "{version} {}",
            r.kind
        );
        // The reviews are created and answered, never listed.
        assert!(
            r.create_only || message_for(&version, &r.list_kind()).is_some(),
            "{version} {}",
            r.list_kind()
        );
    }
}

#[test]
fn samples_cover_every_registered_resource_in_canonical_form() {
    let samples = samples();
    for r in Registry::builtin()
        .snapshot()
        .iter()
        .filter(|r| !r.create_only)
    {
        let sample = samples
            .iter()
            .find(|s| s["apiVersion"] == r.api_version().as_str() && s["kind"] == r.kind)
            .unwrap_or_else(|| panic!("no sample of {} {}", r.api_version(), &r.kind));
        // Samples are what kubecache stores: typed, no unknown fields.
        let (typed, unknown) = typed::normalize(r, sample.clone()).unwrap();
        assert!(unknown.is_empty(), "{}: unknown {unknown:?}", r.kind);
        // (but for the empty structs kube always writes, which the typed form adds)
        let mut expected = sample.clone();
        typed::fill_always_present(r, &mut expected);
        assert_eq!(typed, expected, "{} is not in its typed form", r.kind);
    }
}

#[test]
fn every_sample_round_trips_json_protobuf_json() {
    for sample in samples() {
        let bytes = encode_envelope(&sample).unwrap();
        assert!(bytes.starts_with(MAGIC));
        let envelope = open_envelope(&bytes).unwrap();
        assert_eq!(envelope.kind, sample["kind"].as_str().unwrap());
        assert_eq!(envelope.api_version, sample["apiVersion"].as_str().unwrap());
        let decoded = decode_envelope(&bytes, None).unwrap();
        assert_eq!(
            stored_form(decoded),
            stored_form(sample.clone()),
            "{}",
            sample["kind"]
        );
    }
}

#[test]
fn encoding_is_what_go_writes() {
    // ConfigMap{metadata: {name: "a"}, data: {"k": "v"}} in runtime.Unknown, byte for byte.
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
    let raw: &[u8] = &[
        0x0a, 0x03, 0x0a, 0x01, b'a', // metadata (1) { name (1) }
        0x12, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v', // data (2) entry { key, value }
    ];
    let mut expected = b"k8s\0".to_vec();
    expected.extend_from_slice(&[0x0a, 0x0f, 0x0a, 0x02, b'v', b'1', 0x12, 0x09]);
    expected.extend_from_slice(b"ConfigMap");
    expected.extend_from_slice(&[0x12, raw.len() as u8]);
    expected.extend_from_slice(raw);
    expected.extend_from_slice(&[0x1a, 0x00, 0x22, 0x00]);
    assert_eq!(encode_envelope(&object).unwrap(), expected);
}

#[test]
fn special_json_forms() {
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 81, "targetPort": "web"}]}});
    let bytes = encode_envelope(&service).unwrap();
    assert_eq!(decode_envelope(&bytes, None).unwrap(), service);

    // A number where JSON allows one for a Quantity comes back as its string.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": 2}}}]}});
    let decoded = decode_envelope(&encode_envelope(&pod).unwrap(), None).unwrap();
    assert_eq!(
        decoded["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "2"
    );

    // MicroTime keeps microseconds, Time keeps seconds.
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l", "creationTimestamp": "2024-01-02T03:04:05Z"},
        "spec": {"renewTime": "2024-01-02T03:04:05.678901Z"}});
    let decoded = decode_envelope(&encode_envelope(&lease).unwrap(), None).unwrap();
    assert_eq!(decoded, lease);

    assert_eq!(parse_duration("1h2m3.5s").unwrap(), 3_723_500_000_000);
    assert_eq!(format_duration(3_723_500_000_000), "1h2m3.5s");
    assert_eq!(format_duration(1_500_000), "1.5ms");
    assert_eq!(format_duration(0), "0s");
    assert_eq!(format_duration(-90_000_000_000), "-1m30s");
    assert!(parse_duration("3 parsecs").is_err());
}

#[test]
fn go_zero_values_decode_as_go_prints_them() {
    // What a Go client sends for a fresh Deployment: every non-pointer field, empty or not.
    let mut meta = Vec::new();
    wire::put_len(&mut meta, 1, b"web"); // name
    wire::put_len(&mut meta, 2, b""); // generateName
    wire::put_len(&mut meta, 3, b"default"); // namespace
    wire::put_len(&mut meta, 5, b""); // uid
    wire::put_key(&mut meta, 7, wire::VARINT); // generation 0
    wire::put_varint(&mut meta, 0);
    wire::put_len(&mut meta, 8, b""); // creationTimestamp: the zero Time
    let mut spec = Vec::new();
    wire::put_key(&mut spec, 1, wire::VARINT); // replicas: 0 (a pointer: a value)
    wire::put_varint(&mut spec, 0);
    wire::put_len(&mut spec, 4, b""); // strategy {}
    let mut raw = Vec::new();
    wire::put_len(&mut raw, 1, &meta);
    wire::put_len(&mut raw, 2, &spec);
    let mut body = MAGIC.to_vec();
    write_unknown(&mut body, "apps/v1", "Deployment", |out| {
        out.extend_from_slice(&raw);
        Ok(())
    })
    .unwrap();
    let decoded = decode_envelope(&body, None).unwrap();
    assert_eq!(
        decoded,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 0, "strategy": {}}})
    );
}

#[test]
fn lists_round_trip() {
    let samples = samples();
    let pods: Vec<Value> = samples
        .iter()
        .filter(|s| s["kind"] == "Pod")
        .cloned()
        .collect();
    let mut items = pods.clone();
    for item in &mut items {
        // Items on the wire carry no apiVersion/kind (the list's type names them).
        item.as_object_mut().unwrap().remove("apiVersion");
        item.as_object_mut().unwrap().remove("kind");
    }
    let list = json!({"apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": "42", "continue": "abc", "remainingItemCount": 0},
        "items": pods.clone()});
    let bytes = encode_envelope(&list).unwrap();
    let decoded = decode_envelope(&bytes, None).unwrap();
    assert_eq!(decoded["metadata"], list["metadata"]);
    assert_eq!(decoded["items"], Value::Array(items));

    // Assembled from items encoded one by one (as the read path caches them): the same bytes.
    let encoded_items: Vec<bytes::Bytes> = pods
        .iter()
        .map(|p| bytes::Bytes::from(encode_envelope(p).unwrap()))
        .collect();
    let assembled = list_envelope("v1", "PodList", &list["metadata"], &encoded_items).unwrap();
    assert_eq!(assembled, bytes);
}

#[test]
fn watch_frames_round_trip() {
    let sample = samples()
        .into_iter()
        .find(|s| s["kind"] == "Secret")
        .unwrap();
    let mut stream = watch_frame("ADDED", &sample).unwrap();
    let bookmark = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"resourceVersion": "12", "annotations": {"k8s.io/initial-events-end": "true"}}});
    stream.extend(watch_frame("BOOKMARK", &bookmark).unwrap());
    let error = kubecache_core::status::ApiError::expired("too old resource version: 1");
    stream.extend(watch_frame("ERROR", &error.to_status()).unwrap());

    // Each frame: a big-endian length, then a WatchEvent without envelope.
    let len = u32::from_be_bytes(stream[..4].try_into().unwrap()) as usize;
    assert!(!stream[4..].starts_with(MAGIC) && stream.len() > 4 + len);

    let (t, object, rest) = read_watch_frame(&stream).unwrap();
    assert_eq!((t.as_str(), &object), ("ADDED", &sample));
    let (t, object, rest) = read_watch_frame(rest).unwrap();
    assert_eq!((t.as_str(), &object), ("BOOKMARK", &bookmark));
    let (t, object, rest) = read_watch_frame(rest).unwrap();
    assert_eq!(t, "ERROR");
    assert_eq!(object, error.to_status());
    assert!(rest.is_empty());
}

#[test]
fn status_round_trips_with_details_and_causes() {
    let err = kubecache_core::status::ApiError::invalid(
        "apps",
        "Deployment",
        "web",
        vec![kubecache_core::status::Cause::new(
            "FieldValueRequired",
            "spec.selector",
            "Required value",
        )],
    );
    let status = err.to_status();
    let decoded = decode_envelope(&encode_envelope(&status).unwrap(), None).unwrap();
    assert_eq!(decoded, status);
}

/// A Status in a protobuf watch ERROR event is what Go's generated marshaller writes: by tag,
/// every non-pointer field present even when empty (ListMeta's three strings, the details'
/// group, retryAfterSeconds and uid, each cause's three strings).
#[test]
fn a_status_in_a_watch_frame_has_gos_zero_fields() {
    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 128);
        let mut out = vec![(tag << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let mut err = kubecache_core::status::ApiError::timeout("Timeout: slow");
    err.causes = vec![kubecache_core::status::Cause::new("Slow", "", "m")];
    let frame = watch_frame("ERROR", &err.status().to_value()).unwrap();

    let mut cause = field(1, b"Slow");
    cause.extend(field(2, b"m"));
    cause.extend(field(3, b""));
    let mut details = field(1, b"");
    details.extend(field(2, b""));
    details.extend(field(3, b""));
    details.extend(field(4, &cause));
    details.extend([5 << 3, 0]);
    details.extend(field(6, b""));
    let mut status = field(1, &[field(1, b""), field(2, b""), field(3, b"")].concat());
    status.extend(field(2, b"Failure"));
    status.extend(field(3, b"Timeout: slow"));
    status.extend(field(4, b"Timeout"));
    status.extend(field(5, &details));
    status.extend([6 << 3, 0xf8, 0x03]); // 504
    let mut envelope = MAGIC.to_vec();
    envelope.extend(field(1, &[field(1, b"v1"), field(2, b"Status")].concat()));
    envelope.extend(field(2, &status));
    envelope.extend(field(3, b""));
    envelope.extend(field(4, b""));
    let mut event = field(1, b"ERROR");
    event.extend(field(2, &field(1, &envelope)));
    let mut expected = (event.len() as u32).to_be_bytes().to_vec();
    expected.extend(event);
    assert_eq!(frame, expected);
    // And it reads back as the JSON Status (the zeros are what JSON leaves out).
    let (_, object, _) = read_watch_frame(&frame).unwrap();
    assert_eq!(object, err.to_status());
}

#[test]
fn malformed_bytes_are_errors_not_panics() {
    let sample = samples().into_iter().find(|s| s["kind"] == "Pod").unwrap();
    let good = encode_envelope(&sample).unwrap();
    assert!(decode_envelope(b"{\"kind\":\"Pod\"}", None).is_err());
    assert!(decode_envelope(b"k8s\0", None).is_err());
    // Every truncation fails cleanly or decodes a prefix; none panics.
    for cut in 4..good.len() {
        let _ = decode_envelope(&good[..cut], None);
    }
    // Flipped bytes neither panic.
    for i in 4..good.len().min(400) {
        let mut bad = good.clone();
        bad[i] ^= 0xff;
        let _ = decode_envelope(&bad, None);
    }
    // A string where the message expects a nested message.
    let mut bad = MAGIC.to_vec();
    write_unknown(&mut bad, "v1", "Pod", |out| {
        wire::put_key(out, 1, wire::VARINT);
        wire::put_varint(out, 7);
        Ok(())
    })
    .unwrap();
    let err = decode_envelope(&bad, None).unwrap_err();
    assert!(err.to_string().contains("wire type"), "{err}");
    // An unknown kind.
    let mut bad = MAGIC.to_vec();
    write_unknown(&mut bad, "v1", "Gizmo", |_| Ok(())).unwrap();
    assert!(decode_envelope(&bad, None).is_err());
    // JSON that does not fit the message.
    let err = encode_envelope(
        &json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": 5}]}}),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "spec.containers.name: expected a string");
}

/// The table against prost's own messages from k8s-pb: what the transcoder writes, prost
/// reads field for field, and what prost writes the transcoder reads back to the same JSON.
mod against_prost {
    use k8s_pb::api;
    use prost::Message as _;

    use super::*;

    fn check<T: prost::Message + Default>(kind: &str) {
        for sample in samples().into_iter().filter(|s| s["kind"] == kind) {
            let envelope_bytes = encode_envelope(&sample).unwrap();
            let envelope = open_envelope(&envelope_bytes).unwrap();
            let typed = T::decode(envelope.raw).unwrap_or_else(|e| panic!("{kind}: {e}"));
            let again = typed.encode_to_vec();
            let mut body = MAGIC.to_vec();
            write_unknown(&mut body, &envelope.api_version, &envelope.kind, |out| {
                out.extend_from_slice(&again);
                Ok(())
            })
            .unwrap();
            let decoded = decode_envelope(&body, None).unwrap();
            assert_eq!(stored_form(decoded), stored_form(sample.clone()), "{kind}");
        }
    }

    #[test]
    fn every_kind_matches_k8s_pb() {
        use api::core::v1 as core;
        use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
        check::<core::ConfigMap>("ConfigMap");
        check::<core::Endpoints>("Endpoints");
        check::<core::Namespace>("Namespace");
        check::<core::Node>("Node");
        check::<core::PersistentVolumeClaim>("PersistentVolumeClaim");
        check::<core::PersistentVolume>("PersistentVolume");
        check::<core::Pod>("Pod");
        check::<core::PodTemplate>("PodTemplate");
        check::<core::ReplicationController>("ReplicationController");
        check::<core::Secret>("Secret");
        check::<core::ServiceAccount>("ServiceAccount");
        check::<core::Service>("Service");
        check::<apiextensions::CustomResourceDefinition>("CustomResourceDefinition");
        check::<api::apps::v1::ControllerRevision>("ControllerRevision");
        check::<api::apps::v1::DaemonSet>("DaemonSet");
        check::<api::apps::v1::Deployment>("Deployment");
        check::<api::apps::v1::ReplicaSet>("ReplicaSet");
        check::<api::apps::v1::StatefulSet>("StatefulSet");
        check::<api::batch::v1::CronJob>("CronJob");
        check::<api::batch::v1::Job>("Job");
        check::<api::coordination::v1::Lease>("Lease");
        check::<api::discovery::v1::EndpointSlice>("EndpointSlice");
        check::<api::networking::v1::Ingress>("Ingress");
        check::<api::networking::v1::NetworkPolicy>("NetworkPolicy");
        check::<api::policy::v1::PodDisruptionBudget>("PodDisruptionBudget");
        check::<api::rbac::v1::ClusterRoleBinding>("ClusterRoleBinding");
        check::<api::rbac::v1::ClusterRole>("ClusterRole");
        check::<api::rbac::v1::RoleBinding>("RoleBinding");
        check::<api::rbac::v1::Role>("Role");
        check::<api::scheduling::v1::PriorityClass>("PriorityClass");
        check::<api::storage::v1::StorageClass>("StorageClass");
        // The two Events share a kind name: check each by its apiVersion.
        for sample in samples().into_iter().filter(|s| s["kind"] == "Event") {
            let bytes = encode_envelope(&sample).unwrap();
            let raw = open_envelope(&bytes).unwrap().raw.to_vec();
            let again = if sample["apiVersion"] == "v1" {
                core::Event::decode(raw.as_slice()).unwrap().encode_to_vec()
            } else {
                api::events::v1::Event::decode(raw.as_slice())
                    .unwrap()
                    .encode_to_vec()
            };
            let mut body = MAGIC.to_vec();
            let version = sample["apiVersion"].as_str().unwrap();
            write_unknown(&mut body, version, "Event", |out| {
                out.extend_from_slice(&again);
                Ok(())
            })
            .unwrap();
            assert_eq!(
                stored_form(decode_envelope(&body, None).unwrap()),
                stored_form(sample.clone())
            );
        }
    }
}

/// The review APIs' bodies as kubectl's typed clients write them (prost, as Go would),
/// decoded by the generic transcoder; their answers encode and decode back.
#[test]
fn access_reviews_decode_and_answer() {
    use k8s_pb::api::authorization::v1 as authz;
    use prost::Message as _;

    let review = authz::SubjectAccessReview {
        spec: Some(authz::SubjectAccessReviewSpec {
            resource_attributes: Some(authz::ResourceAttributes {
                namespace: Some("default".into()),
                verb: Some("list".into()),
                resource: Some("pods".into()),
                ..Default::default()
            }),
            user: Some("alice".into()),
            groups: vec!["dev".into(), "ops".into()],
            extra: [(
                "scopes".to_string(),
                authz::ExtraValue {
                    items: vec!["a".into()],
                },
            )]
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut body = MAGIC.to_vec();
    write_unknown(
        &mut body,
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        |out| {
            out.extend_from_slice(&review.encode_to_vec());
            Ok(())
        },
    )
    .unwrap();
    let json = decode_envelope(&body, None).unwrap();
    assert_eq!(json["kind"], "SubjectAccessReview");
    assert_eq!(
        json["spec"]["resourceAttributes"],
        json!({"namespace": "default", "verb": "list", "resource": "pods"})
    );
    assert_eq!(json["spec"]["user"], "alice");
    assert_eq!(json["spec"]["groups"], json!(["dev", "ops"]));
    assert_eq!(json["spec"]["extra"], json!({"scopes": ["a"]}));

    // The answer: `allowed: false` is written (Go always writes it), `denied: false` not.
    let mut answer = json.clone();
    answer["metadata"] = json!({"creationTimestamp": null});
    answer["status"] = json!({"allowed": false});
    let encoded = encode_envelope(&answer).unwrap();
    let raw = open_envelope(&encoded).unwrap().raw.to_vec();
    let typed = authz::SubjectAccessReview::decode(raw.as_slice()).unwrap();
    let status = typed.status.unwrap();
    assert_eq!((status.allowed, status.denied), (Some(false), None));
    let back = decode_envelope(&encoded, None).unwrap();
    assert_eq!(back["status"], json!({"allowed": false}));

    // whoami's answer: the user's extra in authentication's ExtraValue.
    let answer = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {"username": "bob", "groups": ["dev"], "extra": {"k": ["v"]}}},
    });
    let encoded = encode_envelope(&answer).unwrap();
    let raw = open_envelope(&encoded).unwrap().raw.to_vec();
    let typed = k8s_pb::api::authentication::v1::SelfSubjectReview::decode(raw.as_slice()).unwrap();
    let user = typed.status.unwrap().user_info.unwrap();
    assert_eq!(user.username.as_deref(), Some("bob"));
    assert_eq!(user.extra["k"].items, vec!["v".to_string()]);
    assert_eq!(
        decode_envelope(&encoded, None).unwrap()["status"],
        answer["status"]
    );

    // Garbage is an error, not a panic.
    assert!(decode_envelope(b"{}", None).is_err());
    let truncated = [MAGIC, &[0x12, 0x40, 1]].concat();
    assert!(
        decode_envelope(
            &truncated,
            Some(("authorization.k8s.io/v1", "SubjectAccessReview"))
        )
        .is_err()
    );
}
