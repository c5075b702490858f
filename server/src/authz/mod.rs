//! Authorization: the `--authorization-mode` chain. Each mode is an [`Authorizer`]; they
//! are asked in order and the first `Allow` or `Deny` wins (kube-apiserver's union
//! authorizer). Members of `system:masters` are allowed everything before any mode is asked.
//!
//! This is the minimal version the filter chain needs (AlwaysAllow, AlwaysDeny; `RBAC` has
//! no opinion here); the RBAC authorizer replaces this file with the same API.

use std::sync::Arc;

use async_trait::async_trait;
use kubecache_cache::ReadPath;
use kubecache_core::authz::{Attributes, Authorizer, Decision, GROUP_MASTERS};

/// One entry of `--authorization-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    AlwaysAllow,
    AlwaysDeny,
    Rbac,
}

/// Parses `--authorization-mode`: comma-separated kube-apiserver mode names.
pub fn parse_modes(flag: &str) -> Result<Vec<AuthorizationMode>, String> {
    let mut modes = Vec::new();
    for name in flag.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let mode = match name {
            "AlwaysAllow" => AuthorizationMode::AlwaysAllow,
            "AlwaysDeny" => AuthorizationMode::AlwaysDeny,
            "RBAC" => AuthorizationMode::Rbac,
            other => {
                return Err(format!(
                    "authorization-mode {other:?} is not supported: use AlwaysAllow, AlwaysDeny or RBAC"
                ));
            }
        };
        if modes.contains(&mode) {
            return Err(format!("authorization-mode {name:?} is given twice"));
        }
        modes.push(mode);
    }
    if modes.is_empty() {
        return Err("at least one authorization-mode must be given".to_string());
    }
    Ok(modes)
}

/// The authorizer for `modes`, evaluated in order.
pub fn build(modes: &[AuthorizationMode], _reads: Arc<dyn ReadPath>) -> Arc<dyn Authorizer> {
    Arc::new(Union {
        modes: modes.to_vec(),
    })
}

struct Union {
    modes: Vec<AuthorizationMode>,
}

#[async_trait]
impl Authorizer for Union {
    async fn authorize(&self, attributes: &Attributes) -> Decision {
        if attributes.user.in_group(GROUP_MASTERS) {
            return Decision::Allow;
        }
        for mode in &self.modes {
            match mode {
                AuthorizationMode::AlwaysAllow => return Decision::Allow,
                AuthorizationMode::AlwaysDeny => {
                    return Decision::Deny("Everything is forbidden.".to_string());
                }
                AuthorizationMode::Rbac => {}
            }
        }
        Decision::NoOpinion(String::new())
    }
}
