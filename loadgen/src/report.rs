//! A run's figures and their three renderings: the summary table on stdout, `--json-out`
//! (field names fixed by the issue, so scripts can read them), and `--html-out` (one
//! self-contained page, plots drawn here as inline SVG; no scripts, no fetched assets).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

use crate::accounting::Counts;
use crate::procs::Usage;

/// The figures of one run against one target.
#[derive(Default)]
pub struct Results {
    pub scenario: String,
    /// `kubecache` (whatever `--server` is) or `etcd`.
    pub target: String,
    pub events: Option<Counts>,
    /// Event latency from the write's acknowledgement.
    pub latency: Option<Histogram<u64>>,
    pub latency_from_send: Option<Histogram<u64>>,
    pub write_latency: Option<Histogram<u64>>,
    pub create_latency: Option<Histogram<u64>>,
    pub update_latency: Option<Histogram<u64>>,
    pub writes: u64,
    pub writes_per_sec: Option<f64>,
    pub creates_per_sec: Option<f64>,
    pub updates_per_sec: Option<f64>,
    pub events_per_sec: Option<f64>,
    pub lists: u64,
    pub lists_per_sec: Option<f64>,
    pub list_mb_per_sec: Option<f64>,
    /// Bytes of one LIST response (average).
    pub list_bytes: Option<u64>,
    pub preload_seconds: Option<f64>,
    pub watchers: u64,
    pub watchers_watching: u64,
    pub write_errors: u64,
    pub watch_errors: u64,
    pub list_errors: u64,
    /// Lists that returned fewer items than were preloaded.
    pub short_lists: u64,
    pub relists: u64,
    /// 429 answers to writes (retried).
    pub throttled: u64,
    pub foreign_events: u64,
    pub storm_seconds_to_all_watching: Option<f64>,
    pub storm_watching_p50_s: Option<f64>,
    pub storm_errors: Option<u64>,
    /// Growth of the loadgen's RSS per watcher while they were set up.
    pub loadgen_bytes_per_watcher: Option<u64>,
    pub duration_seconds: f64,
    /// CPU and peak RSS of the `--server-pid` processes (`None` = the loadgen).
    pub processes: BTreeMap<Option<u32>, Usage>,
    /// Latency from send per second of the write phase.
    pub per_second: Vec<Histogram<u64>>,
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 1000.0).round() / 1000.0
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// `{p50, p90, p99, p999, max}` in milliseconds, plus the count.
pub fn percentiles(histogram: &Histogram<u64>) -> Value {
    if histogram.is_empty() {
        return json!({"count": 0, "p50": null, "p90": null, "p99": null, "p999": null, "max": null});
    }
    json!({
        "count": histogram.len(),
        "p50": ms(histogram.value_at_quantile(0.50)),
        "p90": ms(histogram.value_at_quantile(0.90)),
        "p99": ms(histogram.value_at_quantile(0.99)),
        "p999": ms(histogram.value_at_quantile(0.999)),
        "max": ms(histogram.max()),
    })
}

impl Results {
    pub fn new(scenario: &str) -> Results {
        Results {
            scenario: scenario.to_string(),
            ..Results::default()
        }
    }

