//! The storage.k8s.io, node.k8s.io and networking.k8s.io resources of kube 1.33 that kubelets,
//! schedulers and CSI drivers use (CSIDrivers, CSINodes, CSIStorageCapacities, StorageClasses,
//! VolumeAttachments, RuntimeClasses, IngressClasses, Ingresses, NetworkPolicies, IPAddresses, ServiceCIDRs), table-driven
//! on the embedded store and on etcd: create (with kube's defaults), get, list, watch,
//! update, delete, and one invalid object each (422 with kube's field cause, nothing
//! written); the clusterIP allocator's IPAddresses and the default ServiceCIDR as served
//! objects; `kubectl get` with kube's columns and short names.

use crate::support;

use serde_json::{Value, json};
use support::binary::Kubecache;
use support::kubectl::{create, header, lines};
use support::server::TestServer;

/// One resource's scenario.
struct Case {
    /// The collection the objects are created in.
    collection: &'static str,
    /// A valid object, named.
    valid: Value,
    /// What the create answers beyond the object sent (kube's defaults), as
    /// `(JSON pointer, value)`.
    defaulted: Vec<(&'static str, Value)>,
    /// An allowed change for an update: `(JSON pointer, value)`.
    change: (&'static str, Value),
    /// A DELETE answers with the object (kube's `ReturnDeletedObject`), not a Status.
    delete_returns_object: bool,
    /// An object kube refuses, and the field and message of the cause it gives.
    invalid: Value,
    cause: (&'static str, &'static str),
}

const NAMESPACE: &str = "storage";

fn cases() -> Vec<Case> {
    vec![
        Case {
            collection: "/apis/storage.k8s.io/v1/csidrivers",
            valid: json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                          "metadata": {"name": "csi.example.com"}, "spec": {}}),
            defaulted: vec![
                ("/spec/attachRequired", json!(true)),
                ("/spec/podInfoOnMount", json!(false)),
                ("/spec/fsGroupPolicy", json!("ReadWriteOnceWithFSType")),
                ("/spec/volumeLifecycleModes", json!(["Persistent"])),
                ("/spec/seLinuxMount", json!(false)),
            ],
            change: ("/spec/podInfoOnMount", json!(true)),
            delete_returns_object: true,
            invalid: json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                            "metadata": {"name": "bad.example.com"},
                            "spec": {"fsGroupPolicy": "Sometimes"}}),
            cause: (
                "spec.fsGroupPolicy",
                "Unsupported value: \"Sometimes\": supported values: \"File\", \"None\", \"ReadWriteOnceWithFSType\"",
            ),
        },
        Case {
            collection: "/apis/storage.k8s.io/v1/csinodes",
            valid: json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                          "metadata": {"name": "node-1"},
                          "spec": {"drivers": [{"name": "csi.example.com", "nodeID": "i-1"}]}}),
            defaulted: vec![],
            change: ("/metadata/labels", json!({"zone": "a"})),
            delete_returns_object: true,
            invalid: json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                            "metadata": {"name": "node-2"},
                            "spec": {"drivers": [{"name": "csi.example.com", "nodeID": ""}]}}),
            cause: ("spec.drivers[0].nodeID", "Required value"),
        },
        Case {
            collection: "/apis/storage.k8s.io/v1/namespaces/storage/csistoragecapacities",
            valid: json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity",
                          "metadata": {"name": "fast-zone-a"},
                          "storageClassName": "fast", "capacity": "10Gi"}),
            defaulted: vec![],
            change: ("/capacity", json!("20Gi")),
            delete_returns_object: false,
            invalid: json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity",
                            "metadata": {"name": "broken"},
                            "storageClassName": "fast", "capacity": "-1Gi"}),
            cause: (
                "capacity",
                "Invalid value: \"-1Gi\": must be greater than or equal to 0",
            ),
        },
        Case {
            collection: "/apis/storage.k8s.io/v1/storageclasses",
            valid: json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                          "metadata": {"name": "fast"}, "provisioner": "ebs.csi.aws.com",
                          "parameters": {"type": "gp3"}}),
            defaulted: vec![
                ("/reclaimPolicy", json!("Delete")),
                ("/volumeBindingMode", json!("Immediate")),
            ],
            change: ("/allowVolumeExpansion", json!(true)),
            delete_returns_object: true,
            invalid: json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                            "metadata": {"name": "recycled"}, "provisioner": "ebs.csi.aws.com",
                            "reclaimPolicy": "Recycle"}),
            cause: (
                "reclaimPolicy",
                "Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
            ),
        },
        Case {
            collection: "/apis/storage.k8s.io/v1/volumeattachments",
            valid: json!({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                          "metadata": {"name": "csi-0a1b"},
                          "spec": {"attacher": "csi.example.com", "nodeName": "node-1",
                                   "source": {"persistentVolumeName": "pv-1"}}}),
            defaulted: vec![],
            change: ("/metadata/labels", json!({"pv": "pv-1"})),
            delete_returns_object: true,
            invalid: json!({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                            "metadata": {"name": "nowhere"},
                            "spec": {"attacher": "csi.example.com", "nodeName": "node-1",
                                     "source": {}}}),
            cause: (
                "spec.source",
                "Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName",
            ),
        },
        Case {
            collection: "/apis/node.k8s.io/v1/runtimeclasses",
            valid: json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                          "metadata": {"name": "gvisor"}, "handler": "runsc"}),
            defaulted: vec![],
            change: (
                "/scheduling",
                json!({"nodeSelector": {"runtime": "gvisor"}}),
            ),
            delete_returns_object: false,
            invalid: json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                            "metadata": {"name": "kata"}, "handler": "Kata_QEMU"}),
            cause: (
                "handler",
                "Invalid value: \"Kata_QEMU\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ),
        },
        Case {
            collection: "/apis/networking.k8s.io/v1/ingressclasses",
            valid: json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                          "metadata": {"name": "nginx"},
                          "spec": {"controller": "k8s.io/ingress-nginx",
                                   "parameters": {"kind": "Params", "name": "lb"}}}),
            defaulted: vec![("/spec/parameters/scope", json!("Cluster"))],
            change: (
                "/metadata/annotations",
                json!({"ingressclass.kubernetes.io/is-default-class": "true"}),
            ),
            delete_returns_object: false,
            invalid: json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                            "metadata": {"name": "plain"}, "spec": {"controller": "nginx"}}),
            cause: (
                "spec.controller",
                "Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")",
            ),
        },
        Case {
            collection: "/apis/networking.k8s.io/v1/namespaces/storage/ingresses",
            valid: json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                          "metadata": {"name": "web"},
                          "spec": {"rules": [{"host": "web.example.com", "http": {"paths": [
                              {"path": "/", "pathType": "Prefix", "backend":
                                  {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
            defaulted: vec![],
            change: ("/spec/ingressClassName", json!("nginx")),
            delete_returns_object: false,
            invalid: json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                            "metadata": {"name": "portless"},
                            "spec": {"defaultBackend": {"service": {"name": "web", "port": {}}}}}),
            cause: (
                "spec.defaultBackend",
                "Required value: port name or number is required",
            ),
        },
        Case {
            collection: "/apis/networking.k8s.io/v1/namespaces/storage/networkpolicies",
            valid: json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                          "metadata": {"name": "web"},
                          "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}}),
            defaulted: vec![
                ("/spec/policyTypes", json!(["Ingress"])),
                ("/spec/ingress/0/ports/0/protocol", json!("TCP")),
            ],
            change: ("/spec/podSelector", json!({"matchLabels": {"app": "web"}})),
            delete_returns_object: false,
            invalid: json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                            "metadata": {"name": "sideways"},
                            "spec": {"podSelector": {}, "policyTypes": ["Sideways"]}}),
            cause: (
                "spec.policyTypes[0]",
                "Unsupported value: \"Sideways\": supported values: \"Egress\", \"Ingress\"",
            ),
        },
        Case {
            collection: "/apis/networking.k8s.io/v1/ipaddresses",
            valid: json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
                          "metadata": {"name": "192.168.77.5"},
                          "spec": {"parentRef": {"group": "gateway.networking.k8s.io",
                                                 "resource": "gateways",
                                                 "namespace": "default", "name": "edge"}}}),
            defaulted: vec![],
            change: ("/metadata/labels", json!({"owner": "edge"})),
            delete_returns_object: false,
            invalid: json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
                            "metadata": {"name": "2001:db8:0::5"},
                            "spec": {"parentRef": {"resource": "gateways", "name": "edge"}}}),
            cause: (
                "metadata.name",
                "Invalid value: \"2001:db8:0::5\": must be in canonical form (\"2001:db8::5\")",
            ),
        },
        Case {
            collection: "/apis/networking.k8s.io/v1/servicecidrs",
            valid: json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
                          "metadata": {"name": "extra"},
                          "spec": {"cidrs": ["10.100.0.0/16", "fd00:100::/112"]}}),
            defaulted: vec![],
            change: ("/metadata/labels", json!({"purpose": "extra"})),
            delete_returns_object: false,
            invalid: json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
                            "metadata": {"name": "sloppy"}, "spec": {"cidrs": ["10.100.0.1/16"]}}),
            cause: (
                "spec.cidrs[0]",
                "Invalid value: \"10.100.0.1/16\": must not have bits set beyond the prefix length",
            ),
        },
    ]
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap()
}

