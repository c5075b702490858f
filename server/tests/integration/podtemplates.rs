//! `v1 PodTemplate`, the worked example of adding a built-in resource (docs/ARCHITECTURE.md,
//! "Worked example: adding v1 PodTemplate"): CRUD, LIST and WATCH over HTTP, the defaults of
//! its pod template, kube's validation, generation, its table, and `kubectl get podtemplates`.

use crate::support;

use serde_json::{Value, json};
use support::binary::Kubecache;
use support::kubectl::{create, header, lines};
use support::server::TestServer;

const TEMPLATES: &str = "/api/v1/namespaces/tpl/podtemplates";
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

fn pod_template(name: &str, labels: Value, containers: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": name},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": containers},
        },
    })
}

fn web(name: &str) -> Value {
    pod_template(
        name,
        json!({"app": "web", "tier": "front"}),
        json!([
            {"name": "main", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "busybox"},
        ]),
    )
}

#[tokio::test]
async fn crud_list_and_watch_with_defaults_and_generation() {
    let server = TestServer::start().await;
    server.create_namespace("tpl").await;
    let mut watch = server.watch(TEMPLATES, &[("watch", "true")]).await;

    // Create: the pod template is defaulted like a workload's (PodSpec and container
    // defaults, not the Pod-only ones), generation starts at 1.
    let created = server
        .post(TEMPLATES, &web("web"))
        .await
        .expect(201)
        .clone();
    assert_eq!(created["kind"], "PodTemplate");
    assert_eq!(created["metadata"]["generation"], 1, "{created:#}");
    let spec = &created["template"]["spec"];
    assert_eq!(spec["restartPolicy"], "Always", "{spec:#}");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["securityContext"], json!({}));
    assert!(spec.get("enableServiceLinks").is_none(), "{spec:#}");
    let main = &spec["containers"][0];
    assert_eq!(main["imagePullPolicy"], "IfNotPresent");
    assert_eq!(main["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(main["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["containers"][1]["imagePullPolicy"], "Always");
    // (the pod template's metadata is always written, as Go does)
    assert_eq!(
        created["template"]["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );
    let added = watch.expect_event("ADDED", "web").await;
    assert_eq!(added["object"], created);

    // Get and list.
    let got = server.get(&format!("{TEMPLATES}/web")).await;
    assert_eq!(got.expect(200), &created);
    server.post(TEMPLATES, &web("other")).await.expect(201);
    watch.expect_event("ADDED", "other").await;
    let list = server.get(TEMPLATES).await;
    let list = list.expect(200);
    assert_eq!(list["kind"], "PodTemplateList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other", "web"]);
    let all = server.get("/api/v1/podtemplates").await;
    assert_eq!(all.expect(200)["items"].as_array().unwrap().len(), 2);

    // A metadata change keeps the generation; a template change bumps it.
    let mut labeled = created.clone();
    labeled["metadata"]["labels"] = json!({"owner": "team-a"});
    let labeled = server
        .put(&format!("{TEMPLATES}/web"), &labeled)
        .await
        .expect(200)
        .clone();
    assert_eq!(labeled["metadata"]["generation"], 1, "{labeled:#}");
    watch.expect_event("MODIFIED", "web").await;
    let mut changed = labeled.clone();
    changed["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    let changed = server
        .put(&format!("{TEMPLATES}/web"), &changed)
        .await
        .expect(200)
        .clone();
    assert_eq!(changed["metadata"]["generation"], 2, "{changed:#}");
    let modified = watch.expect_event("MODIFIED", "web").await;
    assert_eq!(
        modified["object"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );

    // Delete: a Status (not the object), then gone; the watch sees the last state, at the
    // revision of the delete.
    let deleted = server.delete(&format!("{TEMPLATES}/web")).await;
    assert_eq!(deleted.expect(200)["kind"], "Status", "{:#}", deleted.body);
    let event = watch.expect_event("DELETED", "web").await;
    assert_eq!(event["object"]["template"], changed["template"]);
    let revision = |o: &Value| {
        o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(revision(&event["object"]) > revision(&changed), "{event:#}");
    server
        .get(&format!("{TEMPLATES}/web"))
        .await
        .expect_status(404, "NotFound");
}

#[tokio::test]
async fn validation_is_kubes_pod_template_validation() {
    let server = TestServer::start().await;
    server.create_namespace("tpl").await;

    // No containers: the pod template spec is validated at `template.spec`.
    let empty = pod_template("empty", json!({"app": "x"}), json!([]));
    let reply = server.post(TEMPLATES, &empty).await;
    let body = reply.expect_status(422, "Invalid");
    assert_eq!(body["details"]["kind"], "PodTemplate", "{body:#}");
    assert_eq!(body["details"]["name"], "empty");
    let causes = body["details"]["causes"].as_array().expect("causes");
    assert!(
        causes.iter().any(
            |c| c["field"] == "template.spec.containers" && c["reason"] == "FieldValueRequired"
        ),
        "{body:#}"
    );

    // Any restart policy is allowed (a workload's template allows only Always).
    let mut never = web("never");
    never["template"]["spec"]["restartPolicy"] = json!("Never");
    server.post(TEMPLATES, &never).await.expect(201);

    // A bad container in an update is refused as well.
    let stored = server.get(&format!("{TEMPLATES}/never")).await;
    let mut bad = stored.expect(200).clone();
    bad["template"]["spec"]["containers"][0]["image"] = json!("");
    let reply = server.put(&format!("{TEMPLATES}/never"), &bad).await;
    let body = reply.expect_status(422, "Invalid");
    assert!(
        body["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["field"]
                .as_str()
                .is_some_and(|f| f.starts_with("template.spec.containers[0]"))),
        "{body:#}"
    );
}

#[tokio::test]
async fn table_has_kubes_podtemplate_columns() {
    let server = TestServer::start().await;
    server.create_namespace("tpl").await;
    server.post(TEMPLATES, &web("web")).await.expect(201);
    server
        .post(
            TEMPLATES,
            &pod_template(
                "bare",
                json!({}),
                json!([{"name": "c", "image": "busybox:1.36"}]),
            ),
        )
        .await
        .expect(201);

    let response = server
        .client
        .get(server.url(TEMPLATES))
        .header("Accept", TABLE_ACCEPT)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let table: Value = response.json().await.expect("JSON");
    assert_eq!(table["kind"], "Table", "{table:#}");
    let columns: Vec<(&str, u64)> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Name", 0),
            ("Containers", 0),
            ("Images", 0),
            ("Pod Labels", 0)
        ]
    );
    let rows: Vec<&Value> = table["rows"].as_array().unwrap().iter().collect();
    let cells: Vec<&Value> = rows.iter().map(|r| &r["cells"]).collect();
    assert_eq!(
        cells,
        [
            &json!(["bare", "c", "busybox:1.36", "<none>"]),
            &json!([
                "web",
                "main,sidecar",
                "nginx:1.25,busybox",
                "app=web,tier=front"
            ]),
        ]
    );
}

#[test]
fn kubectl_get_podtemplates_prints_kubes_columns() {
    let server = Kubecache::start();
    create(
        &server,
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tpl\n",
    );
    let out = create(
        &server,
        "tpl.yaml",
        "apiVersion: v1
kind: PodTemplate
metadata:
  name: web
  namespace: tpl
template:
  metadata:
    labels:
      app: web
  spec:
    containers:
    - name: main
      image: nginx:1.25
    - name: sidecar
      image: busybox:1.36
",
    );
    assert_eq!(out.trim(), "podtemplate/web created");

    let out = server.kubectl_ok(&["get", "podtemplates", "-n", "tpl"]);
    assert_eq!(
        header(&out),
        ["NAME", "CONTAINERS", "IMAGES", "POD", "LABELS"],
        "{out}"
    );
    let row: Vec<&str> = lines(&out)[1].split_whitespace().collect();
    assert_eq!(
        row,
        ["web", "main,sidecar", "nginx:1.25,busybox:1.36", "app=web"],
        "{out}"
    );
    // The singular name resolves through discovery too.
    let out = server.kubectl_ok(&["get", "podtemplate", "web", "-n", "tpl", "-o", "name"]);
    assert_eq!(out.trim(), "podtemplate/web");
    let out = server.kubectl_ok(&["delete", "podtemplate", "web", "-n", "tpl"]);
    assert_eq!(out.trim(), "podtemplate \"web\" deleted");
}