    /// The JSON object of this run (without `baseline`).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("scenario".into(), json!(self.scenario));
        out.insert("target".into(), json!(self.target));
        out.insert(
            "duration_seconds".into(),
            json!(round(self.duration_seconds, 3)),
        );
        let counts = self.events.unwrap_or_default();
        out.insert(
            "events".into(),
            json!({
                "expected": counts.expected,
                "received": counts.received,
                "missed": counts.missed,
                "duplicated": counts.duplicated,
                "out_of_order": counts.out_of_order,
                "unexpected": counts.unexpected,
                "excused": counts.excused,
                "foreign": self.foreign_events,
            }),
        );
        let hist = |h: &Option<Histogram<u64>>| h.as_ref().map(percentiles).unwrap_or(Value::Null);
        out.insert("latency_ms".into(), hist(&self.latency));
        out.insert("latency_from_send_ms".into(), hist(&self.latency_from_send));
        out.insert("write_latency_ms".into(), hist(&self.write_latency));
        out.insert("create_latency_ms".into(), hist(&self.create_latency));
        out.insert("update_latency_ms".into(), hist(&self.update_latency));
        let rate = |v: Option<f64>| v.map(|v| json!(round(v, 2))).unwrap_or(Value::Null);
        out.insert("writes".into(), json!(self.writes));
        out.insert("writes_per_sec".into(), rate(self.writes_per_sec));
        out.insert("creates_per_sec".into(), rate(self.creates_per_sec));
        out.insert("updates_per_sec".into(), rate(self.updates_per_sec));
        out.insert("events_per_sec".into(), rate(self.events_per_sec));
        out.insert("lists".into(), json!(self.lists));
        out.insert("lists_per_sec".into(), rate(self.lists_per_sec));
        out.insert("list_mb_per_sec".into(), rate(self.list_mb_per_sec));
        out.insert("list_bytes".into(), json!(self.list_bytes));
        out.insert("preload_seconds".into(), rate(self.preload_seconds));
        out.insert(
            "errors".into(),
            json!({
                "write": self.write_errors,
                "watch": self.watch_errors,
                "list": self.list_errors,
                "short_lists": self.short_lists,
                "relists": self.relists,
                "throttled": self.throttled,
            }),
        );
        out.insert(
            "watchers".into(),
            json!({"total": self.watchers, "watching": self.watchers_watching}),
        );
        if self.scenario == "relist-storm" {
            out.insert(
                "storm".into(),
                json!({
                    "seconds_to_all_watching": self.storm_seconds_to_all_watching.map(|v| round(v, 3)),
                    "watching_p50_seconds": self.storm_watching_p50_s.map(|v| round(v, 3)),
                    "errors": self.storm_errors,
                }),
            );
        }
        let mut processes = Map::new();
        let mut loadgen = json!({});
        for (pid, usage) in &self.processes {
            let figures = json!({
                "cpu_seconds": round(usage.cpu_seconds(), 3),
                "cores": round(usage.cpu_seconds() / self.duration_seconds.max(1e-9), 3),
                "peak_rss_bytes": usage.peak_rss_bytes,
                "vm_hwm_bytes": usage.hwm_bytes,
            });
            match pid {
                Some(pid) => {
                    processes.insert(pid.to_string(), figures);
                }
                None => loadgen = figures,
            }
        }
        if let Some(bytes) = self.loadgen_bytes_per_watcher {
            loadgen["bytes_per_watcher"] = json!(bytes);
        }
        out.insert("processes".into(), Value::Object(processes));
        out.insert("loadgen".into(), loadgen);
        Value::Object(out)
    }
}

/// The whole report: the run, and the etcd baseline beside it if there was one.
pub fn report_json(main: &Results, baseline: Option<&Results>) -> Value {
    let mut value = main.to_json();
    if let Some(baseline) = baseline {
        value["baseline"] = baseline.to_json();
        value["ratio"] = ratios(main, baseline)
            .into_iter()
            .map(|(name, ratio)| (name, json!(round(ratio, 3))))
            .collect::<Map<_, _>>()
            .into();
    }
    value
}

/// The headline figures as (name, value, lower is better).
fn figures(results: &Results) -> Vec<(String, f64, bool)> {
    let mut figures = Vec::new();
    let mut hist = |name: &str, h: &Option<Histogram<u64>>| {
        if let Some(h) = h.as_ref().filter(|h| !h.is_empty()) {
            for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
                figures.push((
                    format!("{name}.{label}"),
                    h.value_at_quantile(q) as f64 / 1000.0,
                    true,
                ));
            }
            figures.push((format!("{name}.max"), h.max() as f64 / 1000.0, true));
        }
    };
    hist("latency_ms", &results.latency);
    hist("latency_from_send_ms", &results.latency_from_send);
    hist("write_latency_ms", &results.write_latency);
    let rates = [
        ("writes_per_sec", results.writes_per_sec),
        ("creates_per_sec", results.creates_per_sec),
        ("updates_per_sec", results.updates_per_sec),
        ("events_per_sec", results.events_per_sec),
        ("lists_per_sec", results.lists_per_sec),
        ("list_mb_per_sec", results.list_mb_per_sec),
    ];
    for (name, value) in rates {
        if let Some(value) = value {
            figures.push((name.to_string(), value, false));
        }
    }
    if let Some(seconds) = results.storm_seconds_to_all_watching {
        figures.push(("storm.seconds_to_all_watching".to_string(), seconds, true));
    }
    figures
}

