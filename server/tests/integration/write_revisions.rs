//! The rule clients build on to match their writes with the watch events they cause
//! (controllers' expectations, informers waiting for their own writes, load generators):
//! the resourceVersion in a write's answer is the resourceVersion of the event that write
//! produced. Checked for every verb that writes, on the embedded store and on etcd.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{
    JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, TestServer, WatchStream,
};

const NS: &str = "revisions";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/revisions/deployments";
const PODS: &str = "/api/v1/namespaces/revisions/pods";
const APPLY_PATCH: &str = "application/apply-patch+yaml";

fn rv(object: &Value) -> &str {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no resourceVersion in {object:#}"))
}

/// Reads the next event of `watch`, checks its type and object name, and that its
/// resourceVersion is the one the write answered with.
async fn expect_matching(watch: &mut WatchStream, verb: &str, event_type: &str, answer: &Value) {
    let name = answer["metadata"]["name"].as_str().expect("a name");
    let event = watch.expect_event(event_type, name).await;
    assert_eq!(
        rv(&event["object"]),
        rv(answer),
        "{verb}: the answer's resourceVersion differs from its {event_type} event's"
    );
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    })
}

fn pod(name: &str, finalizers: &[&str]) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"set": "revisions"}, "finalizers": finalizers},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    })
}

