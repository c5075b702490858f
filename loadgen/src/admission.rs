//! The `admission` scenario: pod creates through the admission chain, phase by phase in one
//! run, so every figure has its no-webhook baseline beside it: no webhook, one validating
//! webhook, three, a ResourceQuota in the namespace (charged once quota admission is in the
//! chain), and no webhook again (how much the server drifted during the run).
//!
//! The webhooks are served by the loadgen itself, HTTPS on loopback with a certificate it
//! makes at start (its CA in the configurations' `caBundle`): they parse the review and
//! allow it, so a phase's cost is the server's — encoding the review, the round trip over a
//! kept connection, reading the answer. Each webhook counts its reviews: a phase must see one
//! per create per webhook, which checks the configuration applied to the whole phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{Value, json};

use crate::accounting::{histogram, record_ns};
use crate::backend::{Backend, Kube};

/// What to run.
pub struct Plan {
    /// Workers creating pods back to back.
    pub concurrency: u32,
    /// Seconds per phase.
    pub duration: Duration,
    pub cleanup: bool,
}

/// One phase's outcome.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub webhooks: u32,
    pub creates: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Reviews the loadgen's webhooks answered during the phase.
    pub reviews: u64,
}

/// Seconds a new configuration is given to reach the server's watch cache before a phase.
const SETTLE: Duration = Duration::from_millis(1500);

pub async fn run(kube: Arc<Kube>, plan: Plan) -> Result<Vec<Phase>, String> {
    let backend = Backend::Kube(kube.clone());
    backend.prepare().await.map_err(|e| e.to_string())?;
    let webhook = LoopbackWebhook::start().await?;
    let run = kube.naming.run.clone();
    let namespace = kube.naming.namespace.clone();
    let next_pod = Arc::new(AtomicU32::new(0));
    let mut phases = Vec::new();
    let configurations = |count: u32| -> Vec<String> {
        (0..count)
            .map(|i| format!("kubecache-loadgen-{run}-{i}"))
            .collect()
    };
    for (name, hooks, quota) in [
        ("no webhook", 0, false),
        ("1 validating webhook", 1, false),
        ("3 validating webhooks", 3, false),
        ("ResourceQuota in the namespace", 0, true),
        ("no webhook (again)", 0, false),
    ] {
        for (i, configuration) in configurations(hooks).iter().enumerate() {
            let body = webhook.configuration(configuration, i, &run);
            post(&kube, VALIDATING, &body).await?;
        }
        let quota_path = format!("/api/v1/namespaces/{namespace}/resourcequotas");
        if quota {
            let body = json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": format!("kubecache-loadgen-{run}")},
                "spec": {"hard": {"pods": "1000000"}}});
            post(&kube, &quota_path, &body).await?;
        }
        if hooks > 0 || quota {
            tokio::time::sleep(SETTLE).await;
        }
        let reviews_before = webhook.reviews.load(Ordering::Relaxed);
        let mut phase = create_pods(&backend, &plan, &next_pod).await;
        phase.name = name.to_string();
        phase.webhooks = hooks;
        phase.reviews = webhook.reviews.load(Ordering::Relaxed) - reviews_before;
        eprintln!(
            "kubecache-loadgen: {name}: {:.0} creates/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, {} reviews",
            phase.per_second, phase.p50_ms, phase.p99_ms, phase.errors, phase.reviews
        );
        phases.push(phase);
        for configuration in configurations(hooks) {
            delete(&kube, &format!("{VALIDATING}/{configuration}")).await?;
        }
        if quota {
            delete(&kube, &format!("{quota_path}/kubecache-loadgen-{run}")).await?;
        }
        if hooks > 0 || quota {
            tokio::time::sleep(SETTLE).await;
        }
    }
    // Best effort: the figures stand even if deleting every pod takes longer than a request.
    if plan.cleanup
        && let Err(e) = backend.cleanup().await
    {
        eprintln!("kubecache-loadgen: cleanup: {e}");
    }
    Ok(phases)
}

const VALIDATING: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";

async fn post(kube: &Kube, path: &str, body: &Value) -> Result<(), String> {
    kube.client
        .call(
            None,
            Method::POST,
            path,
            Some(("application/json", Bytes::from(body.to_string()))),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("POST {path}: {e}"))
}