/// kubecache / baseline for every figure both runs have.
pub fn ratios(main: &Results, baseline: &Results) -> Vec<(String, f64)> {
    let base: BTreeMap<String, f64> = figures(baseline)
        .into_iter()
        .map(|(name, value, _)| (name, value))
        .collect();
    figures(main)
        .into_iter()
        .filter_map(|(name, value, _)| {
            let b = *base.get(&name)?;
            (b > 0.0).then(|| (name, value / b))
        })
        .collect()
}

/// The human-readable summary.
pub fn summary(main: &Results, baseline: Option<&Results>) -> String {
    let mut out = String::new();
    let counts = main.events.unwrap_or_default();
    let _ = writeln!(
        out,
        "\nkubecache-loadgen {} — {:.1} s against {}",
        main.scenario, main.duration_seconds, main.target
    );
    if main.events.is_some() {
        let _ = writeln!(
            out,
            "events: expected {}  received {}  missed {}  duplicated {}  out-of-order {}  unexpected {}  excused {}",
            counts.expected,
            counts.received,
            counts.missed,
            counts.duplicated,
            counts.out_of_order,
            counts.unexpected,
            counts.excused
        );
        let _ = writeln!(
            out,
            "watchers: {} ({} watching)  errors: watch {}  write {}  relists {}",
            main.watchers,
            main.watchers_watching,
            main.watch_errors,
            main.write_errors,
            main.relists
        );
    } else {
        let _ = writeln!(
            out,
            "errors: write {}  list {}  short lists {}",
            main.write_errors, main.list_errors, main.short_lists
        );
    }
    if let Some(base) = baseline
        && base.events.is_some()
    {
        let c = base.events.unwrap_or_default();
        let _ = writeln!(
            out,
            "etcd baseline events: expected {}  received {}  missed {}  duplicated {}  out-of-order {}",
            c.expected, c.received, c.missed, c.duplicated, c.out_of_order
        );
    }
    let base: BTreeMap<String, f64> = baseline
        .map(|b| figures(b).into_iter().map(|(n, v, _)| (n, v)).collect())
        .unwrap_or_default();
    let _ = writeln!(out);
    if baseline.is_some() {
        let _ = writeln!(
            out,
            "{:<34} {:>14} {:>14} {:>8}",
            "figure", main.target, "etcd", "ratio"
        );
    } else {
        let _ = writeln!(out, "{:<34} {:>14}", "figure", main.target);
    }
    for (name, value, _) in figures(main) {
        match base.get(&name) {
            Some(b) if baseline.is_some() => {
                let ratio = if *b > 0.0 { value / b } else { f64::NAN };
                let _ = writeln!(out, "{name:<34} {value:>14.3} {b:>14.3} {ratio:>8.2}");
            }
            _ if baseline.is_some() => {
                let _ = writeln!(out, "{name:<34} {value:>14.3} {:>14} {:>8}", "-", "-");
            }
            _ => {
                let _ = writeln!(out, "{name:<34} {value:>14.3}");
            }
        }
    }
    let _ = writeln!(out);
    for run in std::iter::once(main).chain(baseline) {
        for (pid, usage) in &run.processes {
            let name = match pid {
                Some(pid) => format!("pid {pid}"),
                None => "loadgen".to_string(),
            };
            let _ = writeln!(
                out,
                "{:<10} {name:<12} cpu {:>8.2} s ({:.2} cores)  peak RSS {:>8.1} MiB",
                format!("[{}]", run.target),
                usage.cpu_seconds(),
                usage.cpu_seconds() / run.duration_seconds.max(1e-9),
                usage.peak_rss_bytes as f64 / (1 << 20) as f64
            );
        }
    }
    if let Some(bytes) = main.loadgen_bytes_per_watcher {
        let _ = writeln!(
            out,
            "loadgen memory per watcher: {:.1} KiB",
            bytes as f64 / 1024.0
        );
    }
    if let Some(seconds) = main.storm_seconds_to_all_watching {
        let _ = writeln!(out, "relist storm: all watching after {seconds:.3} s");
    }
    out
}