fn set(object: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = if parent.is_empty() {
        object
    } else {
        object.pointer_mut(parent).unwrap()
    };
    parent[key] = value;
}

async fn every_kind_crud_watch_and_validation(server: &TestServer) {
    server.create_namespace(NAMESPACE).await;
    for case in cases() {
        let name = name_of(&case.valid);
        let item = format!("{}/{name}", case.collection);
        // From the list's revision: objects the server made (the ServiceCIDR `kubernetes`)
        // are not events.
        let listed = server.get(case.collection).await;
        let revision = listed.expect(200)["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let mut watch = server
            .watch(
                case.collection,
                &[("watch", "true"), ("resourceVersion", &revision)],
            )
            .await;

        // Create: kube's defaults, then get and list.
        let created = server
            .post(case.collection, &case.valid)
            .await
            .expect(201)
            .clone();
        for (pointer, value) in &case.defaulted {
            assert_eq!(created.pointer(pointer), Some(value), "{item}: {created:#}");
        }
        assert_eq!(
            watch.expect_event("ADDED", name).await["object"],
            created,
            "{item}"
        );
        assert_eq!(server.get(&item).await.expect(200), &created, "{item}");
        let list = server.get(case.collection).await;
        let list = list.expect(200);
        assert_eq!(
            list["kind"].as_str().unwrap(),
            format!("{}List", case.valid["kind"].as_str().unwrap())
        );
        assert!(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i == &created),
            "{item}: {list:#}"
        );

        // Update.
        let mut changed = created.clone();
        set(&mut changed, case.change.0, case.change.1.clone());
        let updated = server.put(&item, &changed).await.expect(200).clone();
        assert_eq!(
            updated.pointer(case.change.0),
            Some(&case.change.1),
            "{item}"
        );
        assert_eq!(
            watch.expect_event("MODIFIED", name).await["object"],
            updated,
            "{item}"
        );

        // Delete: the object or a Status, as kube answers for the kind; then gone.
        let deleted = server.delete(&item).await;
        let answer = if case.delete_returns_object {
            &case.valid["kind"]
        } else {
            &json!("Status")
        };
        assert_eq!(&deleted.expect(200)["kind"], answer, "{item}");
        watch.expect_event("DELETED", name).await;
        server.get(&item).await.expect_status(404, "NotFound");

        // The invalid object: 422 with kube's cause, nothing written.
        let reply = server.post(case.collection, &case.invalid).await;
        let body = reply.expect_status(422, "Invalid");
        assert_eq!(body["details"]["kind"], case.invalid["kind"], "{body:#}");
        let causes = body["details"]["causes"].as_array().unwrap();
        assert!(
            causes
                .iter()
                .any(|c| c["field"] == case.cause.0 && c["message"] == case.cause.1),
            "{item}: {body:#}"
        );
        let invalid_item = format!("{}/{}", case.collection, name_of(&case.invalid));
        server
            .get(&invalid_item)
            .await
            .expect_status(404, "NotFound");
    }
}
on_both_stores!(
    every_kind_crud_watch_and_validation_embedded,
    every_kind_crud_watch_and_validation_etcd,
    every_kind_crud_watch_and_validation
);

