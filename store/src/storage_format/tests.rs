use kubecache_apiextensions::fixtures::kube_storage;
use kubecache_core::storage::CorruptValue;
use kubecache_storage::embedded::EmbeddedBackend;
use prost::Message as _;
use serde_json::json;

use super::*;

fn samples() -> Vec<Value> {
    serde_json::from_str(include_str!(
        "../../../apimachinery/src/protobuf/samples.json"
    ))
    .expect("samples.json is JSON")
}

/// A decorated in-memory store and the store beneath it (the bytes "in etcd").
fn stores(format: StorageFormat) -> (FormattedBackend, Arc<dyn Backend>) {
    let raw: Arc<dyn Backend> = Arc::new(EmbeddedBackend::in_memory());
    (FormattedBackend::new(raw.clone(), "/registry", format), raw)
}

fn bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap())
}

async fn raw_value(raw: &Arc<dyn Backend>, key: &str) -> Bytes {
    raw.get(key).await.unwrap().unwrap().value
}

fn corrupt_keys(err: StorageError) -> Vec<String> {
    match err {
        StorageError::Corrupt(values) => values.into_iter().map(|v| v.key).collect(),
        other => panic!("not a corrupt-value error: {other:?}"),
    }
}

macro_rules! prost_kinds {
    ($($version:literal $kind:literal => $ty:ty),* $(,)?) => {
        /// `raw` decoded by k8s-pb's message for the kind and encoded again by prost.
        fn through_prost(api_version: &str, kind: &str, raw: &[u8]) -> Option<Vec<u8>> {
            match (api_version, kind) {
                $(($version, $kind) => Some(
                    <$ty>::decode(raw)
                        .unwrap_or_else(|e| panic!("{api_version} {kind}: k8s-pb: {e}"))
                        .encode_to_vec(),
                ),)*
                _ => None,
            }
        }
    };
}

