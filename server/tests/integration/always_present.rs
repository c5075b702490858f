//! The empty structs kube-apiserver always writes (Go never omits a non-pointer struct field):
//! served on create, get, list and watch, in JSON and in protobuf, for every built-in kind;
//! the issue's examples exactly; and writes that change nothing still write nothing.

use crate::support;

use std::time::Duration;

use std::sync::Arc;

use kubecache_apimachinery::always_present::{self, Empty};
use kubecache_apimachinery::protobuf::descriptors::MESSAGES;
use kubecache_apimachinery::protobuf::table::{Label, Special, Type};
use kubecache_apimachinery::protobuf::{self, MEDIA_TYPE};
use kubecache_apimachinery::registry::Registry;
use kubecache_core::registry::ResourceInfo;
use reqwest::header::ACCEPT;
use serde_json::{Value, json};
use support::server::{STRATEGIC_MERGE_PATCH, TestServer};

/// Where `value` (the JSON of descriptor message `msg`) lacks an always-present field, at any
/// depth: inside structs, list items and map values. `nulls`: whether fields whose empty form
/// is `null` are expected (a protobuf body decodes a zero Time as absent). Counts the fields
/// checked.
fn missing(
    msg: u16,
    value: &Value,
    path: &str,
    nulls: bool,
    out: &mut Vec<String>,
    checked: &mut usize,
) {
    let message = &MESSAGES[usize::from(msg)];
    let Some(map) = value.as_object() else {
        return;
    };
    if message.special != Special::None {
        return;
    }
    for (json, empty) in always_present::fields_of(msg) {
        if empty == Empty::Null && !nulls {
            continue;
        }
        *checked += 1;
        match map.get(json) {
            None => out.push(format!("{path}.{json}")),
            Some(Value::Null) if empty != Empty::Null => out.push(format!("{path}.{json}: null")),
            _ => {}
        }
    }
    for field in message.fields {
        let Type::Message(inner) = field.ty else {
            continue;
        };
        let at = format!("{path}.{}", field.json);
        match field.label {
            Label::Inline => missing(inner, value, path, nulls, out, checked),
            Label::Repeated => {
                for (i, item) in map
                    .get(field.json)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    missing(inner, item, &format!("{at}[{i}]"), nulls, out, checked);
                }
            }
            Label::Map => {
                for (key, item) in map
                    .get(field.json)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    missing(inner, item, &format!("{at}[{key}]"), nulls, out, checked);
                }
            }
            _ => {
                if let Some(child) = map.get(field.json) {
                    missing(inner, child, &at, nulls, out, checked);
                }
            }
        }
    }
}

/// Asserts `object` has every always-present field; returns how many were checked.
#[track_caller]
fn assert_complete(object: &Value, nulls: bool, what: &str) -> usize {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    let root = always_present::root(api_version, kind)
        .unwrap_or_else(|| panic!("{what}: no message for {api_version} {kind}"));
    let (mut out, mut checked) = (Vec::new(), 0);
    missing(root, object, "", nulls, &mut out, &mut checked);
    assert!(out.is_empty(), "{what}: {kind} lacks {out:?}\n{object:#}");
    checked
}

fn collection(resource: &ResourceInfo, namespace: &str) -> String {
    let prefix = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    if resource.namespaced {
        format!("{prefix}/namespaces/{namespace}/{}", resource.resource)
    } else {
        format!("{prefix}/{}", resource.resource)
    }
}

async fn get_protobuf(server: &TestServer, path: &str) -> Vec<u8> {
    let response = server
        .client
        .get(server.url(path))
        .header(ACCEPT, MEDIA_TYPE)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response.bytes().await.expect("body").to_vec()
}

/// A sample of every built-in kind, without what the server assigns, ready to create in
/// namespace `ns` under a new name.
fn creatable_samples(ns: &str) -> Vec<(Arc<ResourceInfo>, Value)> {
    let samples: Vec<Value> = crate::support::creatable_samples();
    let registry = Registry::builtin().snapshot();
    let mut out = Vec::new();
    for resource in registry.iter().filter(|r| r.is_stored()) {
        let sample = samples
            .iter()
            .find(|s| {
                s["apiVersion"] == resource.api_version().as_str() && s["kind"] == resource.kind
            })
            .unwrap_or_else(|| panic!("no sample of {}", resource.kind));
        let mut object = sample.clone();
        let meta = object["metadata"].as_object_mut().unwrap();
        for assigned in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "finalizers",
        ] {
            meta.remove(assigned);
        }
        if resource.namespaced {
            meta.insert("namespace".into(), json!(ns));
        }
        if resource.kind == "CustomResourceDefinition" {
            let group = format!("ap.{}", object["spec"]["group"].as_str().unwrap());
            let plural = object["spec"]["names"]["plural"]
                .as_str()
                .unwrap()
                .to_string();
            object["metadata"]["name"] = json!(format!("{plural}.{group}"));
            object["spec"]["group"] = json!(group);
        } else if resource.kind == "APIService" {
            // Named `<version>.<group>` as well.
            let group = format!("ap.{}", object["spec"]["group"].as_str().unwrap());
            let version = object["spec"]["version"].as_str().unwrap().to_string();
            object["metadata"]["name"] = json!(format!("{version}.{group}"));
            object["spec"]["group"] = json!(group);
        } else {
            let name = object["metadata"]["name"].as_str().unwrap().to_string();
            object["metadata"]["name"] =
                json!(crate::support::prefixed_name(&resource.kind, &name, "ap"));
        }
        if resource.kind == "Service" {
            let spec = object["spec"].as_object_mut().unwrap();
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        out.push((resource.info().clone(), object));
    }
    out
}