/// What an update may not change: each kind's immutable field, refused with kube's cause.
async fn immutable_fields_are_refused(server: &TestServer) {
    let attachments = "/apis/storage.k8s.io/v1/volumeattachments";
    let attachment = server
        .post(
            attachments,
            &json!({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                    "metadata": {"name": "pinned"},
                    "spec": {"attacher": "csi.example.com", "nodeName": "node-1",
                             "source": {"persistentVolumeName": "pv-1"}}}),
        )
        .await
        .expect(201)
        .clone();
    // The status is the attacher's, written through /status; the spec never changes.
    let mut attached = attachment.clone();
    attached["status"] = json!({"attached": true});
    let written = server
        .put(&format!("{attachments}/pinned/status"), &attached)
        .await
        .expect(200)
        .clone();
    assert_eq!(written["status"]["attached"], true);
    let mut moved = written.clone();
    moved["spec"]["nodeName"] = json!("node-2");
    let reply = server.put(&format!("{attachments}/pinned"), &moved).await;
    let body = reply.expect_status(422, "Invalid");
    assert_eq!(body["details"]["causes"][0]["field"], "spec", "{body:#}");

    let drivers = "/apis/storage.k8s.io/v1/csidrivers";
    let driver = server
        .post(
            drivers,
            &json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                    "metadata": {"name": "csi.example.com"}, "spec": {}}),
        )
        .await
        .expect(201)
        .clone();
    let mut detached = driver.clone();
    detached["spec"]["attachRequired"] = json!(false);
    let reply = server
        .put(&format!("{drivers}/csi.example.com"), &detached)
        .await;
    let body = reply.expect_status(422, "Invalid");
    assert_eq!(
        body["details"]["causes"][0],
        json!({"reason": "FieldValueInvalid", "field": "spec.attachedRequired",
               "message": "Invalid value: false: field is immutable"})
    );

    let classes = "/apis/node.k8s.io/v1/runtimeclasses";
    let class = server
        .post(
            classes,
            &json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                    "metadata": {"name": "gvisor"}, "handler": "runsc"}),
        )
        .await
        .expect(201)
        .clone();
    let mut other = class.clone();
    other["handler"] = json!("runc");
    let reply = server.put(&format!("{classes}/gvisor"), &other).await;
    let body = reply.expect_status(422, "Invalid");
    assert_eq!(body["details"]["causes"][0]["field"], "handler");
    assert_eq!(
        server.get(&format!("{classes}/gvisor")).await.expect(200),
        &class
    );
}
on_both_stores!(
    immutable_fields_are_refused_embedded,
    immutable_fields_are_refused_etcd,
    immutable_fields_are_refused
);