prost_kinds! {
    "v1" "ConfigMap" => k8s_pb::api::core::v1::ConfigMap,
    "v1" "Endpoints" => k8s_pb::api::core::v1::Endpoints,
    "v1" "Event" => k8s_pb::api::core::v1::Event,
    "v1" "LimitRange" => k8s_pb::api::core::v1::LimitRange,
    "v1" "Namespace" => k8s_pb::api::core::v1::Namespace,
    "v1" "Node" => k8s_pb::api::core::v1::Node,
    "v1" "PersistentVolume" => k8s_pb::api::core::v1::PersistentVolume,
    "v1" "PersistentVolumeClaim" => k8s_pb::api::core::v1::PersistentVolumeClaim,
    "v1" "Pod" => k8s_pb::api::core::v1::Pod,
    "v1" "PodTemplate" => k8s_pb::api::core::v1::PodTemplate,
    "v1" "ReplicationController" => k8s_pb::api::core::v1::ReplicationController,
    "v1" "ResourceQuota" => k8s_pb::api::core::v1::ResourceQuota,
    "v1" "Secret" => k8s_pb::api::core::v1::Secret,
    "v1" "Service" => k8s_pb::api::core::v1::Service,
    "v1" "ServiceAccount" => k8s_pb::api::core::v1::ServiceAccount,
    "admissionregistration.k8s.io/v1" "MutatingWebhookConfiguration" =>
        k8s_pb::api::admissionregistration::v1::MutatingWebhookConfiguration,
    "admissionregistration.k8s.io/v1" "ValidatingWebhookConfiguration" =>
        k8s_pb::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    "admissionregistration.k8s.io/v1" "ValidatingAdmissionPolicy" =>
        k8s_pb::api::admissionregistration::v1::ValidatingAdmissionPolicy,
    "admissionregistration.k8s.io/v1" "ValidatingAdmissionPolicyBinding" =>
        k8s_pb::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
    "apiextensions.k8s.io/v1" "CustomResourceDefinition" =>
        k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    "apiregistration.k8s.io/v1" "APIService" =>
        k8s_pb::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
    "apps/v1" "ControllerRevision" => k8s_pb::api::apps::v1::ControllerRevision,
    "apps/v1" "DaemonSet" => k8s_pb::api::apps::v1::DaemonSet,
    "apps/v1" "Deployment" => k8s_pb::api::apps::v1::Deployment,
    "apps/v1" "ReplicaSet" => k8s_pb::api::apps::v1::ReplicaSet,
    "apps/v1" "StatefulSet" => k8s_pb::api::apps::v1::StatefulSet,
    "autoscaling/v2" "HorizontalPodAutoscaler" =>
        k8s_pb::api::autoscaling::v2::HorizontalPodAutoscaler,
    "batch/v1" "CronJob" => k8s_pb::api::batch::v1::CronJob,
    "batch/v1" "Job" => k8s_pb::api::batch::v1::Job,
    "certificates.k8s.io/v1" "CertificateSigningRequest" =>
        k8s_pb::api::certificates::v1::CertificateSigningRequest,
    "coordination.k8s.io/v1" "Lease" => k8s_pb::api::coordination::v1::Lease,
    "discovery.k8s.io/v1" "EndpointSlice" => k8s_pb::api::discovery::v1::EndpointSlice,
    "events.k8s.io/v1" "Event" => k8s_pb::api::events::v1::Event,
    "flowcontrol.apiserver.k8s.io/v1" "FlowSchema" => k8s_pb::api::flowcontrol::v1::FlowSchema,
    "flowcontrol.apiserver.k8s.io/v1" "PriorityLevelConfiguration" =>
        k8s_pb::api::flowcontrol::v1::PriorityLevelConfiguration,
    "networking.k8s.io/v1" "IPAddress" => k8s_pb::api::networking::v1::IPAddress,
    "networking.k8s.io/v1" "Ingress" => k8s_pb::api::networking::v1::Ingress,
    "networking.k8s.io/v1" "IngressClass" => k8s_pb::api::networking::v1::IngressClass,
    "networking.k8s.io/v1" "NetworkPolicy" => k8s_pb::api::networking::v1::NetworkPolicy,
    "networking.k8s.io/v1" "ServiceCIDR" => k8s_pb::api::networking::v1::ServiceCIDR,
    "node.k8s.io/v1" "RuntimeClass" => k8s_pb::api::node::v1::RuntimeClass,
    "policy/v1" "PodDisruptionBudget" => k8s_pb::api::policy::v1::PodDisruptionBudget,
    "rbac.authorization.k8s.io/v1" "ClusterRole" => k8s_pb::api::rbac::v1::ClusterRole,
    "rbac.authorization.k8s.io/v1" "ClusterRoleBinding" =>
        k8s_pb::api::rbac::v1::ClusterRoleBinding,
    "rbac.authorization.k8s.io/v1" "Role" => k8s_pb::api::rbac::v1::Role,
    "rbac.authorization.k8s.io/v1" "RoleBinding" => k8s_pb::api::rbac::v1::RoleBinding,
    "scheduling.k8s.io/v1" "PriorityClass" => k8s_pb::api::scheduling::v1::PriorityClass,
    "storage.k8s.io/v1" "CSIDriver" => k8s_pb::api::storage::v1::CSIDriver,
    "storage.k8s.io/v1" "CSINode" => k8s_pb::api::storage::v1::CSINode,
    "storage.k8s.io/v1" "CSIStorageCapacity" => k8s_pb::api::storage::v1::CSIStorageCapacity,
    "storage.k8s.io/v1" "StorageClass" => k8s_pb::api::storage::v1::StorageClass,
    "storage.k8s.io/v1" "VolumeAttachment" => k8s_pb::api::storage::v1::VolumeAttachment,
}

