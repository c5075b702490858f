//! What admission tells the client and the audit log besides its verdict: warnings (the
//! client's `Warning: 299` headers) and audit annotations, gathered for the request being
//! served, as kube's admission plugins add them to the request's context
//! (`warning.AddWarning`, `Attributes.AddAnnotation`).
//!
//! The server runs each request inside [`scope`] and turns what was gathered into headers and
//! audit annotations; outside a scope (the server's own writes) notes are dropped.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;

/// What one request gathered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    /// In the order added, without duplicates (kube's recorder drops repeated warnings).
    pub warnings: Vec<String>,
    pub audit_annotations: BTreeMap<String, String>,
}

tokio::task_local! {
    static CURRENT: Arc<Mutex<Notes>>;
}

/// Runs `request`, gathering its notes.
pub async fn scope<F: Future>(request: F) -> (F::Output, Notes) {
    let notes = Arc::new(Mutex::new(Notes::default()));
    let output = CURRENT.scope(notes.clone(), request).await;
    let gathered = std::mem::take(&mut *notes.lock());
    (output, gathered)
}

/// Adds a warning for the client.
pub fn warn(warning: &str) {
    let _ = CURRENT.try_with(|notes| {
        let mut notes = notes.lock();
        if !notes.warnings.iter().any(|w| w == warning) {
            notes.warnings.push(warning.to_string());
        }
    });
}

/// Adds an audit annotation; the first value set for a key stays, as kube keeps it.
pub fn annotate(key: &str, value: &str) {
    let _ = CURRENT.try_with(|notes| {
        notes
            .lock()
            .audit_annotations
            .entry(key.to_string())
            .or_insert_with(|| value.to_string());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notes_are_gathered_inside_a_scope_only() {
        warn("dropped");
        let ((), notes) = scope(async {
            warn("a");
            warn("a");
            tokio::task::yield_now().await;
            warn("b");
            annotate("k", "1");
            annotate("k", "2");
        })
        .await;
        assert_eq!(notes.warnings, vec!["a", "b"]);
        assert_eq!(notes.audit_annotations["k"], "1");
    }
}