/// The clusterIP allocator's IPAddresses are the served objects (named by the IP, parentRef
/// the Service, kube's labels), watched like any; an IPAddress created through the API holds
/// its IP against Services; the default ServiceCIDR describes the range and is Ready.
async fn the_allocators_ip_addresses_and_the_default_service_cidr_are_served(server: &TestServer) {
    let ips = "/apis/networking.k8s.io/v1/ipaddresses";
    let default = server
        .get("/apis/networking.k8s.io/v1/servicecidrs/kubernetes")
        .await
        .expect(200)
        .clone();
    assert_eq!(
        default["spec"]["cidrs"],
        json!(["10.0.0.0/24"]),
        "{default:#}"
    );
    let ready = &default["status"]["conditions"][0];
    assert_eq!(ready["type"], "Ready", "{default:#}");
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["message"], "Kubernetes default Service CIDR is ready");

    let mut watch = server.watch(ips, &[("watch", "true")]).await;
    let service = server
        .post(
            "/api/v1/namespaces/default/services",
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                    "spec": {"ports": [{"port": 80}]}}),
        )
        .await
        .expect(201)
        .clone();
    let ip = service["spec"]["clusterIP"].as_str().unwrap().to_string();
    let added = watch.expect_event("ADDED", &ip).await;
    let object = server.get(&format!("{ips}/{ip}")).await.expect(200).clone();
    assert_eq!(added["object"], object);
    assert_eq!(object["kind"], "IPAddress");
    assert_eq!(
        object["spec"]["parentRef"],
        json!({"group": "", "resource": "services", "namespace": "default", "name": "web"})
    );
    assert_eq!(
        object["metadata"]["labels"],
        json!({"ipaddress.kubernetes.io/ip-family": "IPv4",
               "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"})
    );
    assert!(
        object["metadata"]["resourceVersion"].is_string(),
        "{object:#}"
    );

    // Its table: Name and ParentRef, no Age (kube's printer).
    let table = server
        .get_accepting(
            &format!("{ips}/{ip}"),
            &[],
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        )
        .await
        .expect(200)
        .clone();
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "ParentRef"]);
    assert_eq!(
        table["rows"][0]["cells"],
        json!([ip, "services/default/web"])
    );

    // An IPAddress someone else holds in the range is not handed to a Service.
    server
        .post(
            ips,
            &json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
                    "metadata": {"name": "10.0.0.200"},
                    "spec": {"parentRef": {"group": "gateway.networking.k8s.io",
                                           "resource": "gateways", "name": "edge"}}}),
        )
        .await
        .expect(201);
    watch.expect_event("ADDED", "10.0.0.200").await;
    let reply = server
        .post(
            "/api/v1/namespaces/default/services",
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "taken"},
                    "spec": {"clusterIP": "10.0.0.200", "ports": [{"port": 80}]}}),
        )
        .await;
    reply.expect_status(422, "Invalid");
    assert!(
        reply.message().contains("provided IP is already allocated"),
        "{}",
        reply.message()
    );

    // The Service's delete releases its IPAddress; the other stays.
    server
        .delete("/api/v1/namespaces/default/services/web")
        .await
        .expect(200);
    watch.expect_event("DELETED", &ip).await;
    server
        .get(&format!("{ips}/{ip}"))
        .await
        .expect_status(404, "NotFound");
    server.get(&format!("{ips}/10.0.0.200")).await.expect(200);
}
on_both_stores!(
    the_allocators_ip_addresses_and_the_default_service_cidr_are_served_embedded,
    the_allocators_ip_addresses_and_the_default_service_cidr_are_served_etcd,
    the_allocators_ip_addresses_and_the_default_service_cidr_are_served
);

