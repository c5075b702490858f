//! The `crds` scenario: what 1,000 CustomResourceDefinitions cost a server.
//!
//! 1. Creates `--crds` generated CRDs ([`crate::crdgen`]) from `--clients` concurrent
//!    clients, and times until every one is `Established` (a watch on the run's CRDs) and
//!    then served (a LIST of each answers 200).
//! 2. The server's RSS before and after (`/proc/<pid>/status` of the first `--server-pid`),
//!    per CRD.
//! 3. Aggregated discovery (`/apis` as `APIGroupDiscoveryList`) and one group's OpenAPI v3
//!    document, first request and warm.
//! 4. Custom objects against ConfigMaps in the same run: for one CRD shaped like a ConfigMap
//!    (`data`, a map of strings) and for ConfigMaps, `--objects` creates, `--lists` LISTs of
//!    all, a fan-out of `--watchers` watches receiving one update of every object (each
//!    event's resourceVersion checked against the one its update returned), and the
//!    deletes. `--rounds` rounds alternate which goes first; ratios are per round.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{Client, Conn, Error, encode_query};
use crate::crdgen::{self, Generator, RUN_LABEL};
use crate::procs;
use crate::watch_lines::LineBuffer;

/// Aggregated discovery, as kubectl ≥ 1.30 asks for it.
pub const AGGREGATED_DISCOVERY: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