async fn delete(kube: &Kube, path: &str) -> Result<(), String> {
    kube.client
        .call(None, Method::DELETE, path, None)
        .await
        .map(|_| ())
        .map_err(|e| format!("DELETE {path}: {e}"))
}

/// `plan.concurrency` workers creating pods back to back for `plan.duration`.
async fn create_pods(backend: &Backend, plan: &Plan, next_pod: &Arc<AtomicU32>) -> Phase {
    let started = Instant::now();
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..plan.concurrency {
        let (backend, next_pod, errors) = (backend.clone(), next_pod.clone(), errors.clone());
        let duration = plan.duration;
        workers.push(tokio::spawn(async move {
            let mut latencies = histogram();
            while started.elapsed() < duration {
                let pod = next_pod.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                match backend.create(pod % 100, pod, 0).await {
                    Ok(_) => record_ns(&mut latencies, sent.elapsed().as_nanos() as u64),
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("kubecache-loadgen: create: {e}");
                        }
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = histogram();
    for worker in workers {
        if let Ok(h) = worker.await {
            latencies.add(&h).expect("same histogram bounds");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    Phase {
        name: String::new(),
        webhooks: 0,
        creates: latencies.len(),
        errors: errors.load(Ordering::Relaxed),
        per_second: latencies.len() as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        reviews: 0,
    }
}

/// A validating webhook served by the loadgen: allows every review, counts them.
struct LoopbackWebhook {
    port: u16,
    ca_bundle: String,
    reviews: Arc<AtomicU64>,
}

impl LoopbackWebhook {
    async fn start() -> Result<LoopbackWebhook, String> {
        let text = |e: &dyn std::fmt::Display| e.to_string();
        let ca_key = rcgen::KeyPair::generate().map_err(|e| text(&e))?;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| text(&e))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kubecache-loadgen webhook CA");
        let ca = ca_params.self_signed(&ca_key).map_err(|e| text(&e))?;
        let key = rcgen::KeyPair::generate().map_err(|e| text(&e))?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| text(&e))?;
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(|e| text(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| text(&e))?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .map_err(|e| text(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| text(&e))?;
        let port = listener.local_addr().map_err(|e| text(&e))?.port();
        let reviews = Arc::new(AtomicU64::new(0));
        let counted = reviews.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let counted = counted.clone();
                            async move {
                                let body = request.into_body().collect().await?.to_bytes();
                                let review: Value =
                                    serde_json::from_slice(&body).unwrap_or_default();
                                counted.fetch_add(1, Ordering::Relaxed);
                                let answer = json!({
                                    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                    "response": {"uid": review["request"]["uid"], "allowed": true},
                                });
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                                    answer.to_string(),
                                ))))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(LoopbackWebhook {
            port,
            ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca.pem()),
            reviews,
        })
    }

    /// A configuration with one webhook on this run's pod creates.
    fn configuration(&self, name: &str, index: usize, run: &str) -> Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": format!("allow-{index}.loadgen.kubecache.dev"),
                "clientConfig": {"url": format!("https://127.0.0.1:{}/validate", self.port),
                                 "caBundle": self.ca_bundle},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["pods"]}],
                "objectSelector": {"matchLabels": {crate::pod::RUN_LABEL: run}},
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "admissionReviewVersions": ["v1"],
            }],
        })
    }
}

/// The phases as a table, each against the first no-webhook phase.
pub fn summary(phases: &[Phase]) -> String {
    let base = phases.first().map(|p| p.per_second).unwrap_or(0.0);
    let mut out = String::from(
        "phase                            creates/s   vs none   p50 ms   p99 ms  errors  reviews\n",
    );
    for p in phases {
        let ratio = if base > 0.0 {
            p.per_second / base * 100.0
        } else {
            0.0
        };
        out.push_str(&format!(
            "{:<32} {:>9.0} {:>8.0}% {:>8.2} {:>8.2} {:>7} {:>8}\n",
            p.name, p.per_second, ratio, p.p50_ms, p.p99_ms, p.errors, p.reviews
        ));
    }
    out
}