/// A self-contained HTML page: the summary, latency over time and latency distribution.
pub fn html(main: &Results, baseline: Option<&Results>) -> String {
    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kubecache-loadgen ");
    page.push_str(&escape(&main.scenario));
    page.push_str("</title><style>body{font-family:sans-serif;margin:2em;max-width:960px}pre{background:#f6f6f6;padding:1em;overflow-x:auto}svg{border:1px solid #ddd;margin:1em 0}</style></head><body>\n");
    let _ = writeln!(
        page,
        "<h1>kubecache-loadgen: {}</h1>",
        escape(&main.scenario)
    );
    let _ = writeln!(page, "<pre>{}</pre>", escape(&summary(main, baseline)));
    let over_time: Vec<Series> = [(main, "#1f77b4"), (baseline.unwrap_or(main), "#d62728")]
        .into_iter()
        .take(if baseline.is_some() { 2 } else { 1 })
        .flat_map(|(results, color)| {
            let per = |q: f64| {
                results
                    .per_second
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| !h.is_empty())
                    .map(|(s, h)| (s as f64, h.value_at_quantile(q) as f64 / 1000.0))
                    .collect::<Vec<_>>()
            };
            vec![
                (format!("{} p99", results.target), color, per(0.99)),
                (format!("{} p50", results.target), color, per(0.5)),
            ]
        })
        .collect();
    if over_time.iter().any(|(_, _, points)| !points.is_empty()) {
        page.push_str("<h2>Event latency from send over time</h2>\n");
        page.push_str(&plot(
            &over_time,
            "seconds since the writers started",
            "ms",
            false,
        ));
    }
    let mut distributions = Vec::new();
    for (results, color) in [(Some(main), "#1f77b4"), (baseline, "#d62728")] {
        let Some(results) = results else { continue };
        let histogram = results
            .latency_from_send
            .as_ref()
            .or(results.latency.as_ref())
            .or(results.write_latency.as_ref());
        if let Some(histogram) = histogram.filter(|h| !h.is_empty()) {
            distributions.push((results.target.clone(), color, distribution(histogram)));
        }
    }
    if !distributions.is_empty() {
        page.push_str("<h2>Latency distribution</h2>\n<p>x: percentile on a log scale of 1/(1−q): 90, 99, 99.9, 99.99</p>\n");
        page.push_str(&plot(
            &distributions,
            "percentile (log of 1/(1-q))",
            "ms",
            true,
        ));
    }
    let json = serde_json::to_string_pretty(&report_json(main, baseline)).unwrap_or_default();
    let _ = writeln!(page, "<h2>JSON</h2><pre>{}</pre>", escape(&json));
    page.push_str("</body></html>\n");
    page
}

/// (log10(1/(1-q)), latency ms) points of a histogram, up to 99.99%.
fn distribution(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    let mut x = 0.0;
    while x <= 4.0 {
        let q = 1.0 - 10f64.powf(-x);
        points.push((x, histogram.value_at_quantile(q) as f64 / 1000.0));
        x += 0.05;
    }
    points
}

/// One line of a plot: label, colour, (x, y) points.
type Series<'a> = (String, &'a str, Vec<(f64, f64)>);