/// The scenario's parameters.
pub struct Plan {
    pub crds: u32,
    pub per_group: u32,
    pub clients: u32,
    pub objects: u32,
    pub concurrency: u32,
    pub watchers: u32,
    pub lists: u32,
    pub rounds: u32,
    pub fixtures: Option<std::path::PathBuf>,
    pub run: String,
    pub namespace: String,
    pub server_pid: Option<u32>,
    /// Longest wait for every CRD to be Established.
    pub establish_timeout: Duration,
    /// Nothing waits past this.
    pub deadline: Instant,
    pub cleanup: bool,
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

const MIB: f64 = 1024.0 * 1024.0;

/// Calls with up to 3 tries on 429, 5xx and transport failures (a server busy registering
/// resources may answer 429 or time out once); 4xx are not retried.
async fn call_retrying(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    content_type: &str,
) -> Result<Bytes, Error> {
    let mut last = None;
    for attempt in 0..3 {
        let body = body.clone().map(|b| (content_type, b));
        match client.call(None, method.clone(), path, body).await {
            Ok(reply) => return Ok(reply.body),
            Err(Error::Status(code, retry, text))
                if code == StatusCode::TOO_MANY_REQUESTS || code.is_server_error() =>
            {
                tokio::time::sleep(retry.unwrap_or(Duration::from_millis(200 << attempt))).await;
                last = Some(Error::Status(code, retry, text));
            }
            Err(e @ Error::Status(..)) => return Err(e),
            Err(e) => {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                last = Some(e);
            }
        }
    }
    Err(last.expect("three failed tries"))
}

/// Runs `count` jobs over `workers` concurrent tasks; returns the errors' first messages
/// and their count.
async fn parallel<F, Fut>(count: u32, workers: u32, job: F) -> (u64, Vec<String>)
where
    F: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicU32::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let messages = Arc::new(std::sync::Mutex::new(Vec::new()));
    let job = Arc::new(job);
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (next, errors, messages, job) =
            (next.clone(), errors.clone(), messages.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                if let Err(e) = job(i).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                    let mut messages = messages.lock().expect("messages lock");
                    if messages.len() < 5 {
                        messages.push(e);
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let messages = messages.lock().expect("messages lock").clone();
    (errors.load(Ordering::Relaxed), messages)
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    object: LineObject,
}

#[derive(Deserialize, Default)]
struct LineObject {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    status: String,
}

/// A watch response read line by line.
struct Lines {
    body: hyper::body::Incoming,
    buffer: LineBuffer,
}

impl Lines {
    /// The next complete line; `None` at the end of the stream or after `deadline`.
    async fn next(&mut self, deadline: Instant) -> Option<Result<Line, String>> {
        loop {
            if let Some(line) = self.buffer.next_line() {
                return Some(serde_json::from_slice(&line).map_err(|e| e.to_string()));
            }
            let frame = tokio::time::timeout(remaining(deadline), self.body.frame()).await;
            match frame {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        self.buffer.push(data);
                    }
                }
                Ok(Some(Err(e))) => return Some(Err(e.to_string())),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

fn list_rv(body: &[u8]) -> Result<String, String> {
    let list: Value = serde_json::from_slice(body).map_err(|e| format!("LIST reply: {e}"))?;
    list["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "LIST reply without a resourceVersion".to_string())
}

/// What phase 1 saw.
#[derive(Default)]
struct Established {
    create_seconds: f64,
    /// How many were Established in the end.
    established: usize,
    established_seconds: Option<f64>,
    served_seconds: Option<f64>,
    create_errors: u64,
    serve_errors: u64,
    first_errors: Vec<String>,
}

/// Follows the run's CRDs from `rv` until `want` are Established or `deadline`; returns
/// when each became so, measured from `start` (fewer than `want` at the deadline), and why
/// it stopped early.
async fn watch_established(
    client: Arc<Client>,
    run: String,
    rv: String,
    want: usize,
    start: Instant,
    deadline: Instant,
) -> (Vec<f64>, Option<String>) {
    let mut established: HashMap<String, f64> = HashMap::new();
    let error = follow_established(&client, &run, rv, want, start, deadline, &mut established)
        .await
        .err();
    (established.into_values().collect(), error)
}

async fn follow_established(
    client: &Client,
    run: &str,
    mut rv: String,
    want: usize,
    start: Instant,
    deadline: Instant,
    established: &mut HashMap<String, f64>,
) -> Result<(), String> {
    while established.len() < want {
        if Instant::now() >= deadline {
            return Err(format!(
                "{} of {want} CRDs Established at the deadline",
                established.len()
            ));
        }
        let path = format!(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?watch=true&resourceVersion={rv}&labelSelector={}&timeoutSeconds={}",
            encode_query(&format!("{RUN_LABEL}={run}")),
            remaining(deadline).as_secs().max(1)
        );
        let mut conn = Conn::default();
        let body = client
            .stream(&mut conn, &path)
            .await
            .map_err(|e| format!("CRD watch: {e}"))?;
        let mut lines = Lines {
            body,
            buffer: LineBuffer::default(),
        };
        while let Some(line) = lines.next(deadline).await {
            let line = line.map_err(|e| format!("CRD watch: {e}"))?;
            if line.kind == "ERROR" {
                return Err("CRD watch: ERROR event".to_string());
            }
            if !line.object.metadata.resource_version.is_empty() {
                rv = line.object.metadata.resource_version.clone();
            }
            let is_established = line.object.status.is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.kind == "Established" && c.status == "True")
            });
            if is_established {
                established
                    .entry(line.object.metadata.name)
                    .or_insert_with(|| start.elapsed().as_secs_f64());
                if established.len() >= want {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Phase 1: create the CRDs, wait until Established, then until served.
async fn create_crds(
    client: &Arc<Client>,
    plan: &Plan,
    crds: Arc<Vec<crdgen::Generated>>,
) -> Result<Established, String> {
    let selector = encode_query(&format!("{RUN_LABEL}={}", plan.run));
    let reply = client
        .call(
            None,
            Method::GET,
            &format!(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?labelSelector={selector}"
            ),
            None,
        )
        .await
        .map_err(|e| format!("LIST CRDs: {e}"))?;
    let rv = list_rv(&reply.body)?;
    let start = Instant::now();
    let watcher = tokio::spawn(watch_established(
        client.clone(),
        plan.run.clone(),
        rv,
        crds.len(),
        start,
        start + plan.establish_timeout.min(remaining(plan.deadline)),
    ));
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        crds.iter()
            .map(|c| Bytes::from(serde_json::to_vec(&c.body).expect("JSON")))
            .collect(),
    );
    let (create_errors, mut first_errors) = {
        let client = client.clone();
        parallel(crds.len() as u32, plan.clients, move |i| {
            let client = client.clone();
            let body = bodies[i as usize].clone();
            async move {
                let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
                match call_retrying(&client, Method::POST, path, Some(body), "application/json")
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => Err(format!("create CRD {i}: {e}")),
                }
            }
        })
        .await
    };
    let mut out = Established {
        create_seconds: start.elapsed().as_secs_f64(),
        create_errors,
        ..Established::default()
    };
    if create_errors > 0 {
        watcher.abort();
        out.first_errors = first_errors;
        return Ok(out);
    }
    match watcher.await {
        Ok((times, error)) => {
            out.established = times.len();
            if error.is_none() {
                out.established_seconds = times.into_iter().reduce(f64::max);
            }
            first_errors.extend(error);
        }
        Err(e) => first_errors.push(format!("CRD watch task: {e}")),
    }
    if out.established_seconds.is_none() {
        // Not all served either: not worth waiting for each.
        out.first_errors = first_errors;
        return Ok(out);
    }
    // Served: a LIST of each resource answers 200 (404 until its handler is registered).
    let deadline = plan.deadline;
    let (serve_errors, serve_messages) = {
        let client = client.clone();
        let crds = crds.clone();
        parallel(crds.len() as u32, plan.clients, move |i| {
            let client = client.clone();
            let crd = &crds[i as usize];
            let path = format!("/apis/{}/v1/{}?limit=1", crd.group, crd.plural);
            async move {
                loop {
                    match client.call(None, Method::GET, &path, None).await {
                        Ok(_) => return Ok(()),
                        Err(e) if Instant::now() < deadline => {
                            if e.status() != Some(StatusCode::NOT_FOUND) {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            } else {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                        Err(e) => return Err(format!("{path}: {e}")),
                    }
                }
            }
        })
        .await
    };
    if serve_errors == 0 {
        out.served_seconds = Some(start.elapsed().as_secs_f64());
    }
    out.serve_errors = serve_errors;
    first_errors.extend(serve_messages);
    out.first_errors = first_errors;
    Ok(out)
}

/// Times `count` GETs of `path` with `accept`: the first, and the median of the others.
async fn time_gets(
    client: &Client,
    path: &str,
    accept: &str,
    count: u32,
) -> Result<(f64, f64, u64, Bytes), String> {
    let mut first = None;
    let mut rest = Vec::new();
    let mut last = (0, Bytes::new());
    for _ in 0..count.max(2) {
        let start = Instant::now();
        let reply = client
            .call_accepting(Method::GET, path, accept)
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if first.is_none() {
            first = Some(ms);
        } else {
            rest.push(ms);
        }
        last = (reply.len, reply.body);
    }
    Ok((first.unwrap_or(f64::NAN), median(&mut rest), last.0, last.1))
}

/// Which objects a fan-out compares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    ConfigMap,
    Custom,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmaps",
            Kind::Custom => "custom",
        }
    }
}

const WIDGET_GROUP: &str = "bench.example.com";
const WIDGET_PLURAL: &str = "widgets";

/// The CRD of the custom objects compared with ConfigMaps: a namespaced `Widget` whose
/// `data` is a map of strings, like a ConfigMap's.
fn widget_crd(run: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{WIDGET_PLURAL}.{WIDGET_GROUP}"), "labels": {RUN_LABEL: run}},
        "spec": {
            "group": WIDGET_GROUP,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "listKind": "WidgetList", "plural": WIDGET_PLURAL, "singular": "widget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"data": {"type": "object", "additionalProperties": {"type": "string"}}},
                }},
            }],
        },
    })
}

