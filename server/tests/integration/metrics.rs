//! `/metrics`: the exposition parses as Prometheus text, requests are counted with kube's
//! labels, the latency histogram is consistent, and the watch cache's gauges follow watches.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::server::TestServer;

const CM: &str = "/api/v1/namespaces/default/configmaps";

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

/// One sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format; panics on any line that is neither a comment nor
/// `name{labels} value`.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name in {line:?}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut label = String::new();
            let end = loop {
                let (i, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("unterminated labels in {line:?}"));
                match c {
                    '}' if label.is_empty() => break i,
                    '=' => {
                        assert!(
                            !label.is_empty()
                                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                            "bad label name {label:?} in {line:?}"
                        );
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "in {line:?}");
                        let mut value = String::new();
                        loop {
                            match chars.next().map(|(_, c)| c) {
                                Some('\\') => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(c @ ('\\' | '"')) => value.push(c),
                                    other => panic!("bad escape {other:?} in {line:?}"),
                                },
                                Some('"') => break,
                                Some(c) => value.push(c),
                                None => panic!("unterminated label value in {line:?}"),
                            }
                        }
                        labels.insert(std::mem::take(&mut label), value);
                        match chars.next() {
                            Some((_, ',')) => {}
                            Some((i, '}')) => break i,
                            other => panic!("expected ',' or '}}', got {other:?} in {line:?}"),
                        }
                    }
                    c => label.push(c),
                }
            };
            rest = &body[end + 1..];
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value {v:?} in {line:?}")),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

async fn scrape(server: &TestServer) -> Vec<Sample> {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.expect("metrics body");
    parse(&text)
}

/// The sum of the samples named `name` whose labels include every pair of `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

fn requests(samples: &[Sample], verb: &str, resource: &str, code: &str) -> f64 {
    value(
        samples,
        "apiserver_request_total",
        &[
            ("verb", verb),
            ("resource", resource),
            ("code", code),
            ("component", "apiserver"),
        ],
    )
}

