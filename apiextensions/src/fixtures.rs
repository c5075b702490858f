//! Test data from real systems (`shared/fixtures` beside the repository, see its README):
//! the published CRDs of cert-manager and the Prometheus operator, read once for every test
//! of this crate and, through the `fixtures` feature, of the crates above it; and the values
//! a real kube-apiserver wrote into etcd (`kube-storage`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

/// `$KUBECACHE_FIXTURES/<set>` when set, else `shared/fixtures/<set>` in the nearest ancestor
/// of the crate that has it (`/work/shared` for `/work/main` and its worktrees alike).
pub fn dir(set: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBECACHE_FIXTURES") {
        return Path::new(&dir).join(set);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/fixtures").join(set))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| {
            panic!("shared/fixtures/{set} in an ancestor of the crate (or KUBECACHE_FIXTURES)")
        })
}

/// The published CRDs, one directory per project.
pub fn crd_dir() -> PathBuf {
    dir("crds")
}

/// One value kube-apiserver wrote into etcd (`pod.bin`, `job.bin`) or the object it served
/// for it (`pod.json`, `job.json`).
pub fn kube_storage(file: &str) -> Vec<u8> {
    let path = dir("kube-storage").join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every fixture CRD as JSON, with its file's path, sorted by path.
pub fn crds() -> &'static [(String, Value)] {
    static CRDS: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    CRDS.get_or_init(|| {
        let mut crds = Vec::new();
        for project in std::fs::read_dir(crd_dir()).expect("the fixtures directory") {
            let project = project.expect("a readable entry").path();
            for file in std::fs::read_dir(&project).expect("a readable project directory") {
                let path = file.expect("a readable entry").path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    let text = std::fs::read_to_string(&path).expect("a readable fixture");
                    let crd: Value = serde_yaml_ng::from_str(&text)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    crds.push((path.display().to_string(), crd));
                }
            }
        }
        crds.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            crds.len(),
            16,
            "the cert-manager and Prometheus operator CRDs"
        );
        crds
    })
}

/// The fixture CRD whose file name is `name` (`cert-manager.io_certificates.yaml`).
pub fn crd(name: &str) -> Value {
    crds()
        .iter()
        .find(|(path, _)| path.ends_with(&format!("/{name}")))
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .1
        .clone()
}