/// An SVG line plot of several series; dashed lines for series whose label ends in p50.
fn plot(series: &[Series], x_label: &str, y_label: &str, percentile_axis: bool) -> String {
    let (width, height, left, bottom, top, right) = (860.0, 360.0, 70.0, 40.0, 20.0, 170.0);
    let points = series.iter().flat_map(|(_, _, p)| p.iter());
    let x_max = points.clone().map(|p| p.0).fold(1e-9, f64::max);
    let y_max = points.map(|p| p.1).fold(1e-9, f64::max) * 1.05;
    let sx = |x: f64| left + x / x_max * (width - left - right);
    let sy = |y: f64| height - bottom - y / y_max * (height - bottom - top);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-size=\"11\">\n"
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#333\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{0}\" stroke=\"#333\"/>",
        height - bottom,
        width - right
    );
    for i in 0..=4 {
        let y = y_max * i as f64 / 4.0;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{y:.1}</text><line x1=\"{left}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#eee\"/>",
            left - 4.0,
            sy(y),
            width - right
        );
        let x = x_max * i as f64 / 4.0;
        let label = if percentile_axis {
            format!("{:.4}", 100.0 * (1.0 - 10f64.powf(-x)))
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        } else if x_max < 10.0 {
            format!("{x:.1}")
        } else {
            format!("{x:.0}")
        };
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            sx(x),
            height - bottom + 14.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text><text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {3})\" text-anchor=\"middle\">{}</text>",
        (left + width - right) / 2.0,
        height - 6.0,
        escape(x_label),
        height / 2.0,
        escape(y_label)
    );
    for (i, (label, color, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let dash = if label.ends_with("p50") {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"{dash} points=\"{}\"/>",
            path.join(" ")
        );
        let ly = top + 14.0 * i as f64;
        let _ = writeln!(
            svg,
            "<line x1=\"{0}\" y1=\"{ly}\" x2=\"{1}\" y2=\"{ly}\" stroke=\"{color}\"{dash}/><text x=\"{2}\" y=\"{3}\">{4}</text>",
            width - right + 10.0,
            width - right + 30.0,
            width - right + 34.0,
            ly + 4.0,
            escape(label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::{histogram, record_ns};

    fn sample(target: &str, scale: u64) -> Results {
        let mut latency = histogram();
        for ms in 1..=100 {
            record_ns(&mut latency, ms * 1_000_000 * scale);
        }
        let mut results = Results::new("fanout");
        results.target = target.to_string();
        results.duration_seconds = 10.0;
        results.events = Some(Counts {
            expected: 10,
            received: 10,
            ..Counts::default()
        });
        results.latency = Some(latency.clone());
        results.latency_from_send = Some(latency.clone());
        results.write_latency = Some(latency.clone());
        results.per_second = vec![latency];
        results.writes_per_sec = Some(50.0);
        results.events_per_sec = Some(100.0 * scale as f64);
        results.processes.insert(Some(42), Usage::default());
        results.processes.insert(None, Usage::default());
        results
    }

    #[test]
    fn the_json_report_has_the_issue_field_names() {
        let main = sample("kubecache", 1);
        let base = sample("etcd", 2);
        let value = report_json(&main, Some(&base));
        assert_eq!(value["scenario"], "fanout");
        for field in [
            "expected",
            "received",
            "missed",
            "duplicated",
            "out_of_order",
        ] {
            assert!(value["events"][field].is_u64(), "events.{field}");
        }
        for histogram in ["latency_ms", "latency_from_send_ms", "write_latency_ms"] {
            for p in ["p50", "p90", "p99", "p999", "max"] {
                assert!(value[histogram][p].is_f64(), "{histogram}.{p}");
            }
        }
        let max = value["latency_ms"]["max"].as_f64().expect("a number");
        assert!((100.0..100.2).contains(&max), "max {max} ms");
        assert_eq!(value["writes_per_sec"], 50.0);
        assert!(value["events_per_sec"].is_f64());
        assert!(value.get("lists_per_sec").is_some());
        assert!(value.get("list_mb_per_sec").is_some());
        let process = &value["processes"]["42"];
        assert!(process["cpu_seconds"].is_f64());
        assert!(process["peak_rss_bytes"].is_u64());
        assert_eq!(value["baseline"]["scenario"], "fanout");
        let max = value["baseline"]["latency_ms"]["max"]
            .as_f64()
            .expect("a number");
        assert!((200.0..200.3).contains(&max), "baseline max {max} ms");
        // kubecache / baseline: half the latency, half the events/s.
        assert_eq!(value["ratio"]["latency_ms.max"], 0.5);
        assert_eq!(value["ratio"]["events_per_sec"], 0.5);
    }

    #[test]
    fn the_html_report_is_self_contained_with_two_plots() {
        let main = sample("kubecache", 1);
        let base = sample("etcd", 2);
        let page = html(&main, Some(&base));
        assert_eq!(page.matches("<svg").count(), 2);
        assert!(page.contains("<polyline"));
        assert!(!page.contains("<script"));
        assert!(!page.contains("http://") || !page.contains("src=\"http"));
        let text = summary(&main, Some(&base));
        assert!(text.contains("latency_from_send_ms.p99"));
        assert!(text.contains("0.50"), "{text}");
    }
}