/// Polls until `apiserver_registered_watchers` for configmaps is `want`.
async fn wait_for_watchers(server: &TestServer, want: f64) {
    // A bound on a hang, generous for a loaded machine.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let samples = scrape(server).await;
        let watchers = value(
            &samples,
            "apiserver_registered_watchers",
            &[("resource", "configmaps")],
        );
        if watchers == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "apiserver_registered_watchers for configmaps stayed {watchers}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn requests_are_counted_with_kube_labels() {
    let server = TestServer::start().await;
    for i in 0..3 {
        server
            .post(CM, &configmap(&format!("cm-{i}")))
            .await
            .expect(201);
    }
    server.get(&format!("{CM}/cm-0")).await.expect(200);
    server.get(&format!("{CM}/cm-0")).await.expect(200);
    server
        .get(&format!("{CM}/missing"))
        .await
        .expect_status(404, "NotFound");
    server.get(CM).await.expect(200);
    server.get("/api/v1/configmaps").await.expect(200);
    server.get("/version").await.expect(200);

    let samples = scrape(&server).await;
    assert_eq!(requests(&samples, "POST", "configmaps", "201"), 3.0);
    assert_eq!(requests(&samples, "GET", "configmaps", "200"), 2.0);
    assert_eq!(requests(&samples, "GET", "configmaps", "404"), 1.0);
    assert_eq!(requests(&samples, "LIST", "configmaps", "200"), 2.0);
    // Scopes: a named object, one namespace, every namespace.
    assert_eq!(
        value(
            &samples,
            "apiserver_request_total",
            &[
                ("verb", "POST"),
                ("resource", "configmaps"),
                ("scope", "resource")
            ],
        ),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "apiserver_request_total",
            &[("verb", "LIST"), ("scope", "namespace"), ("version", "v1")],
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "apiserver_request_total",
            &[
                ("verb", "LIST"),
                ("resource", "configmaps"),
                ("scope", "cluster")
            ],
        ),
        1.0
    );
    // Non-resource requests: resource "", the HTTP method as verb.
    assert!(requests(&samples, "GET", "", "200") >= 1.0);

    // The histogram: per label set, cumulative buckets ending in le="+Inf" == _count.
    let counts: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "apiserver_request_duration_seconds_count")
        .collect();
    assert!(!counts.is_empty(), "no apiserver_request_duration_seconds");
    for count in &counts {
        let labels: Vec<(&str, &str)> = count
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let buckets: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == "apiserver_request_duration_seconds_bucket")
            .filter(|s| {
                s.labels.len() == labels.len() + 1
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(buckets.len(), 24, "23 bounds and +Inf for {labels:?}");
        assert!(
            buckets.windows(2).all(|w| w[0].value <= w[1].value),
            "buckets are cumulative for {labels:?}"
        );
        let inf = buckets
            .iter()
            .find(|s| s.labels["le"] == "+Inf")
            .expect("an le=\"+Inf\" bucket");
        assert_eq!(
            inf.value, count.value,
            "+Inf bucket == count for {labels:?}"
        );
        let sums = samples
            .iter()
            .filter(|s| s.name == "apiserver_request_duration_seconds_sum")
            .filter(|s| s.labels == count.labels)
            .count();
        assert_eq!(sums, 1, "one _sum for {labels:?}");
    }
    assert_eq!(
        value(
            &samples,
            "apiserver_request_duration_seconds_count",
            &[("verb", "POST"), ("resource", "configmaps")],
        ),
        3.0
    );

    // The watch cache serves configmaps.
    assert_eq!(
        value(
            &samples,
            "kubecache_watch_cache_ready",
            &[("resource", "configmaps")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "kubecache_watch_cache_objects",
            &[("resource", "configmaps")]
        ),
        3.0
    );
    assert!(
        samples
            .iter()
            .any(|s| s.name == "apiserver_watch_cache_resource_version"
                && s.labels.get("resource").map(String::as_str) == Some("deployments.apps"))
    );
    assert!(
        samples
            .iter()
            .any(|s| s.name == "kubecache_watch_cache_lag_revisions")
    );
}

#[tokio::test]
async fn registered_watchers_follow_open_watches() {
    let server = TestServer::start().await;
    let mut watch = server
        .watch(CM, &[("watch", "true"), ("resourceVersion", "0")])
        .await;
    wait_for_watchers(&server, 1.0).await;

    server.post(CM, &configmap("watched")).await.expect(201);
    watch.expect_event("ADDED", "watched").await;
    let samples = scrape(&server).await;
    assert_eq!(requests(&samples, "WATCH", "configmaps", "200"), 1.0);
    assert!(
        value(
            &samples,
            "apiserver_watch_events_total",
            &[("resource", "configmaps")]
        ) >= 1.0
    );
    assert!(
        value(
            &samples,
            "apiserver_watch_cache_events_received_total",
            &[("resource", "configmaps")]
        ) >= 1.0
    );
    assert!(value(&samples, "kubecache_shard_events_dispatched_total", &[]) >= 1.0);
    // Watches are counted, not timed.
    assert_eq!(
        value(
            &samples,
            "apiserver_request_duration_seconds_count",
            &[("verb", "WATCH")],
        ),
        0.0
    );

    drop(watch);
    wait_for_watchers(&server, 0.0).await;
}

#[tokio::test]
async fn uncached_reads_serve_request_metrics_only() {
    let server = TestServer::start_uncached().await;
    server.post(CM, &configmap("a")).await.expect(201);
    let samples = scrape(&server).await;
    assert_eq!(requests(&samples, "POST", "configmaps", "201"), 1.0);
    assert!(
        !samples.iter().any(
            |s| s.name.starts_with("apiserver_watch_cache") || s.name.starts_with("kubecache_")
        ),
        "no cache metrics without a cache"
    );
}