/// One kind's figures in one round.
#[derive(Default, Clone, Debug)]
struct KindRound {
    creates_per_sec: f64,
    list_ms: f64,
    list_bytes: u64,
    updates_per_sec: f64,
    fanout_seconds: f64,
    deliveries_per_sec: f64,
    deletes_per_sec: f64,
    errors: u64,
    /// Events whose resourceVersion was not the one the update returned.
    rv_mismatches: u64,
    missed: u64,
    duplicated: u64,
    short_lists: u64,
    first_errors: Vec<String>,
}

impl KindRound {
    fn to_json(&self) -> Value {
        json!({
            "creates_per_sec": round(self.creates_per_sec, 1),
            "list_ms": round(self.list_ms, 2),
            "list_bytes": self.list_bytes,
            "updates_per_sec": round(self.updates_per_sec, 1),
            "fanout_seconds": round(self.fanout_seconds, 3),
            "deliveries_per_sec": round(self.deliveries_per_sec, 0),
            "deletes_per_sec": round(self.deletes_per_sec, 1),
            "errors": self.errors,
            "rv_mismatches": self.rv_mismatches,
            "missed": self.missed,
            "duplicated": self.duplicated,
            "short_lists": self.short_lists,
            "first_errors": self.first_errors,
        })
    }
}

fn collection(kind: Kind, namespace: &str) -> String {
    match kind {
        Kind::ConfigMap => format!("/api/v1/namespaces/{namespace}/configmaps"),
        Kind::Custom => format!("/apis/{WIDGET_GROUP}/v1/namespaces/{namespace}/{WIDGET_PLURAL}"),
    }
}