/// Every stored built-in resource, written in its storage version through the storage
/// boundary: the bytes at rest are kube's envelope of that version, k8s-pb's message for the
/// kind reads them field for field (what prost writes back decodes to the same object), and
/// they read back as the object written.
#[tokio::test]
async fn every_builtin_kind_is_stored_as_kubes_protobuf() {
    let (store, raw) = stores(StorageFormat::default());
    let registry = Registry::builtin();
    let samples = samples();
    let mut checked = Vec::new();
    for resource in registry.snapshot().iter().filter(|r| r.is_stored()) {
        let stored = resource.stored().info().clone();
        if checked.contains(&stored.storage_path) {
            continue;
        }
        checked.push(stored.storage_path.clone());
        let (api_version, kind) = (stored.api_version(), stored.kind.clone());
        let mut sample = samples
            .iter()
            .find(|s| s["apiVersion"] == api_version.as_str() && s["kind"] == kind.as_str())
            .unwrap_or_else(|| panic!("no sample of {api_version} {kind}"))
            .clone();
        sample["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        let namespace = sample["metadata"]["namespace"].as_str();
        let name = sample["metadata"]["name"].as_str().unwrap();
        let key = stored.object_key("/registry", namespace.filter(|_| stored.namespaced), name);
        let written = store.create(&key, bytes(&sample)).await.unwrap();

        let at_rest = raw_value(&raw, &key).await;
        assert!(
            at_rest.starts_with(protobuf::MAGIC),
            "{kind} is not protobuf"
        );
        let envelope = protobuf::open_envelope(&at_rest).unwrap();
        assert_eq!(
            (envelope.api_version.as_str(), envelope.kind.as_str()),
            (api_version.as_str(), kind.as_str())
        );
        let again = through_prost(&api_version, &kind, envelope.raw)
            .unwrap_or_else(|| panic!("no k8s-pb message listed for {api_version} {kind}"));
        let message = protobuf::message_for(&api_version, &kind).unwrap();
        assert_eq!(
            protobuf::transcode::decode(message, &again).unwrap(),
            protobuf::transcode::decode(message, envelope.raw).unwrap(),
            "{kind}: k8s-pb does not read what was stored"
        );

        let read = store.get(&key).await.unwrap().unwrap();
        assert_eq!(
            read.value, written.value,
            "{kind}: a read is what the write returned"
        );
        let read: Value = serde_json::from_slice(&read.value).unwrap();
        // As the Store writes it: defaulted, typed.
        let mut defaulted = sample.clone();
        resource
            .stored()
            .strategy()
            .default(&mut defaulted, &READ_DEFAULTS);
        let (typed, _) = typed::normalize(resource.stored(), defaulted).unwrap();
        assert_eq!(read, typed, "{kind}: does not read back in its typed form");
    }
    assert!(checked.len() > 40, "only {} resources", checked.len());
}

#[tokio::test]
async fn json_media_type_and_custom_resources_store_json() {
    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}});
    let (store, raw) = stores(StorageFormat {
        media_type: MediaType::Json,
        encryption: None,
    });
    store
        .create("/registry/pods/n/p", bytes(&pod))
        .await
        .unwrap();
    assert_eq!(raw_value(&raw, "/registry/pods/n/p").await, bytes(&pod));

    let (store, raw) = stores(StorageFormat::default());
    let widget =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    store
        .create("/registry/example.com/widgets/w", bytes(&widget))
        .await
        .unwrap();
    assert_eq!(
        raw_value(&raw, "/registry/example.com/widgets/w").await,
        bytes(&widget)
    );
    // Either encoding reads, whatever the writer's setting.
    raw.create("/registry/pods/n/json", bytes(&pod))
        .await
        .unwrap();
    let read = store.get("/registry/pods/n/json").await.unwrap().unwrap();
    assert_eq!(read.value, bytes(&pod));
}

/// The values kube-apiserver wrote (../shared/fixtures/kube-storage) read as their objects.
#[tokio::test]
async fn values_written_by_kube_apiserver_read() {
    let (store, raw) = stores(StorageFormat::default());
    for (key, bin, json) in [
        ("/registry/pods/default/pi-dqtsw", "pod.bin", "pod.json"),
        ("/registry/jobs/default/pi", "job.bin", "job.json"),
    ] {
        raw.create(key, Bytes::from(kube_storage(bin)))
            .await
            .unwrap();
        let read = store.get(key).await.unwrap().unwrap();
        let read: Value = serde_json::from_slice(&read.value).unwrap();
        let expected: Value = serde_json::from_slice(&kube_storage(json)).unwrap();
        assert_eq!(read["metadata"]["uid"], expected["metadata"]["uid"]);
        assert_eq!(read["metadata"]["labels"], expected["metadata"]["labels"]);
        assert_eq!(read["status"]["startTime"], expected["status"]["startTime"]);
        assert_eq!(
            read["spec"]["template"]["spec"]["containers"][0]["command"],
            expected["spec"]["template"]["spec"]["containers"][0]["command"]
        );
    }
}