on_both_stores!(
    every_kind_has_its_always_present_fields_embedded,
    every_kind_has_its_always_present_fields_etcd,
    every_kind_has_its_always_present_fields
);

/// For every built-in kind the registry stores: its sample, created, comes back with every
/// always-present field reachable from it — in the create's answer, GET, LIST, a watch's
/// ADDED event, and GET in protobuf (whose bytes are the transcoding of that JSON, with the
/// empty messages Go writes).
async fn every_kind_has_its_always_present_fields(server: &TestServer) {
    server.create_namespace("ap").await;
    let mut checked = 0;
    for (resource, object) in creatable_samples("ap") {
        let kind = &resource.kind;
        let collection = collection(&resource, "ap");
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let created = server.post(&collection, &object).await;
        let created = created.expect(201);
        checked += assert_complete(created, true, &format!("create {kind}"));

        let path = format!("{collection}/{name}");
        let got = server.get(&path).await.expect(200).clone();
        checked += assert_complete(&got, true, &format!("get {kind}"));

        let list = server.get(&collection).await.expect(200).clone();
        let item = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{kind} {name} not listed"));
        let mut item = item.clone();
        item["apiVersion"] = json!(resource.api_version());
        item["kind"] = json!(kind);
        checked += assert_complete(&item, true, &format!("list {kind}"));

        let mut watch = server
            .watch(
                &collection,
                &[
                    ("watch", "true"),
                    ("resourceVersion", "0"),
                    ("fieldSelector", &format!("metadata.name={name}")),
                ],
            )
            .await;
        let event = watch.next_event().await;
        assert_eq!(event["type"], "ADDED", "{kind}: {event}");
        checked += assert_complete(&event["object"], true, &format!("watch {kind}"));

        let bytes = get_protobuf(server, &path).await;
        let decoded = protobuf::decode_envelope(&bytes, None).expect("a protobuf object");
        checked += assert_complete(&decoded, false, &format!("protobuf get {kind}"));
        // The bytes are those of the JSON GET: the nulls are empty messages there too.
        let latest = server.get(&path).await.expect(200).clone();
        if latest["metadata"]["resourceVersion"] == decoded["metadata"]["resourceVersion"] {
            assert_eq!(
                bytes,
                protobuf::encode_envelope(&latest).unwrap(),
                "{kind}: protobuf differs from the JSON"
            );
        }
    }
    assert!(checked > 500, "only {checked} fields checked");
}

/// The namespaces the server creates itself are written as kube writes them too.
#[tokio::test]
async fn the_initial_namespaces_have_their_always_present_fields() {
    let server = TestServer::start().await;
    for name in ["default", "kube-system"] {
        let namespace = server
            .get(&format!("/api/v1/namespaces/{name}"))
            .await
            .expect(200)
            .clone();
        assert_complete(&namespace, true, name);
        assert!(namespace["spec"].is_object(), "{namespace:#}");
    }
}

on_both_stores!(
    the_issues_examples_are_served_as_kube_does_embedded,
    the_issues_examples_are_served_as_kube_does_etcd,
    the_issues_examples_are_served_as_kube_does
);