fn object_body(kind: Kind, name: &str, run: &str) -> Bytes {
    let (api_version, kind) = match kind {
        Kind::ConfigMap => ("v1", "ConfigMap"),
        Kind::Custom => ("bench.example.com/v1", "Widget"),
    };
    let data: serde_json::Map<String, Value> = (0..8)
        .map(|k| (format!("key{k}"), json!(format!("{k}").repeat(100))))
        .collect();
    Bytes::from(
        serde_json::to_vec(&json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "labels": {RUN_LABEL: run}},
            "data": data,
        }))
        .expect("JSON"),
    )
}

fn reply_rv(body: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Reply {
        metadata: Meta,
    }
    let reply: Reply = serde_json::from_slice(body).map_err(|e| format!("reply: {e}"))?;
    Ok(reply.metadata.resource_version)
}

/// One round of one kind: creates, LISTs, the update fan-out, deletes.
async fn kind_round(client: &Arc<Client>, plan: &Plan, kind: Kind, round_index: u32) -> KindRound {
    let mut out = KindRound::default();
    let base = collection(kind, &plan.namespace);
    let names: Arc<Vec<String>> = Arc::new(
        (0..plan.objects)
            .map(|i| format!("{}-{round_index}-{i}", plan.run))
            .collect(),
    );
    let note = |out: &mut KindRound, errors: u64, messages: Vec<String>| {
        out.errors += errors;
        for m in messages {
            if out.first_errors.len() < 5 {
                out.first_errors.push(m);
            }
        }
    };

    // Creates.
    let start = Instant::now();
    let (errors, messages) = {
        let (client, names, base, run) = (
            client.clone(),
            names.clone(),
            base.clone(),
            plan.run.clone(),
        );
        parallel(plan.objects, plan.concurrency, move |i| {
            let client = client.clone();
            let body = object_body(kind, &names[i as usize], &run);
            let base = base.clone();
            async move {
                client
                    .call(None, Method::POST, &base, Some(("application/json", body)))
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("create: {e}"))
            }
        })
        .await
    };
    out.creates_per_sec = plan.objects as f64 / start.elapsed().as_secs_f64();
    note(&mut out, errors, messages);

    // LISTs of all (consistent reads, as a client's first LIST).
    let mut times = Vec::new();
    let mut rv = String::new();
    for _ in 0..plan.lists.max(1) {
        let start = Instant::now();
        match client.call(None, Method::GET, &base, None).await {
            Ok(reply) => {
                times.push(start.elapsed().as_secs_f64() * 1000.0);
                out.list_bytes = reply.len;
                let items = serde_json::from_slice::<Value>(&reply.body)
                    .ok()
                    .and_then(|v| v["items"].as_array().map(Vec::len))
                    .unwrap_or(0);
                if items < plan.objects as usize {
                    out.short_lists += 1;
                }
                if let Ok(listed) = list_rv(&reply.body) {
                    rv = listed;
                }
            }
            Err(e) => note(&mut out, 1, vec![format!("list: {e}")]),
        }
    }
    out.list_ms = median(&mut times);

    // Fan-out: watchers from the LIST's revision, then one update of every object.
    let watch_deadline = Instant::now() + Duration::from_secs(120).min(remaining(plan.deadline));
    let path = format!(
        "{base}?watch=true&resourceVersion={rv}&timeoutSeconds={}",
        remaining(watch_deadline).as_secs().max(1)
    );
    let mut watches = Vec::new();
    for _ in 0..plan.watchers {
        let client = client.clone();
        let path = path.clone();
        watches.push(tokio::spawn(async move {
            let mut conn = Conn::default();
            client
                .stream(&mut conn, &path)
                .await
                .map(|body| (conn, body))
        }));
    }
    let mut bodies = Vec::new();
    for watch in watches {
        match watch.await {
            Ok(Ok(body)) => bodies.push(body),
            Ok(Err(e)) => note(&mut out, 1, vec![format!("watch: {e}")]),
            Err(e) => note(&mut out, 1, vec![format!("watch task: {e}")]),
        }
    }
    let want = plan.objects as usize;
    let mut readers = Vec::new();
    for (conn, body) in bodies {
        readers.push(tokio::spawn(async move {
            let _conn = conn;
            let mut lines = Lines {
                body,
                buffer: LineBuffer::default(),
            };
            let mut seen: Vec<(String, String)> = Vec::with_capacity(want);
            let mut errors = 0u64;
            while seen.len() < want {
                match lines.next(watch_deadline).await {
                    Some(Ok(line)) if line.kind == "MODIFIED" => seen.push((
                        line.object.metadata.name,
                        line.object.metadata.resource_version,
                    )),
                    Some(Ok(_)) => {}
                    Some(Err(_)) => errors += 1,
                    None => break,
                }
            }
            (seen, errors, Instant::now())
        }));
    }
    let update_rvs: Arc<Vec<std::sync::Mutex<String>>> = Arc::new(
        (0..plan.objects)
            .map(|_| std::sync::Mutex::new(String::new()))
            .collect(),
    );
    let start = Instant::now();
    let (errors, messages) = {
        let (client, names, base, rvs) = (
            client.clone(),
            names.clone(),
            base.clone(),
            update_rvs.clone(),
        );
        parallel(plan.objects, plan.concurrency, move |i| {
            let client = client.clone();
            let path = format!("{base}/{}", names[i as usize]);
            let rvs = rvs.clone();
            async move {
                let patch = Bytes::from(format!(r#"{{"data":{{"round":"{round_index}"}}}}"#));
                let reply = client
                    .call(
                        None,
                        Method::PATCH,
                        &path,
                        Some(("application/merge-patch+json", patch)),
                    )
                    .await
                    .map_err(|e| format!("update: {e}"))?;
                *rvs[i as usize].lock().expect("rv lock") = reply_rv(&reply.body)?;
                Ok(())
            }
        })
        .await
    };
    out.updates_per_sec = plan.objects as f64 / start.elapsed().as_secs_f64();
    note(&mut out, errors, messages);
    let expected: HashMap<&str, String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                name.as_str(),
                update_rvs[i].lock().expect("rv lock").clone(),
            )
        })
        .collect();
    let mut last = start;
    let mut delivered = 0u64;
    for reader in readers {
        let Ok((seen, errors, done)) = reader.await else {
            out.errors += 1;
            continue;
        };
        out.errors += errors;
        last = last.max(done);
        delivered += seen.len() as u64;
        let mut got: HashSet<&str> = HashSet::new();
        for (name, rv) in &seen {
            match expected.get(name.as_str()) {
                Some(want_rv) if want_rv == rv => {}
                _ => out.rv_mismatches += 1,
            }
            if !got.insert(name.as_str()) {
                out.duplicated += 1;
            }
        }
        out.missed += expected.keys().filter(|n| !got.contains(*n)).count() as u64;
    }
    out.fanout_seconds = (last - start).as_secs_f64();
    out.deliveries_per_sec = delivered as f64 / out.fanout_seconds.max(1e-9);

    // Deletes.
    let start = Instant::now();
    let (errors, messages) = {
        let (client, names, base) = (client.clone(), names.clone(), base.clone());
        parallel(plan.objects, plan.concurrency, move |i| {
            let client = client.clone();
            let path = format!("{base}/{}", names[i as usize]);
            async move {
                client
                    .call(None, Method::DELETE, &path, None)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("delete: {e}"))
            }
        })
        .await
    };
    out.deletes_per_sec = plan.objects as f64 / start.elapsed().as_secs_f64();
    note(&mut out, errors, messages);
    out
}

