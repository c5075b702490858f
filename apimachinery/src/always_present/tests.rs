use super::*;
use serde_json::json;

#[test]
fn every_entry_names_a_message_and_field_of_the_descriptor_table() {
    assert!(table::ALWAYS_PRESENT.len() > 50);
    let unresolved = unresolved();
    assert!(unresolved.is_empty(), "{unresolved:#?}");
}

fn filled(api_version: &str, kind: &str, mut object: Value) -> Value {
    fill(api_version, kind, &mut object);
    object
}

#[test]
fn a_service_gets_its_status_and_load_balancer() {
    let service = filled(
        "v1",
        "Service",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}]}}),
    );
    assert_eq!(service["status"], json!({"loadBalancer": {}}));
    // A status that is there gets what it lacks, and keeps what it has.
    let service = filled(
        "v1",
        "Service",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "status": {"conditions": []}}),
    );
    assert_eq!(
        service["status"],
        json!({"conditions": [], "loadBalancer": {}})
    );
}

#[test]
fn a_deployment_gets_status_and_its_templates_creation_timestamp_and_container_resources() {
    let deployment = filled(
        "apps/v1",
        "Deployment",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"},
                                        {"name": "d", "image": "i", "resources": {"limits": {"cpu": "1"}}}],
                         "initContainers": [{"name": "e", "image": "i"}]}}}}),
    );
    assert_eq!(deployment["status"], json!({}));
    let template = &deployment["spec"]["template"];
    assert_eq!(
        template["metadata"],
        json!({"creationTimestamp": null, "labels": {"a": "b"}})
    );
    assert_eq!(template["spec"]["containers"][0]["resources"], json!({}));
    assert_eq!(
        template["spec"]["containers"][1]["resources"],
        json!({"limits": {"cpu": "1"}})
    );
    assert_eq!(
        template["spec"]["initContainers"][0]["resources"],
        json!({})
    );
    // The strategy is a struct too (defaulting fills it in kube before it is written).
    assert_eq!(deployment["spec"]["strategy"], json!({}));
    // ObjectMeta is ObjectMeta at the top too (the server sets a creationTimestamp there).
    assert_eq!(
        deployment["metadata"].get("creationTimestamp"),
        Some(&Value::Null)
    );
}

#[test]
fn inserted_structs_are_filled_inside_and_get_their_required_fields() {
    // DaemonSetStatus {}: Go writes its four non-omitempty counters, as k8s-openapi does.
    let daemon_set = filled(
        "apps/v1",
        "DaemonSet",
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"}}),
    );
    assert_eq!(
        daemon_set["status"],
        json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
            "numberMisscheduled": 0, "numberReady": 0})
    );
    // An empty template gets its metadata's creationTimestamp, an empty job template its
    // own, two levels down.
    assert_eq!(
        daemon_set["spec"]["template"]["metadata"],
        json!({"creationTimestamp": null})
    );
    let cron_job = filled(
        "batch/v1",
        "CronJob",
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": "* * * * *"}}),
    );
    assert_eq!(
        cron_job["spec"]["jobTemplate"]["spec"]["template"]["metadata"],
        json!({"creationTimestamp": null})
    );
}

#[test]
fn keys_stay_in_canonical_order() {
    let service = filled(
        "v1",
        "Service",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}),
    );
    let keys: Vec<&String> = service.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec", "status"]);
    let event = filled(
        "v1",
        "Event",
        json!({"apiVersion": "v1", "kind": "Event", "message": "m", "metadata": {"name": "e"},
            "reason": "r"}),
    );
    let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "apiVersion",
            "kind",
            "eventTime",
            "firstTimestamp",
            "involvedObject",
            "lastTimestamp",
            "message",
            "metadata",
            "reason",
            "source"
        ]
    );
}

#[test]
fn pointer_structs_and_unknown_kinds_are_left_alone() {
    let pod = filled(
        "v1",
        "Pod",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    );
    // PodSpec.securityContext and Container.securityContext are pointers in Go.
    assert!(pod["spec"].get("securityContext").is_none());
    assert!(
        pod["spec"]["containers"][0]
            .get("securityContext")
            .is_none()
    );
    let mut other = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {}});
    let before = other.clone();
    fill("example.com/v1", "Widget", &mut other);
    assert_eq!(other, before);
}

/// In protobuf, Go's generated marshallers write every non-nullable message field, empty or
/// not: `ServiceStatus{}` is `0a 00` (loadBalancer, tag 1, empty), a zero
/// `ObjectMeta.creationTimestamp` is `42 00` (tag 8, empty: a zero Time marshals to nothing).
/// The canonical JSON (`{}`, `null`) transcodes to the same bytes.
#[test]
fn filled_fields_transcode_to_the_empty_messages_go_writes() {
    use crate::protobuf::transcode;
    let by_name = |name: &str| {
        MESSAGES
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let mut out = Vec::new();
    transcode::encode(
        by_name("api.core.v1.ServiceStatus"),
        &json!({"loadBalancer": {}}),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [0x0a, 0x00]);
    out.clear();
    transcode::encode(
        by_name("apimachinery.pkg.apis.meta.v1.ObjectMeta"),
        &json!({"creationTimestamp": null}),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [0x42, 0x00]);
    // And back: the empty struct is there, the zero Time is absent (JSON's null), which the
    // canonical form then writes as null again.
    let meta = transcode::decode(by_name("apimachinery.pkg.apis.meta.v1.ObjectMeta"), &out)
        .unwrap()
        .unwrap();
    assert_eq!(meta, json!({}));
    let status = transcode::decode(by_name("api.core.v1.ServiceStatus"), &[0x0a, 0x00])
        .unwrap()
        .unwrap();
    assert_eq!(status, json!({"loadBalancer": {}}));
    // A null anywhere else (never in what is served) is still left out.
    out.clear();
    transcode::encode(
        by_name("api.core.v1.ServiceSpec"),
        &json!({"clusterIP": null}),
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty());
}

/// [`strip`] takes out exactly what [`fill`] puts back: for every kind's sample in its
/// canonical form, strip then fill gives the same bytes, and strip leaves no empty filler.
#[test]
fn strip_then_fill_is_the_identity_on_canonical_objects() {
    use crate::registry::Registry;
    let samples: Vec<Value> =
        serde_json::from_str(include_str!("../protobuf/samples.json")).unwrap();
    let mut stripped_some = 0;
    for r in Registry::builtin()
        .snapshot()
        .iter()
        .filter(|r| !r.create_only)
    {
        let Some(sample) = samples
            .iter()
            .find(|s| s["apiVersion"] == r.api_version().as_str() && s["kind"] == r.kind)
        else {
            continue;
        };
        let mut sample = sample.clone();
        sample.as_object_mut().unwrap().remove("status");
        let (canonical, _) = crate::typed::normalize(r, sample).unwrap();
        let (api_version, kind) = (r.api_version(), &r.kind);
        let mut object = canonical.clone();
        strip(&api_version, kind, &mut object);
        stripped_some += usize::from(object != canonical);
        let text = object.to_string();
        assert!(
            !text.contains("\"resources\":{}") && !text.contains("\"creationTimestamp\":null"),
            "{kind}: {text}"
        );
        fill(&api_version, kind, &mut object);
        assert_eq!(object.to_string(), canonical.to_string(), "{kind}");
    }
    assert!(stripped_some > 20, "{stripped_some}");
}
