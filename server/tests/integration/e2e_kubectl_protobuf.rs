//! End to end: kubectl's imperative `create` commands, which send protobuf bodies and accept
//! protobuf answers, against the real `kubecache` binary on its embedded store and on a real
//! etcd. Each object is then read back with `kubectl get -o json` (JSON) and checked field by
//! field.

use crate::support;

use kubecache_storage::testing::TestEtcd;
use serde_json::{Value, json};
use support::binary::{Kubecache, Storage};

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `kubectl get <what> -n <ns> -o json`.
fn get_json(server: &Kubecache, namespace: &str, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-n", namespace, "-o", "json"]);
    parse(&server.kubectl_ok(&args))
}

/// Metadata as kube-apiserver prints it for a fresh object: set by the server, and none of
/// the empty fields a Go client sends in protobuf.
#[track_caller]
fn assert_fresh_metadata(object: &Value, name: &str) {
    let meta = &object["metadata"];
    assert_eq!(meta["name"], name, "{object:#}");
    assert!(!meta["uid"].as_str().unwrap_or("").is_empty(), "{object:#}");
    assert!(
        meta["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    for absent in [
        "generateName",
        "selfLink",
        "deletionTimestamp",
        "ownerReferences",
    ] {
        assert!(meta.get(absent).is_none(), "{absent} in {meta:#}");
    }
}

fn imperative_creates(server: &Kubecache) {
    assert_eq!(
        server.kubectl_ok(&["create", "namespace", "imp"]).trim(),
        "namespace/imp created"
    );
    assert_eq!(
        server
            .kubectl_ok(&[
                "create",
                "configmap",
                "settings",
                "-n",
                "imp",
                "--from-literal=color=blue",
                "--from-literal=size=3",
            ])
            .trim(),
        "configmap/settings created"
    );
    assert_eq!(
        server
            .kubectl_ok(&[
                "create",
                "secret",
                "generic",
                "creds",
                "-n",
                "imp",
                "--from-literal=password=s3cr3t",
                "--from-literal=user=admin",
            ])
            .trim(),
        "secret/creds created"
    );
    assert_eq!(
        server
            .kubectl_ok(&[
                "create",
                "deployment",
                "web",
                "-n",
                "imp",
                "--image=nginx:1.25",
                "--replicas=2",
                "--port=8080",
            ])
            .trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        server
            .kubectl_ok(&[
                "create",
                "job",
                "pi",
                "-n",
                "imp",
                "--image=perl:5.34",
                "--",
                "perl",
                "-e",
                "print 1",
            ])
            .trim(),
        "job.batch/pi created"
    );
    assert_eq!(
        server
            .kubectl_ok(&[
                "create",
                "service",
                "clusterip",
                "web",
                "-n",
                "imp",
                "--tcp=80:8080",
                "--tcp=443:https",
            ])
            .trim(),
        "service/web created"
    );

    let ns = parse(&server.kubectl_ok(&["get", "namespace", "imp", "-o", "json"]));
    assert_fresh_metadata(&ns, "imp");
    assert_eq!(ns["status"]["phase"], "Active");

    let cm = get_json(server, "imp", &["configmap", "settings"]);
    assert_fresh_metadata(&cm, "settings");
    assert_eq!(cm["metadata"]["namespace"], "imp");
    assert_eq!(cm["data"], json!({"color": "blue", "size": "3"}));

    let secret = get_json(server, "imp", &["secret", "creds"]);
    assert_fresh_metadata(&secret, "creds");
    // (kube-apiserver would default `type` to Opaque; kubecache applies no defaults yet, for
    // JSON bodies neither.)
    // base64 of "s3cr3t" and "admin": bytes fields went protobuf bytes → JSON base64.
    assert_eq!(
        secret["data"],
        json!({"password": "czNjcjN0", "user": "YWRtaW4="})
    );

    let deploy = get_json(server, "imp", &["deployment", "web"]);
    assert_fresh_metadata(&deploy, "web");
    assert_eq!(deploy["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    let template = &deploy["spec"]["template"];
    assert_eq!(template["metadata"]["labels"], json!({"app": "web"}));
    let container = &template["spec"]["containers"][0];
    assert_eq!(container["name"], "nginx");
    assert_eq!(container["image"], "nginx:1.25");
    // Defaulted by admission as kube does (protocol, pull policy for a tagged image).
    assert_eq!(
        container["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        container["imagePullPolicy"], "IfNotPresent",
        "{container:#}"
    );
    // Empty structs stay as kube prints them (a zero Time as null); empty strings do not
    // appear.
    assert_eq!(container["resources"], json!({}));
    assert_eq!(
        template["metadata"].get("creationTimestamp"),
        Some(&serde_json::Value::Null)
    );

    let job = get_json(server, "imp", &["job", "pi"]);
    assert_fresh_metadata(&job, "pi");
    let pod_spec = &job["spec"]["template"]["spec"];
    assert_eq!(pod_spec["restartPolicy"], "Never");
    assert_eq!(pod_spec["containers"][0]["name"], "pi");
    assert_eq!(pod_spec["containers"][0]["image"], "perl:5.34");
    assert_eq!(
        pod_spec["containers"][0]["command"],
        json!(["perl", "-e", "print 1"])
    );

    let svc = get_json(server, "imp", &["service", "web"]);
    assert_fresh_metadata(&svc, "web");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
    let ports = svc["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(ports[0]["name"], "80-8080");
    assert_eq!(ports[0]["port"], 80);
    assert_eq!(ports[0]["protocol"], "TCP");
    // Int-or-string both ways: a number and a named port.
    assert_eq!(ports[0]["targetPort"], 8080);
    assert_eq!(ports[1]["port"], 443);
    assert_eq!(ports[1]["targetPort"], "https");

    // `-o json` prints the object the server answered, which kubectl read as protobuf.
    let printed = parse(&server.kubectl_ok(&[
        "create",
        "configmap",
        "printed",
        "-n",
        "imp",
        "--from-literal=k=v",
        "-o",
        "json",
    ]));
    assert_eq!(printed["kind"], "ConfigMap");
    assert_eq!(printed["apiVersion"], "v1");
    assert_fresh_metadata(&printed, "printed");
    assert_eq!(printed["data"], json!({"k": "v"}));
    let stored = get_json(server, "imp", &["configmap", "printed"]);
    assert_eq!(stored["metadata"]["uid"], printed["metadata"]["uid"]);
    assert_eq!(
        stored["metadata"]["resourceVersion"],
        printed["metadata"]["resourceVersion"]
    );

    let printed = parse(&server.kubectl_ok(&[
        "create",
        "deployment",
        "api",
        "-n",
        "imp",
        "--image=busybox:1.36",
        "-o",
        "json",
    ]));
    assert_eq!(printed["kind"], "Deployment");
    assert_eq!(printed["apiVersion"], "apps/v1");
    assert_eq!(printed["spec"]["replicas"], 1);
    assert_eq!(
        printed["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );

    // Creating one again: kubectl shows the message of the server's protobuf 409 Status.
    let output = server.kubectl(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "imp",
        "--from-literal=a=b",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("configmaps \"settings\" already exists"),
        "{stderr}"
    );

    // `kubectl describe` reads through client-go's typed clients, which ask for protobuf
    // first: the object, then lists (the deployment's ReplicaSets, the object's Events).
    let described = server.kubectl_ok(&["describe", "deployment", "web", "-n", "imp"]);
    for line in ["Name:", "Namespace:", "Selector:", "Replicas:", "Events:"] {
        assert!(
            described.lines().any(|l| l.starts_with(line)),
            "{line} in:\n{described}"
        );
    }
    assert!(described.contains("2 desired"), "{described}");
    assert!(described.contains("nginx:1.25"), "{described}");
    let described = server.kubectl_ok(&["describe", "secret", "creds", "-n", "imp"]);
    assert!(described.contains("password:  6 bytes"), "{described}");
    assert!(described.contains("user:      5 bytes"), "{described}");

    // Everything is listed too.
    let names = server.kubectl_ok(&["get", "configmaps", "-n", "imp", "-o", "name"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["configmap/printed", "configmap/settings"]);
}

#[test]
fn imperative_creates_in_protobuf_on_the_embedded_store() {
    let server = Kubecache::start();
    imperative_creates(&server);
}

#[test]
fn imperative_creates_in_protobuf_on_etcd() {
    let etcd = TestEtcd::start();
    let server = Kubecache::start_with(Storage::Etcd(etcd.endpoint()));
    imperative_creates(&server);
}

/// The other imperative `kubectl create` generators, each a different built-in type in
/// protobuf (RBAC, batch, policy, scheduling, networking, more secrets and services).
#[test]
fn more_imperative_creates_in_protobuf() {
    more_imperative_creates(&Kubecache::start());
}

#[test]
fn more_imperative_creates_in_protobuf_on_etcd() {
    let etcd = TestEtcd::start();
    more_imperative_creates(&Kubecache::start_with(Storage::Etcd(etcd.endpoint())));
}

fn more_imperative_creates(server: &Kubecache) {
    let ns = "default";
    for (args, expected) in [
        (
            vec!["serviceaccount", "builder"],
            "serviceaccount/builder created",
        ),
        (
            vec![
                "role",
                "reader",
                "--verb=get,list",
                "--resource=pods,configmaps",
            ],
            "role.rbac.authorization.k8s.io/reader created",
        ),
        (
            vec![
                "rolebinding",
                "rb",
                "--role=reader",
                "--serviceaccount=default:builder",
            ],
            "rolebinding.rbac.authorization.k8s.io/rb created",
        ),
        (
            vec![
                "clusterrole",
                "cr",
                "--verb=get",
                "--non-resource-url=/healthz",
            ],
            "clusterrole.rbac.authorization.k8s.io/cr created",
        ),
        (
            vec![
                "clusterrolebinding",
                "crb",
                "--clusterrole=cr",
                "--user=alice",
            ],
            "clusterrolebinding.rbac.authorization.k8s.io/crb created",
        ),
        (
            vec![
                "cronjob",
                "nightly",
                "--image=busybox",
                "--schedule=0 3 * * *",
                "--",
                "date",
            ],
            "cronjob.batch/nightly created",
        ),
        (
            vec![
                "poddisruptionbudget",
                "pdb",
                "--selector=app=web",
                "--min-available=50%",
            ],
            "poddisruptionbudget.policy/pdb created",
        ),
        (
            vec![
                "priorityclass",
                "high",
                "--value=1000",
                "--preemption-policy=Never",
            ],
            "priorityclass.scheduling.k8s.io/high created",
        ),
        (
            vec![
                "ingress",
                "web",
                "--class=nginx",
                "--rule=example.com/=web:80",
                "--rule=example.com/api*=api:http",
            ],
            "ingress.networking.k8s.io/web created",
        ),
        (
            vec![
                "secret",
                "docker-registry",
                "reg",
                "--docker-server=r.io",
                "--docker-username=u",
                "--docker-password=p",
            ],
            "secret/reg created",
        ),
        (
            vec![
                "service",
                "nodeport",
                "np",
                "--tcp=80:8080",
                "--node-port=30080",
            ],
            "service/np created",
        ),
        (
            vec![
                "service",
                "externalname",
                "ext",
                "--external-name=example.com",
            ],
            "service/ext created",
        ),
    ] {
        let mut command = vec!["-n", ns, "create"];
        command.extend(args);
        assert_eq!(server.kubectl_ok(&command).trim(), expected);
    }

    let ingress = get_json(server, ns, &["ingress", "web"]);
    assert_eq!(
        ingress["spec"],
        json!({"ingressClassName": "nginx", "rules": [{"host": "example.com", "http": {"paths": [
            {"backend": {"service": {"name": "web", "port": {"number": 80}}}, "path": "/", "pathType": "Exact"},
            {"backend": {"service": {"name": "api", "port": {"name": "http"}}}, "path": "/api", "pathType": "Prefix"}
        ]}}]})
    );
    let pdb = get_json(server, ns, &["pdb", "pdb"]);
    assert_eq!(
        pdb["spec"],
        json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}})
    );
    let pc = parse(&server.kubectl_ok(&["get", "priorityclass", "high", "-o", "json"]));
    assert_eq!(pc["value"], 1000);
    assert_eq!(pc["preemptionPolicy"], "Never");
    let np = get_json(server, ns, &["service", "np"]);
    assert_eq!(
        np["spec"]["ports"],
        json!([{"name": "80-8080", "nodePort": 30080, "port": 80, "protocol": "TCP", "targetPort": 8080}])
    );
    let ext = get_json(server, ns, &["service", "ext"]);
    assert_eq!(ext["spec"]["type"], "ExternalName");
    assert_eq!(ext["spec"]["externalName"], "example.com");
    let cron = get_json(server, ns, &["cronjob", "nightly"]);
    assert_eq!(cron["spec"]["schedule"], "0 3 * * *");
    let job_spec = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(job_spec["restartPolicy"], "OnFailure");
    assert_eq!(job_spec["containers"][0]["command"], json!(["date"]));
    let cr = parse(&server.kubectl_ok(&["get", "clusterrole", "cr", "-o", "json"]));
    assert_eq!(
        cr["rules"],
        json!([{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}])
    );
    let rb = get_json(server, ns, &["rolebinding", "rb"]);
    assert_eq!(
        rb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "builder", "namespace": "default"}])
    );
    let role = get_json(server, ns, &["role", "reader"]);
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list"]}])
    );
    let reg = get_json(server, ns, &["secret", "reg"]);
    assert_eq!(reg["type"], "kubernetes.io/dockerconfigjson");
    assert!(reg["data"][".dockerconfigjson"].is_string());
}