fn rss(pid: Option<u32>) -> Option<u64> {
    procs::sample(Some(pid?)).map(|s| s.rss_bytes)
}

fn cpu(pid: Option<u32>) -> Option<f64> {
    procs::sample(Some(pid?)).map(|s| s.cpu_seconds)
}

/// Runs the scenario; returns its report (JSON) or why it could not run.
pub async fn run(client: Arc<Client>, plan: Plan) -> Result<Value, String> {
    let dir = crdgen::fixture_dir(plan.fixtures.as_deref())?;
    let bases = crdgen::read_bases(&dir)?;
    let base_files: Vec<String> = bases.iter().map(|b| b.file.clone()).collect();
    let mut generator = Generator::new(bases, plan.per_group, &plan.run);
    let crds: Vec<crdgen::Generated> = (0..plan.crds).map(|i| generator.crd(i)).collect();
    let sizes: Vec<usize> = crds.iter().map(|c| c.schema_bytes).collect();
    let crds = Arc::new(crds);
    eprintln!(
        "kubecache-loadgen: crds: {} CRDs from {} fixtures, schemas {}–{} KiB",
        crds.len(),
        base_files.len(),
        sizes.iter().min().copied().unwrap_or(0) / 1024,
        sizes.iter().max().copied().unwrap_or(0) / 1024
    );
    let namespace = format!(
        r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{}"}}}}"#,
        plan.namespace
    );
    match client
        .call(
            None,
            Method::POST,
            "/api/v1/namespaces",
            Some(("application/json", Bytes::from(namespace))),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => {}
        Err(e) => return Err(format!("create namespace {}: {e}", plan.namespace)),
    }

    let pid = plan.server_pid;
    let rss_before = rss(pid);
    let cpu_before = cpu(pid);
    let established = create_crds(&client, &plan, crds.clone()).await?;
    let cpu_established = cpu(pid);
    eprintln!(
        "kubecache-loadgen: crds: created in {:.1} s, Established after {:?} s, served after {:?} s",
        established.create_seconds, established.established_seconds, established.served_seconds
    );
    // Let the allocator return what the registration burst freed.
    tokio::time::sleep(Duration::from_secs(2).min(remaining(plan.deadline))).await;
    let rss_after = rss(pid);

    // Discovery and OpenAPI with every CRD served.
    let discovery = time_gets(&client, "/apis", AGGREGATED_DISCOVERY, 5).await;
    let discovery_json = match &discovery {
        Ok((first, warm, bytes, body)) => {
            let groups = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| {
                    v["items"].as_array().map(|items| {
                        items
                            .iter()
                            .filter(|g| {
                                g["metadata"]["name"]
                                    .as_str()
                                    .is_some_and(|n| n.ends_with(".bench.example.com"))
                            })
                            .count()
                    })
                })
                .unwrap_or(0);
            json!({"first_ms": round(*first, 2), "warm_ms": round(*warm, 2), "bytes": bytes, "bench_groups": groups})
        }
        Err(e) => json!({"error": e}),
    };
    let group = generator.group(plan.crds.saturating_sub(1) / 2);
    let openapi_path = format!("/openapi/v3/apis/{group}/v1");
    let openapi = time_gets(&client, &openapi_path, "application/json", 5).await;
    let openapi_json = match &openapi {
        Ok((first, warm, bytes, _)) => {
            json!({"path": openapi_path, "first_ms": round(*first, 2), "warm_ms": round(*warm, 2), "bytes": bytes})
        }
        Err(e) => json!({"path": openapi_path, "error": e}),
    };
    let index = time_gets(&client, "/openapi/v3", "application/json", 3).await;
    let index_json = match &index {
        Ok((first, warm, bytes, _)) => {
            json!({"first_ms": round(*first, 2), "warm_ms": round(*warm, 2), "bytes": bytes})
        }
        Err(e) => json!({"error": e}),
    };
    let rss_after_documents = rss(pid);

    // Custom objects against ConfigMaps.
    let widget = Bytes::from(serde_json::to_vec(&widget_crd(&plan.run)).expect("JSON"));
    match client
        .call(
            None,
            Method::POST,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some(("application/json", widget)),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => {}
        Err(e) => return Err(format!("create the Widget CRD: {e}")),
    }
    let widget_list = collection(Kind::Custom, &plan.namespace);
    let widget_deadline = Instant::now() + Duration::from_secs(60).min(remaining(plan.deadline));
    let mut widget_error = None;
    loop {
        match client.call(None, Method::GET, &widget_list, None).await {
            Ok(_) => break,
            Err(e) if Instant::now() >= widget_deadline => {
                widget_error = Some(format!("the Widget CRD was not served within 60 s: {e}"));
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut rounds = Vec::new();
    let round_count = if widget_error.is_some() {
        0
    } else {
        plan.rounds.max(1)
    };
    for r in 0..round_count {
        if Instant::now() >= plan.deadline {
            break;
        }
        let order = if r % 2 == 0 {
            [Kind::ConfigMap, Kind::Custom]
        } else {
            [Kind::Custom, Kind::ConfigMap]
        };
        let mut figures: HashMap<&'static str, KindRound> = HashMap::new();
        for kind in order {
            let f = kind_round(&client, &plan, kind, r).await;
            eprintln!("kubecache-loadgen: crds: round {r} {}: {f:?}", kind.label());
            figures.insert(kind.label(), f);
        }
        rounds.push(figures);
    }
    let ratio = |get: &dyn Fn(&KindRound) -> f64, inverse: bool| -> Value {
        let mut values: Vec<f64> = rounds
            .iter()
            .map(|r| {
                let (cm, cr) = (get(&r["configmaps"]), get(&r["custom"]));
                if inverse { cm / cr } else { cr / cm }
            })
            .collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        json!({"median": round(median(&mut values), 3), "min": round(min, 3), "max": round(max, 3)})
    };
    let ratios = json!({
        "creates": ratio(&|f| f.creates_per_sec, false),
        "lists": ratio(&|f| f.list_ms, true),
        "updates": ratio(&|f| f.updates_per_sec, false),
        "fanout": ratio(&|f| f.deliveries_per_sec, false),
        "deletes": ratio(&|f| f.deletes_per_sec, false),
    });
    let per_kind = |label: &str| -> Value {
        Value::Array(rounds.iter().map(|r| r[label].to_json()).collect())
    };
    let correctness: u64 = rounds
        .iter()
        .flat_map(|r| r.values())
        .map(|f| f.errors + f.rv_mismatches + f.missed + f.duplicated + f.short_lists)
        .sum::<u64>()
        + u64::from(widget_error.is_some());
    let mut first_errors = established.first_errors.clone();
    first_errors.extend(widget_error);

    if plan.cleanup {
        let cleanup = async {
            let names: Vec<String> = crds.iter().map(|c| c.name.clone()).collect();
            let names = Arc::new(names);
            let deleting = client.clone();
            parallel(names.len() as u32, plan.clients, move |i| {
                let client = deleting.clone();
                let path = format!(
                    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{}",
                    names[i as usize]
                );
                async move {
                    client
                        .call(None, Method::DELETE, &path, None)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            })
            .await;
            let _ = client
                .call(
                    None,
                    Method::DELETE,
                    &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{WIDGET_PLURAL}.{WIDGET_GROUP}"),
                    None,
                )
                .await;
        };
        if tokio::time::timeout(Duration::from_secs(120), cleanup)
            .await
            .is_err()
        {
            eprintln!("kubecache-loadgen: crds: cleanup timed out");
        }
    }

    let mib_per_crd = match (rss_before, rss_after) {
        (Some(before), Some(after)) if plan.crds > 0 => {
            json!(round(
                (after as f64 - before as f64) / MIB / plan.crds as f64,
                3
            ))
        }
        _ => Value::Null,
    };
    let cpu_seconds = match (cpu_before, cpu_established) {
        (Some(a), Some(b)) => json!(round(b - a, 2)),
        _ => Value::Null,
    };
    Ok(json!({
        "scenario": "crds",
        "crds": plan.crds,
        "per_group": plan.per_group,
        "clients": plan.clients,
        "fixtures": base_files,
        "schema_bytes": {
            "min": sizes.iter().min(),
            "max": sizes.iter().max(),
            "mean": if sizes.is_empty() { 0 } else { sizes.iter().sum::<usize>() / sizes.len() },
        },
        "create_seconds": round(established.create_seconds, 3),
        "established_seconds": established.established_seconds.map(|s| round(s, 3)),
        "served_seconds": established.served_seconds.map(|s| round(s, 3)),
        "create_errors": established.create_errors,
        "serve_errors": established.serve_errors,
        "established": established.established,
        "first_errors": first_errors,
        "server_cpu_seconds_to_established": cpu_seconds,
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "rss_after_documents_bytes": rss_after_documents,
        "mib_per_crd": mib_per_crd,
        "discovery": discovery_json,
        "openapi_group": openapi_json,
        "openapi_index": index_json,
        "objects": {
            "objects": plan.objects,
            "concurrency": plan.concurrency,
            "watchers": plan.watchers,
            "lists": plan.lists,
            "configmaps": per_kind("configmaps"),
            "custom": per_kind("custom"),
            "ratios": ratios,
            "correctness_failures": correctness,
        },
    }))
}

fn fmt_opt(value: &Value, digits: usize, unit: &str) -> String {
    match value.as_f64() {
        Some(v) => format!("{v:.digits$}{unit}"),
        None => "—".to_string(),
    }
}

fn mib(value: &Value) -> String {
    match value.as_u64() {
        Some(v) => format!("{:.0} MiB", v as f64 / MIB),
        None => "—".to_string(),
    }
}

/// The summary table printed on stdout.
pub fn summary(report: &Value) -> String {
    let mut out = String::new();
    let n = report["crds"].as_u64().unwrap_or(0);
    let yes = |ok: bool| if ok { "yes" } else { "**no**" };
    let established = report["established_seconds"].as_f64();
    let per_crd = report["mib_per_crd"].as_f64();
    out.push_str(&format!(
        "crds: {n} CRDs ({} per group), schemas {}–{} bytes (mean {})\n",
        report["per_group"],
        report["schema_bytes"]["min"],
        report["schema_bytes"]["max"],
        report["schema_bytes"]["mean"]
    ));
    out.push_str("| figure | measured | target | reached |\n|---|---|---|---|\n");
    let established_text = match established {
        Some(seconds) => format!("{seconds:.1} s"),
        None => format!("{} of {n} at the deadline", report["established"]),
    };
    out.push_str(&format!(
        "| all Established (from the first create) | {established_text} (creates done at {:.1} s, served at {}) | ≤ 60 s | {} |\n",
        report["create_seconds"].as_f64().unwrap_or(f64::NAN),
        fmt_opt(&report["served_seconds"], 1, " s"),
        yes(established.is_some_and(|s| s <= 60.0))
    ));
    out.push_str(&format!(
        "| server RSS before → after | {} → {} ({} after discovery and OpenAPI) | | |\n",
        mib(&report["rss_before_bytes"]),
        mib(&report["rss_after_bytes"]),
        mib(&report["rss_after_documents_bytes"])
    ));
    out.push_str(&format!(
        "| RSS per CRD | {} | ≤ 1 MiB | {} |\n",
        fmt_opt(&report["mib_per_crd"], 3, " MiB"),
        yes(per_crd.is_some_and(|m| m <= 1.0))
    ));
    out.push_str(&format!(
        "| server CPU until all Established | {} | | |\n",
        fmt_opt(&report["server_cpu_seconds_to_established"], 1, " s")
    ));
    let d = &report["discovery"];
    out.push_str(&format!(
        "| aggregated discovery /apis, first / warm | {} / {} ({} bytes, {} bench groups) | | |\n",
        fmt_opt(&d["first_ms"], 1, " ms"),
        fmt_opt(&d["warm_ms"], 1, " ms"),
        d["bytes"],
        d["bench_groups"]
    ));
    let o = &report["openapi_group"];
    out.push_str(&format!(
        "| OpenAPI v3 {}, first / warm | {} / {} ({} bytes) | | |\n",
        o["path"].as_str().unwrap_or(""),
        fmt_opt(&o["first_ms"], 1, " ms"),
        fmt_opt(&o["warm_ms"], 1, " ms"),
        o["bytes"]
    ));
    let i = &report["openapi_index"];
    out.push_str(&format!(
        "| OpenAPI v3 index, first / warm | {} / {} | | |\n",
        fmt_opt(&i["first_ms"], 1, " ms"),
        fmt_opt(&i["warm_ms"], 1, " ms"),
    ));
    let objects = &report["objects"];
    let figure = |label: &str, key: &str| -> String {
        let mut values: Vec<f64> = objects[label]
            .as_array()
            .map(|rounds| rounds.iter().filter_map(|r| r[key].as_f64()).collect())
            .unwrap_or_default();
        format!("{:.1}", median(&mut values))
    };
    let measured = objects["configmaps"]
        .as_array()
        .is_some_and(|rounds| !rounds.is_empty());
    for (name, key, ratio) in [
        ("creates/s", "creates_per_sec", "creates"),
        ("LIST of all, ms", "list_ms", "lists"),
        ("updates/s", "updates_per_sec", "updates"),
        ("watch deliveries/s", "deliveries_per_sec", "fanout"),
        ("deletes/s", "deletes_per_sec", "deletes"),
    ] {
        if !measured {
            out.push_str(&format!(
                "| {name}: custom / ConfigMap | not measured | ≥ 0.80 | **no** |\n"
            ));
            continue;
        }
        let r = &objects["ratios"][ratio];
        let median_ratio = r["median"].as_f64().unwrap_or(f64::NAN);
        out.push_str(&format!(
            "| {name}: custom / ConfigMap | {} / {} = {median_ratio:.2} ({:.2}–{:.2}) | ≥ 0.80 | {} |\n",
            figure("custom", key),
            figure("configmaps", key),
            r["min"].as_f64().unwrap_or(f64::NAN),
            r["max"].as_f64().unwrap_or(f64::NAN),
            yes(median_ratio >= 0.8)
        ));
    }
    out.push_str(&format!(
        "| object checks: errors, RV mismatches, missed, duplicated, short LISTs | {} | 0 | {} |\n",
        objects["correctness_failures"],
        yes(objects["correctness_failures"] == 0)
    ));
    if let Some(errors) = report["first_errors"].as_array().filter(|e| !e.is_empty()) {
        out.push_str(&format!("errors: {errors:?}\n"));
    }
    out
}
