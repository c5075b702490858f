//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod binary;
pub mod kubectl;
pub mod kubelet;
pub mod pki;
pub mod secured;
pub mod server;

/// Runs `$scenario(&TestServer)` as two tests: `$embedded` over the embedded store and
/// `$etcd` over a real etcd the test starts.
macro_rules! on_both_stores {
    ($embedded:ident, $etcd:ident, $scenario:ident) => {
        #[tokio::test]
        async fn $embedded() {
            $scenario(&$crate::support::server::TestServer::start().await).await;
        }

        #[tokio::test]
        async fn $etcd() {
            let etcd = kubecache_storage::testing::TestEtcd::start();
            $scenario(&$crate::support::server::TestServer::start_on_etcd(&etcd).await).await;
        }
    };
}

/// The protobuf samples (`apimachinery/src/protobuf/samples.json`), as the tests that create
/// every kind over HTTP can write them. The CustomResourceDefinition sample exercises every
/// field of `JSONSchemaProps` for the transcoder, including two kube refuses in a CRD
/// (`dependencies`, and `items` as a list of schemas: not structural); they are dropped here
/// so the CRD passes kube's validation like any real one. ComponentStatuses are computed,
/// never created: their sample is left out.
pub fn creatable_samples() -> Vec<serde_json::Value> {
    let mut samples: Vec<serde_json::Value> = serde_json::from_str(include_str!(
        "../../../../apimachinery/src/protobuf/samples.json"
    ))
    .expect("samples.json is JSON");
    samples.retain(|sample| sample["kind"] != "ComponentStatus");
    for sample in &mut samples {
        if sample["kind"] != "CustomResourceDefinition" {
            continue;
        }
        for version in sample["spec"]["versions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            let spec = &mut version["schema"]["openAPIV3Schema"]["properties"]["spec"];
            if let Some(spec) = spec.as_object_mut() {
                spec.remove("dependencies");
            }
            if let Some(properties) = spec["properties"].as_object_mut() {
                properties.remove("tuple");
            }
        }
    }
    samples
}

/// The name of a copy of a sample, distinct per `prefix`: `prefix-name`, but for an IPAddress,
/// whose name must be its IP: the sample's IPv4 with its third octet taken from the prefix.
pub fn prefixed_name(kind: &str, name: &str, prefix: &str) -> String {
    if kind != "IPAddress" {
        return format!("{prefix}-{name}");
    }
    let octet = prefix.bytes().fold(0u8, |sum, b| sum.wrapping_add(b));
    let mut parts: Vec<String> = name.split('.').map(str::to_string).collect();
    assert_eq!(
        parts.len(),
        4,
        "the IPAddress sample is named by an IPv4: {name}"
    );
    parts[2] = octet.to_string();
    parts.join(".")
}
