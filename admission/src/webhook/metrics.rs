//! kube's webhook metrics, counted here and rendered by the server's `/metrics`:
//! `apiserver_admission_webhook_admission_duration_seconds` (histogram by name, type,
//! operation, rejected), `apiserver_admission_webhook_request_total` (by name, type,
//! operation, code, rejected) and `apiserver_admission_webhook_rejection_count` (by name,
//! type, operation, error_type, rejection_code).

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;

/// kube's buckets of `apiserver_admission_webhook_admission_duration_seconds`.
pub const DURATION_BUCKETS: [f64; 8] = [0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10.0, 25.0];

/// name, type, operation, rejected.
pub type CallLabels = (String, &'static str, &'static str, bool);

/// A duration histogram (per-bucket counts, not cumulative; the last slot is above every
/// bound).
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    pub buckets: [u64; DURATION_BUCKETS.len() + 1],
    pub sum: f64,
    pub count: u64,
}

/// Why a webhook refused: kube's `error_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    /// The webhook said no.
    NoError,
    /// It could not be called (failurePolicy Fail).
    CallingWebhookError,
    /// kubecache failed around the call.
    ApiserverInternalError,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::NoError => "no_error",
            Rejection::CallingWebhookError => "calling_webhook_error",
            Rejection::ApiserverInternalError => "apiserver_internal_error",
        }
    }
}

/// Everything counted so far.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub durations: BTreeMap<CallLabels, Histogram>,
    /// By labels and HTTP code.
    pub requests: BTreeMap<(CallLabels, u16), u64>,
    /// name, type, operation, error type, code.
    pub rejections: BTreeMap<(String, &'static str, &'static str, Rejection, u16), u64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    counted: Mutex<Snapshot>,
}

impl Metrics {
    /// One call of webhook `labels.0`, answered with `code` (0: never answered).
    pub fn observe(&self, labels: CallLabels, code: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        let mut counted = self.counted.lock();
        let histogram = counted.durations.entry(labels.clone()).or_default();
        histogram.buckets[bucket] += 1;
        histogram.sum += seconds;
        histogram.count += 1;
        *counted.requests.entry((labels, code)).or_default() += 1;
    }

    pub fn reject(&self, labels: &CallLabels, why: Rejection, code: u16) {
        let key = (labels.0.clone(), labels.1, labels.2, why, code);
        *self.counted.lock().rejections.entry(key).or_default() += 1;
    }

    pub fn snapshot(&self) -> Snapshot {
        self.counted.lock().clone()
    }
}