async fn every_verb(server: &TestServer) {
    server.create_namespace(NS).await;
    let start = server.get(DEPLOYMENTS).await.expect(200)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut deployments = server
        .watch(
            DEPLOYMENTS,
            &[("watch", "true"), ("resourceVersion", &start)],
        )
        .await;
    let web = format!("{DEPLOYMENTS}/web");

    let created = server.post(DEPLOYMENTS, &deployment("web")).await;
    expect_matching(&mut deployments, "create", "ADDED", created.expect(201)).await;

    let mut changed = created.body.clone();
    changed["spec"]["replicas"] = json!(2);
    let updated = server.put(&web, &changed).await;
    expect_matching(&mut deployments, "update", "MODIFIED", updated.expect(200)).await;

    let merge = json!({"metadata": {"labels": {"patched": "merge"}}});
    let patched = server.patch(&web, MERGE_PATCH, &merge).await;
    expect_matching(
        &mut deployments,
        "merge patch",
        "MODIFIED",
        patched.expect(200),
    )
    .await;

    let json_patch = json!([{"op": "add", "path": "/metadata/labels/patched", "value": "json"}]);
    let patched = server.patch(&web, JSON_PATCH, &json_patch).await;
    expect_matching(
        &mut deployments,
        "json patch",
        "MODIFIED",
        patched.expect(200),
    )
    .await;

    let strategic = json!({"metadata": {"labels": {"patched": "strategic"}}});
    let patched = server.patch(&web, STRATEGIC_MERGE_PATCH, &strategic).await;
    expect_matching(
        &mut deployments,
        "strategic patch",
        "MODIFIED",
        patched.expect(200),
    )
    .await;

    let apply_url = server.url_with(&format!("{DEPLOYMENTS}/applied"), &[("fieldManager", "t")]);
    let body = serde_json::to_vec(&deployment("applied")).unwrap();
    let applied = server
        .send(Method::PATCH, &apply_url, Some(APPLY_PATCH), Some(body))
        .await;
    expect_matching(
        &mut deployments,
        "apply (create)",
        "ADDED",
        applied.expect(201),
    )
    .await;
    let mut again = deployment("applied");
    again["spec"]["replicas"] = json!(3);
    let body = serde_json::to_vec(&again).unwrap();
    let applied = server
        .send(Method::PATCH, &apply_url, Some(APPLY_PATCH), Some(body))
        .await;
    expect_matching(
        &mut deployments,
        "apply (update)",
        "MODIFIED",
        applied.expect(200),
    )
    .await;

    let mut with_status = patched.body.clone();
    with_status["status"] = json!({"replicas": 2});
    let status = server.put(&format!("{web}/status"), &with_status).await;
    expect_matching(
        &mut deployments,
        "status update",
        "MODIFIED",
        status.expect(200),
    )
    .await;
    let status_patch = json!({"status": {"replicas": 1}});
    let status = server
        .patch(&format!("{web}/status"), MERGE_PATCH, &status_patch)
        .await;
    expect_matching(
        &mut deployments,
        "status patch",
        "MODIFIED",
        status.expect(200),
    )
    .await;

    // A Scale names the object it scales, so its events are the deployment's.
    let scale_patch = json!({"spec": {"replicas": 4}});
    let scaled = server
        .patch(&format!("{web}/scale"), MERGE_PATCH, &scale_patch)
        .await;
    let scaled = scaled.expect(200).clone();
    let event = deployments.expect_event("MODIFIED", "web").await;
    assert_eq!(rv(&event["object"]), rv(&scaled), "scale patch");
    let mut scale = scaled.clone();
    scale["spec"]["replicas"] = json!(5);
    let scaled = server.put(&format!("{web}/scale"), &scale).await;
    let scaled = scaled.expect(200).clone();
    let event = deployments.expect_event("MODIFIED", "web").await;
    assert_eq!(rv(&event["object"]), rv(&scaled), "scale update");

    // Deployments answer a DELETE with a Status (no resourceVersion); pods answer with the
    // object, so the delete rules are checked on pods.
    let start = server.get(PODS).await.expect(200)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut pods = server
        .watch(PODS, &[("watch", "true"), ("resourceVersion", &start)])
        .await;
    for (name, options) in [
        ("immediate", json!({"gracePeriodSeconds": 0})),
        ("graceful", json!({})),
        ("background", json!({"propagationPolicy": "Background"})),
    ] {
        let created = server.post(PODS, &pod(name, &[])).await;
        expect_matching(&mut pods, "create", "ADDED", created.expect(201)).await;
        let deleted = server
            .delete_with(&format!("{PODS}/{name}"), &options)
            .await;
        let verb = format!("delete {options}");
        expect_matching(&mut pods, &verb, "DELETED", deleted.expect(200)).await;
    }

    // Finalizers: the delete only marks the object (MODIFIED); the update that removes the
    // last finalizer deletes it (DELETED).
    let created = server.post(PODS, &pod("held", &["example.com/hold"])).await;
    expect_matching(&mut pods, "create", "ADDED", created.expect(201)).await;
    let marked = server.delete(&format!("{PODS}/held")).await;
    let marked = marked.expect(200).clone();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    expect_matching(&mut pods, "delete with finalizers", "MODIFIED", &marked).await;
    let release = json!({"metadata": {"finalizers": null}});
    let released = server
        .patch(&format!("{PODS}/held"), MERGE_PATCH, &release)
        .await;
    let verb = "removing the last finalizer";
    expect_matching(&mut pods, verb, "DELETED", released.expect(200)).await;

    // deletecollection: each item of the answer matches its own DELETED event.
    for name in ["one", "two", "three"] {
        let created = server.post(PODS, &pod(name, &[])).await;
        expect_matching(&mut pods, "create", "ADDED", created.expect(201)).await;
    }
    let collection = server
        .send(
            Method::DELETE,
            &server.url_with(PODS, &[("labelSelector", "set=revisions")]),
            None,
            None,
        )
        .await;
    let items = collection.expect(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3, "{:#}", collection.body);
    for _ in 0..items.len() {
        let event = pods.next_event().await;
        assert_eq!(event["type"], "DELETED", "{event:#}");
        let name = &event["object"]["metadata"]["name"];
        let item = items
            .iter()
            .find(|item| &item["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no item for {event:#}"));
        assert_eq!(rv(&event["object"]), rv(item), "deletecollection of {name}");
    }
}

on_both_stores!(
    every_verb_answers_with_its_events_revision_embedded,
    every_verb_answers_with_its_events_revision_etcd,
    every_verb
);