#[test]
fn kubectl_gets_csidrivers_storageclasses_and_ipaddresses_with_kubes_columns() {
    let server = Kubecache::start();
    let out = create(
        &server,
        "driver.yaml",
        "apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: csi.example.com
spec:
  volumeLifecycleModes: [Persistent, Ephemeral]
  tokenRequests:
  - audience: vault
",
    );
    assert_eq!(
        out.trim(),
        "csidriver.storage.k8s.io/csi.example.com created"
    );
    let out = server.kubectl_ok(&["get", "csidrivers"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "ATTACHREQUIRED",
            "PODINFOONMOUNT",
            "STORAGECAPACITY",
            "TOKENREQUESTS",
            "REQUIRESREPUBLISH",
            "MODES",
            "AGE"
        ],
        "{out}"
    );
    let row: Vec<&str> = lines(&out)[1].split_whitespace().collect();
    assert_eq!(
        row[..7],
        [
            "csi.example.com",
            "true",
            "false",
            "false",
            "vault",
            "false",
            "Persistent,Ephemeral"
        ],
        "{out}"
    );

    // `ip`, kube's short name, finds the allocator's objects.
    create(
        &server,
        "svc.yaml",
        "apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  clusterIP: 10.0.0.10
  ports:
  - port: 80
",
    );
    let out = server.kubectl_ok(&["get", "ip"]);
    assert_eq!(header(&out), ["NAME", "PARENTREF"], "{out}");
    assert!(
        lines(&out)
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["10.0.0.10", "services/default/web"]),
        "{out}"
    );
    // The default StorageClass is printed `NAME (default)`.
    create(
        &server,
        "sc.yaml",
        "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
  annotations:
    storageclass.kubernetes.io/is-default-class: \"true\"
provisioner: ebs.csi.aws.com
volumeBindingMode: WaitForFirstConsumer
",
    );
    let out = server.kubectl_ok(&["get", "sc"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ],
        "{out}"
    );
    let row: Vec<&str> = lines(&out)[1].split_whitespace().collect();
    assert_eq!(
        row[..6],
        [
            "fast",
            "(default)",
            "ebs.csi.aws.com",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ],
        "{out}"
    );
    let out = server.kubectl_ok(&["get", "servicecidrs"]);
    assert_eq!(header(&out), ["NAME", "CIDRS", "AGE"], "{out}");
    assert!(lines(&out)[1].starts_with("kubernetes"), "{out}");
}