/// A created Service has `"status":{"loadBalancer":{}}`; a Deployment `"status":{}`, its pod
/// template's metadata `"creationTimestamp":null` and every container `"resources":{}` —
/// in JSON, and in protobuf as empty messages.
async fn the_issues_examples_are_served_as_kube_does(server: &TestServer) {
    server.create_namespace("ex").await;
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "ex"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let created = server
        .post("/api/v1/namespaces/ex/services", &service)
        .await
        .expect(201)
        .clone();
    assert_eq!(
        created["status"],
        json!({"loadBalancer": {}}),
        "{created:#}"
    );
    let got = server
        .get("/api/v1/namespaces/ex/services/web")
        .await
        .expect(200)
        .clone();
    assert_eq!(got["status"], json!({"loadBalancer": {}}));
    let bytes = get_protobuf(server, "/api/v1/namespaces/ex/services/web").await;
    let decoded = protobuf::decode_envelope(&bytes, None).unwrap();
    assert_eq!(decoded["status"], json!({"loadBalancer": {}}));

    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ex"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"},
                                        {"name": "side", "image": "busybox"}]}}}});
    let mut watch = server
        .watch(
            "/apis/apps/v1/namespaces/ex/deployments",
            &[("watch", "true")],
        )
        .await;
    let created = server
        .post("/apis/apps/v1/namespaces/ex/deployments", &deployment)
        .await
        .expect(201)
        .clone();
    let event = watch.next_event().await;
    let got = server
        .get("/apis/apps/v1/namespaces/ex/deployments/web")
        .await
        .expect(200)
        .clone();
    let listed = server
        .get("/apis/apps/v1/namespaces/ex/deployments")
        .await
        .expect(200)["items"][0]
        .clone();
    for (what, object) in [
        ("create", &created),
        ("watch", &event["object"]),
        ("get", &got),
        ("list", &listed),
    ] {
        assert_eq!(object["status"], json!({}), "{what}: {object:#}");
        let template = &object["spec"]["template"];
        assert_eq!(
            template["metadata"].get("creationTimestamp"),
            Some(&Value::Null),
            "{what}: {template:#}"
        );
        for container in template["spec"]["containers"].as_array().unwrap() {
            assert_eq!(container["resources"], json!({}), "{what}: {container:#}");
        }
    }
    // In protobuf: the template's ObjectMeta carries creationTimestamp (tag 8) as an empty
    // message, as Go writes a zero Time of a non-pointer field.
    let bytes = get_protobuf(server, "/apis/apps/v1/namespaces/ex/deployments/web").await;
    let decoded = protobuf::decode_envelope(&bytes, None).unwrap();
    assert_eq!(decoded["status"], json!({}));
    assert_eq!(
        decoded["spec"]["template"]["spec"]["containers"][1]["resources"],
        json!({})
    );
    assert_eq!(bytes, protobuf::encode_envelope(&got).unwrap());
    let mut empty_time = Vec::new();
    protobuf::transcode::encode(
        MESSAGES
            .iter()
            .find(|m| m.name == "apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .unwrap(),
        &got["spec"]["template"]["metadata"],
        &mut empty_time,
    )
    .unwrap();
    assert!(
        empty_time.starts_with(&[0x42, 0x00]),
        "the template's metadata encodes as {empty_time:02x?}"
    );
    assert!(
        bytes
            .windows(empty_time.len())
            .any(|w| w == empty_time.as_slice()),
        "the served bytes hold the template's metadata with its empty creationTimestamp"
    );
}

/// Filling the canonical form changes nothing that clients write: sending back what was read
/// writes nothing, the creator does not become the owner of fields it never sent, and a
/// strategic merge patch of a container keeps its `resources: {}`.
#[tokio::test]
async fn writes_that_change_nothing_still_write_nothing() {
    let server = TestServer::start().await;
    server.create_namespace("nw").await;
    let path = "/apis/apps/v1/namespaces/nw/deployments/web";
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "nw"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    let created = server
        .post("/apis/apps/v1/namespaces/nw/deployments", &deployment)
        .await
        .expect(201)
        .clone();
    let owned = created["metadata"]["managedFields"].to_string();
    for never_sent in ["f:resources", "f:creationTimestamp", "f:status"] {
        assert!(!owned.contains(never_sent), "{never_sent} in {owned}");
    }
    let version = created["metadata"]["resourceVersion"].clone();
    // PUT of what was read, with its nulls and empty structs: nothing to write.
    let put = server.put(path, &created).await.expect(200).clone();
    assert_eq!(
        put["metadata"]["resourceVersion"], version,
        "{created:#}\n{put:#}"
    );
    // PUT of the original manifest (without them): nothing either.
    let mut manifest = deployment.clone();
    manifest["metadata"]["resourceVersion"] = version.clone();
    let put = server.put(path, &manifest).await.expect(200).clone();
    assert_eq!(put["metadata"]["resourceVersion"], version);
    assert_eq!(put, created);
    // A strategic merge patch of the container: merged by name, its resources kept.
    let patched = server
        .patch(
            path,
            STRATEGIC_MERGE_PATCH,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}),
        )
        .await
        .expect(200)
        .clone();
    let container = &patched["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:2");
    assert_eq!(container["resources"], json!({}));
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_ne!(patched["metadata"]["resourceVersion"], version);
    let owned = patched["metadata"]["managedFields"].to_string();
    assert!(!owned.contains("f:resources"), "{owned}");
}
