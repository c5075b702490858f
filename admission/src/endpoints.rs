//! A Service reference (`namespace`, `name`, `port`) to one ready endpoint `address:port`,
//! as kube-apiserver resolves it with `--enable-aggregator-routing` (its
//! `EndpointServiceResolver`): kubecache runs no kube-proxy, so a cluster IP would lead
//! nowhere. The Service's port is found by number, its `targetPort` (a number, or a name
//! looked up among the endpoints' ports) gives the endpoint port; the endpoints come from the
//! Service's EndpointSlices (label `kubernetes.io/service-name`), or from its legacy Endpoints
//! object when it has no slice. An `ExternalName` Service resolves to its external name.
//!
//! Used by admission webhooks; written for any caller holding an admission [`Context`] (the
//! aggregation proxy too).

use std::sync::Arc;

use kubecache_cache::{Filter, ListRequest, ReadAt};
use kubecache_core::selector::LabelSelector;
use serde_json::Value;

use crate::{Context, read_object};

/// The label an EndpointSlice names its Service by.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A ready endpoint of `namespace/name`'s port `port`: `(address, port)`. The error reads as
/// kube's resolver's.
pub async fn resolve(
    context: &dyn Context,
    namespace: &str,
    name: &str,
    port: i64,
) -> Result<(String, u16), String> {
    let service = read_object(context, "", "v1", "services", Some(namespace), name)
        .await
        .map_err(|e| e.message)?
        .ok_or_else(|| format!("service \"{name}\" not found"))?;
    let spec = &service["spec"];
    if spec["type"] == "ExternalName" {
        let host = spec["externalName"].as_str().unwrap_or_default();
        return Ok((host.to_string(), to_port(port)?));
    }
    let service_port = spec["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["port"] == port))
        .ok_or_else(|| format!("no service port {port} found for service \"{name}\""))?;
    let port_name = service_port["name"].as_str().unwrap_or_default();
    let target = match &service_port["targetPort"] {
        Value::Null => TargetPort::Number(port),
        Value::Number(n) => TargetPort::Number(n.as_i64().unwrap_or(port)),
        Value::String(s) => match s.parse::<i64>() {
            Ok(n) => TargetPort::Number(n),
            Err(_) => TargetPort::Name(s.clone()),
        },
        _ => TargetPort::Number(port),
    };
    let candidates = match from_slices(context, namespace, name, port_name, &target).await? {
        Some(found) => found,
        None => from_endpoints(context, namespace, name, port_name, &target).await?,
    };
    pick(&candidates)
        .cloned()
        .ok_or_else(|| format!("no endpoints available for service \"{name}\""))
}

/// What the Service's port forwards to.
enum TargetPort {
    Number(i64),
    /// A container port's name, found among the endpoints' ports.
    Name(String),
}

impl TargetPort {
    /// The endpoint port among `ports` (each with `name` and `port`): the one named like the
    /// Service's port (as the endpoints controller names them), else by target.
    fn find(&self, service_port_name: &str, ports: &[Value]) -> Option<u16> {
        let by_name = ports
            .iter()
            .find(|p| p["name"].as_str().unwrap_or_default() == service_port_name);
        let chosen = by_name.or_else(|| match self {
            TargetPort::Number(n) => ports.iter().find(|p| p["port"] == *n),
            TargetPort::Name(name) => ports.iter().find(|p| p["name"] == name.as_str()),
        })?;
        chosen["port"].as_u64().and_then(|p| u16::try_from(p).ok())
    }
}

fn to_port(port: i64) -> Result<u16, String> {
    u16::try_from(port).map_err(|_| format!("invalid port {port}"))
}

/// The ready endpoints of the Service's EndpointSlices; `None` when it has no slice.
async fn from_slices(
    context: &dyn Context,
    namespace: &str,
    name: &str,
    port_name: &str,
    target: &TargetPort,
) -> Result<Option<Vec<(String, u16)>>, String> {
    let Some(slices) = context
        .registry()
        .lookup("discovery.k8s.io", "v1", "endpointslices")
    else {
        return Ok(None);
    };
    let labels =
        LabelSelector::parse(&format!("{SERVICE_NAME_LABEL}={name}")).map_err(|e| e.message)?;
    let listed = context
        .reads()
        .list(ListRequest {
            resource: slices.info().clone(),
            prefix: context.storage_prefix(&slices),
            start_key: None,
            limit: None,
            at: ReadAt::Any,
            filter: Arc::new(Filter {
                namespace: Some(namespace.to_string()),
                labels,
                ..Filter::default()
            }),
            remaining_hint: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    if listed.objects.is_empty() {
        return Ok(None);
    }
    let mut found = Vec::new();
    for object in &listed.objects {
        let slice: Value = serde_json::from_slice(&object.kv.value).map_err(|e| e.to_string())?;
        let ports = slice["ports"].as_array().cloned().unwrap_or_default();
        let Some(port) = target.find(port_name, &ports) else {
            continue;
        };
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            // kube: a missing `ready` condition means ready.
            if endpoint.pointer("/conditions/ready") == Some(&Value::Bool(false)) {
                continue;
            }
            if let Some(address) = endpoint["addresses"][0].as_str() {
                found.push((address.to_string(), port));
            }
        }
    }
    Ok(Some(found))
}

/// The ready addresses of the Service's legacy Endpoints object.
async fn from_endpoints(
    context: &dyn Context,
    namespace: &str,
    name: &str,
    port_name: &str,
    target: &TargetPort,
) -> Result<Vec<(String, u16)>, String> {
    let Some(endpoints) = read_object(context, "", "v1", "endpoints", Some(namespace), name)
        .await
        .map_err(|e| e.message)?
    else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        let ports = subset["ports"].as_array().cloned().unwrap_or_default();
        let Some(port) = target.find(port_name, &ports) else {
            continue;
        };
        for address in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = address["ip"].as_str() {
                found.push((ip.to_string(), port));
            }
        }
    }
    Ok(found)
}

/// One of the endpoints, spread over calls as kube's random choice is.
fn pick(candidates: &[(String, u16)]) -> Option<&(String, u16)> {
    if candidates.is_empty() {
        return None;
    }
    let spread = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or_default();
    candidates.get(spread % candidates.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_endpoint_port_is_found_by_service_port_name_then_target() {
        let ports = vec![
            json!({"name": "metrics", "port": 9090}),
            json!({"name": "https", "port": 8443}),
        ];
        assert_eq!(TargetPort::Number(443).find("https", &ports), Some(8443));
        assert_eq!(TargetPort::Number(9090).find("", &ports), Some(9090));
        assert_eq!(
            TargetPort::Name("metrics".into()).find("", &ports),
            Some(9090)
        );
        assert_eq!(TargetPort::Number(1).find("", &ports), None);
    }
}
