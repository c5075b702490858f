//! The CRD controller (`server/src/crds.rs`) deciding names within a group: a CRD waiting
//! for a name gets it when the CRD holding it lets it go (renamed or deleted), and many CRDs
//! of one group are all established and served.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::server::{MERGE_PATCH, TestServer};

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// A bound on waiting for the controller, never a speed check.
const WAIT: Duration = Duration::from_secs(60);

fn crd(group: &str, plural: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": plural.trim_end_matches('s'),
                "kind": kind,
                "listKind": format!("{kind}List"),
            },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                }},
            }],
        },
    })
}

fn condition<'a>(crd: &'a Value, condition_type: &str) -> Option<&'a Value> {
    crd["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == condition_type)
}

fn condition_status(crd: &Value, condition_type: &str) -> String {
    condition(crd, condition_type)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Polls the CRD `name` until `done` holds for it; panics with the last one seen after
/// [`WAIT`].
async fn wait_for_crd(server: &TestServer, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = server.get(&format!("{CRDS}/{name}")).await;
        if reply.status == 200 && done(&reply.body) {
            return reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "CRD {name} did not get there: {:#}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn wait_established(server: &TestServer, name: &str) -> Value {
    wait_for_crd(server, name, |crd| {
        condition_status(crd, "Established") == "True"
    })
    .await
}

/// Polls `path` until it answers `status`.
async fn wait_for_status(server: &TestServer, path: &str, status: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = server.get(path).await;
        if reply.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} answered {} rather than {status}: {:#}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn with_short_names(mut crd: Value, short_names: &[&str]) -> Value {
    crd["spec"]["names"]["shortNames"] = json!(short_names);
    crd
}

/// Creates `holder` and then `waiter`, which asks for a name `holder` has: `waiter` waits
/// with NamesAccepted False and is not served.
async fn holder_and_waiter(server: &TestServer, group: &str, holder: Value, waiter: Value) {
    let waiter_plural = waiter["spec"]["names"]["plural"]
        .as_str()
        .expect("a plural")
        .to_string();
    server.post(CRDS, &holder).await.expect(201);
    wait_established(server, holder["metadata"]["name"].as_str().expect("a name")).await;
    server.post(CRDS, &waiter).await.expect(201);
    let waiting = wait_for_crd(server, &format!("{waiter_plural}.{group}"), |crd| {
        condition_status(crd, "NamesAccepted") == "False"
    })
    .await;
    let reason = condition(&waiting, "NamesAccepted").expect("NamesAccepted")["reason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(reason.ends_with("Conflict"), "{waiting:#}");
    assert_ne!(
        condition_status(&waiting, "Established"),
        "True",
        "{waiting:#}"
    );
    server
        .get(&format!("/apis/{group}/v1/{waiter_plural}"))
        .await
        .expect(404);
}

#[tokio::test]
async fn a_short_name_released_by_a_rename_goes_to_the_crd_waiting_for_it() {
    let server = TestServer::start().await;
    let group = "rename.example.com";
    holder_and_waiter(
        &server,
        group,
        with_short_names(crd(group, "foos", "Foo"), &["fo"]),
        with_short_names(crd(group, "bars", "Bar"), &["fo"]),
    )
    .await;
    // The holder takes another short name: its status write releases `fo`, and the waiting
    // CRD of the same group gets it without an event of its own.
    server
        .patch(
            &format!("{CRDS}/foos.{group}"),
            MERGE_PATCH,
            &json!({"spec": {"names": {"shortNames": ["fx"]}}}),
        )
        .await
        .expect(200);
    let holder = wait_for_crd(&server, &format!("foos.{group}"), |crd| {
        crd["status"]["acceptedNames"]["shortNames"] == json!(["fx"])
    })
    .await;
    assert_eq!(condition_status(&holder, "NamesAccepted"), "True");
    let waiter = wait_for_crd(&server, &format!("bars.{group}"), |crd| {
        condition_status(crd, "NamesAccepted") == "True"
    })
    .await;
    assert_eq!(
        waiter["status"]["acceptedNames"]["shortNames"],
        json!(["fo"]),
        "{waiter:#}"
    );
    assert_eq!(condition_status(&waiter, "Established"), "True");
    wait_for_status(&server, &format!("/apis/{group}/v1/bars"), 200).await;
    server
        .get(&format!("/apis/{group}/v1/foos"))
        .await
        .expect(200);
}

#[tokio::test]
async fn a_kind_released_by_a_delete_goes_to_the_crd_waiting_for_it() {
    let server = TestServer::start().await;
    let group = "delete.example.com";
    holder_and_waiter(
        &server,
        group,
        crd(group, "foos", "Foo"),
        crd(group, "bars", "Foo"),
    )
    .await;
    let deleted = server.delete(&format!("{CRDS}/foos.{group}")).await;
    assert!(matches!(deleted.status, 200 | 202), "{deleted:?}");
    let waiter = wait_established(&server, &format!("bars.{group}")).await;
    assert_eq!(
        waiter["status"]["acceptedNames"]["kind"], "Foo",
        "{waiter:#}"
    );
    wait_for_status(&server, &format!("/apis/{group}/v1/bars"), 200).await;
    wait_for_status(&server, &format!("/apis/{group}/v1/foos"), 404).await;
}

#[tokio::test]
async fn every_crd_of_a_large_group_is_established_and_served() {
    let server = TestServer::start().await;
    let group = "many.example.com";
    let count = 30;
    for i in 0..count {
        server
            .post(
                CRDS,
                &crd(group, &format!("things{i}s"), &format!("Thing{i}")),
            )
            .await
            .expect(201);
    }
    for i in 0..count {
        let crd = wait_established(&server, &format!("things{i}s.{group}")).await;
        assert_eq!(condition_status(&crd, "NamesAccepted"), "True", "{crd:#}");
        assert_eq!(crd["status"]["acceptedNames"]["kind"], format!("Thing{i}"));
        wait_for_status(&server, &format!("/apis/{group}/v1/things{i}s"), 200).await;
    }
    // Discovery lists all of them in the one group.
    let reply = server.get(&format!("/apis/{group}/v1")).await;
    let resources = reply.expect(200)["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter(|r| !r["name"].as_str().unwrap_or("").contains('/'))
        .count();
    assert_eq!(resources, count);
}
