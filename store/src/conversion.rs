//! A CRD's conversion webhook (`conversion.strategy: Webhook`): the [`Converter`] its
//! [`CustomResource`](kubecache_apimachinery::strategy::custom::CustomResource) strategies
//! await, which POSTs a `ConversionReview` over HTTPS to `clientConfig.url` or to
//! `clientConfig.service`, verified against `caBundle`, and checks the answer
//! ([`kubecache_apiextensions::crd::conversion`]).
//!
//! As kube-apiserver: 30 s per call (the CRD API has no timeout field for conversion; kube's
//! client sets 30 s and says so in the URL, `?timeout=30s`), one object per review (kube
//! sends a list's items together), no retry. A service is reached at its cluster IP and the
//! service port named (kube-apiserver's default resolver, `ClusterIPServiceResolver`; the
//! endpoint resolver is only used with `--enable-aggregator-routing`), its certificate
//! checked for `<name>.<namespace>.svc`; an `ExternalName` service at its external name.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use kubecache_admission::outbound::{self, Client, Destination, authority};
use kubecache_apiextensions::crd::conversion::{self, ReviewError, ReviewVersion};
use kubecache_apiextensions::crd::{Crd, ServiceReference};
use kubecache_apimachinery::strategy::custom::Converter;
use serde_json::Value;

use crate::Context;

/// kube's conversion webhook client timeout.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the webhook is.
enum Target {
    /// `clientConfig.url`: host, port, path (with query).
    Url {
        host: String,
        port: u16,
        path: String,
    },
    Service(ServiceReference),
}

/// One CRD's conversion webhook.
pub struct Webhook<C> {
    context: Arc<C>,
    target: Target,
    /// `None`: the CRD names no review version kube supports (every call fails, as kube's).
    review: Option<ReviewVersion>,
    /// Verifies against `caBundle` and keeps its connections; an error when the bundle does
    /// not parse (every call fails).
    client: Result<Client, String>,
}

impl<C: Context + 'static> Webhook<C> {
    /// The webhook of `crd`, when its conversion strategy is `Webhook`.
    pub fn of(context: Arc<C>, crd: &Crd) -> Option<Webhook<C>> {
        if crd.conversion.strategy != "Webhook" {
            return None;
        }
        let webhook = crd.conversion.webhook.as_ref()?;
        let config = webhook.client_config.as_ref()?;
        let target = match (&config.url, &config.service) {
            (Some(url), _) => parse_url(url),
            (None, Some(service)) => Target::Service(service.clone()),
            (None, None) => return None,
        };
        Some(Webhook {
            context,
            target,
            review: ReviewVersion::choose(&webhook.conversion_review_versions),
            client: outbound::tls_config(config.ca_bundle.as_deref()).map(Client::new),
        })
    }

    /// Where to connect, the name the certificate must carry, and the URL kube would name.
    async fn resolve(&self) -> Result<(String, u16, String, String, String), String> {
        match &self.target {
            Target::Url { host, port, path } => {
                let url = format!("https://{}{path}", authority(host, *port));
                Ok((host.clone(), *port, host.clone(), path.clone(), url))
            }
            Target::Service(service) => {
                let path = service.path.clone().unwrap_or_default();
                let server_name = format!("{}.{}.svc", service.name, service.namespace);
                let port = u16::try_from(service.port).map_err(|_| "invalid port".to_string())?;
                let url = format!("https://{}{path}", authority(&server_name, port));
                let host = self
                    .service_host(service)
                    .await
                    .map_err(|e| format!("Post {url:?}: {e}"))?;
                Ok((host, port, server_name, path, url))
            }
        }
    }

    /// kube's `ClusterIPServiceResolver`: the service's cluster IP (its external name for an
    /// `ExternalName` service), after checking it has the port.
    async fn service_host(&self, service: &ServiceReference) -> Result<String, String> {
        let services = self
            .context
            .registry()
            .lookup("", "v1", "services")
            .ok_or("services are not served")?;
        let key = self
            .context
            .object_key(&services, Some(&service.namespace), &service.name);
        let not_found = || format!("service \"{}\" not found", service.name);
        let kv = self
            .context
            .backend()
            .get(&key)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(not_found)?;
        let object: Value = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
        let spec = &object["spec"];
        if spec["type"] == "ExternalName" {
            return Ok(spec["externalName"]
                .as_str()
                .unwrap_or_default()
                .to_string());
        }
        let has_port = spec["ports"]
            .as_array()
            .is_some_and(|ports| ports.iter().any(|p| p["port"] == service.port));
        if !has_port {
            return Err(format!(
                "no service port {} found for service {:?}",
                service.port, service.name
            ));
        }
        match spec["clusterIP"].as_str() {
            Some(ip) if !ip.is_empty() && ip != "None" => Ok(ip.to_string()),
            _ => Err(format!("service {:?} has no cluster IP", service.name)),
        }
    }

    /// The review POSTed and its answer's body; the error names the URL as kube's client does.
    async fn call(&self, review: &Value) -> Result<Bytes, String> {
        let (host, port, server_name, path, url) = self.resolve().await?;
        let url = format!(
            "{url}{}timeout=30s",
            if url.contains('?') { '&' } else { '?' }
        );
        let post = |e: String| format!("Post {url:?}: {e}");
        let client = self.client.as_ref().map_err(|e| post(e.clone()))?;
        let body = serde_json::to_vec(review).expect("a JSON value always serializes");
        let path = if path.is_empty() { "/" } else { path.as_str() };
        let separator = if path.contains('?') { '&' } else { '?' };
        let destination = Destination {
            host,
            port,
            server_name,
        };
        let answer = client
            .post_json(
                &destination,
                &format!("{path}{separator}timeout=30s"),
                Bytes::from(body),
                TIMEOUT,
            )
            .await
            .map_err(post)?;
        if !answer.status.is_success() {
            let bytes = &answer.body;
            return Err(post(format!(
                "the server responded with the status code {} ({})",
                answer.status.as_u16(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(256)])
            )));
        }
        Ok(answer.body)
    }
}

impl<C: Context + 'static> Converter for Webhook<C> {
    fn convert(&self, object: Value, desired: String) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            let gvk = format!(
                "{}, Kind={}",
                object["apiVersion"].as_str().unwrap_or_default(),
                object["kind"].as_str().unwrap_or_default()
            );
            let Some(version) = self.review else {
                return Err("no supported conversion review versions".to_string());
            };
            let uid = uuid::Uuid::new_v4().to_string();
            let objects = [object];
            let review = conversion::review_request(version, &uid, &desired, &objects);
            let body = self
                .call(&review)
                .await
                .map_err(|e| ReviewError::Call(e).message(&gvk))?;
            let converted = conversion::review_response(version, &body, &uid, &desired, &objects)
                .map_err(|e| e.message(&gvk))?;
            converted
                .into_iter()
                .next()
                .ok_or_else(|| format!("conversion webhook for {gvk} returned no object"))
        })
    }
}

/// `https://host[:port][/path]` (validated with the CRD); the port defaults to 443.
fn parse_url(url: &str) -> Target {
    let (host, port, path) = outbound::parse_https_url(url);
    Target::Url { host, port, path }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_and_path() {
        let Target::Url { host, port, path } = parse_url("https://127.0.0.1:8443/convert?x=1")
        else {
            panic!("a URL");
        };
        assert_eq!(
            (host.as_str(), port, path.as_str()),
            ("127.0.0.1", 8443, "/convert?x=1")
        );
    }
}