#[tokio::test]
async fn corrupt_values_fail_reads_naming_their_keys() {
    let (store, raw) = stores(StorageFormat::default());
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "n"}});
    store
        .create("/registry/configmaps/n/good", bytes(&cm("good")))
        .await
        .unwrap();
    let bad_rev = raw
        .create(
            "/registry/configmaps/n/bad",
            Bytes::from_static(b"k8s\0\x0a\xff\xff"),
        )
        .await
        .unwrap()
        .mod_revision;
    raw.create("/registry/configmaps/n/text", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    store
        .create("/registry/secrets/n/fine", bytes(&cm("fine")))
        .await
        .unwrap();

    let err = store.get("/registry/configmaps/n/bad").await.unwrap_err();
    let StorageError::Corrupt(values) = &err else {
        panic!("{err:?}")
    };
    let [CorruptValue { key, reason, .. }] = values.as_slice() else {
        panic!("{values:?}")
    };
    assert_eq!(key, "/registry/configmaps/n/bad");
    assert!(
        reason.starts_with(&format!("object not decodable revision={bad_rev}:")),
        "{reason}"
    );
    assert!(err.to_string().contains("Key: /registry/configmaps/n/bad"));

    let listed = store
        .list(ListOptions {
            prefix: "/registry/configmaps/".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        corrupt_keys(listed),
        ["/registry/configmaps/n/bad", "/registry/configmaps/n/text"]
    );
    // Other resources are untouched.
    let secrets = store
        .list(ListOptions {
            prefix: "/registry/secrets/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(secrets.kvs.len(), 1);
    assert!(
        decode_error_counts()
            .iter()
            .any(|(resource, n)| resource == "configmaps" && *n >= 3)
    );

    // A watch that meets one ends with the error.
    let mut events = store.watch("/registry/configmaps/", 1).await.unwrap();
    assert!(matches!(
        events.next().await,
        Some(Ok(StorageEvent::Put { .. }))
    ));
    assert_eq!(
        corrupt_keys(events.next().await.unwrap().unwrap_err()),
        ["/registry/configmaps/n/bad"]
    );
    assert!(events.next().await.is_none());

    // Deleting it works; what it held is not handed back.
    let deleted = store
        .delete("/registry/configmaps/n/bad", None)
        .await
        .unwrap();
    assert!(deleted.prev.value.is_empty());
}

const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY2: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=";

fn encrypting(providers: &str) -> StorageFormat {
    let config = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n{providers}"
    );
    StorageFormat {
        media_type: MediaType::Protobuf,
        encryption: Some(Arc::new(EncryptionConfig::parse(&config).unwrap())),
    }
}

#[tokio::test]
async fn secrets_are_encrypted_rotated_and_rewritten() {
    let key1 = format!("  - aescbc:\n      keys:\n      - name: key1\n        secret: {KEY1}\n");
    let key2 = format!("  - aescbc:\n      keys:\n      - name: key2\n        secret: {KEY2}\n");
    let raw: Arc<dyn Backend> = Arc::new(EmbeddedBackend::in_memory());
    let with = |format| FormattedBackend::new(raw.clone(), "/registry", format);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "data": {"k": "dmFsdWU="}});
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}});

    let first = with(encrypting(&key1));
    first
        .create("/registry/secrets/n/s", bytes(&secret))
        .await
        .unwrap();
    first
        .create("/registry/configmaps/n/c", bytes(&cm))
        .await
        .unwrap();
    assert!(
        raw_value(&raw, "/registry/secrets/n/s")
            .await
            .starts_with(b"k8s:enc:aescbc:v1:key1:")
    );
    assert!(
        raw_value(&raw, "/registry/configmaps/n/c")
            .await
            .starts_with(protobuf::MAGIC)
    );

    // Rotation: key2 first, key1 still read; rewrite; then key1 removed.
    let rotating = with(encrypting(&format!("{key2}{key1}")));
    let read = rotating
        .get("/registry/secrets/n/s")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&read.value).unwrap()["data"],
        secret["data"]
    );
    let done = rotating.rewrite("/registry/secrets/").await.unwrap();
    assert_eq!((done.rewritten, done.unreadable.len()), (1, 0));
    assert!(
        raw_value(&raw, "/registry/secrets/n/s")
            .await
            .starts_with(b"k8s:enc:aescbc:v1:key2:")
    );
    let rotated = with(encrypting(&key2));
    assert!(
        rotated
            .get("/registry/secrets/n/s")
            .await
            .unwrap()
            .is_some()
    );

    // A server without the key cannot read the value: a corrupt object, not an empty one.
    let err = first.get("/registry/secrets/n/s").await.unwrap_err();
    let StorageError::Corrupt(values) = err else {
        panic!()
    };
    assert!(
        values[0]
            .reason
            .starts_with("data from the storage is not transformable"),
        "{}",
        values[0].reason
    );
    // Nor can one without encryption configured.
    let plain = with(StorageFormat::default());
    assert!(plain.get("/registry/secrets/n/s").await.is_err());
}

#[test]
fn media_types() {
    assert_eq!(
        MediaType::parse("application/vnd.kubernetes.protobuf"),
        Ok(MediaType::Protobuf)
    );
    assert_eq!(MediaType::parse("application/json"), Ok(MediaType::Json));
    assert!(MediaType::parse("application/yaml").is_err());
}
