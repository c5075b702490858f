//! kube-apiserver's admission plugin flags: `--enable-admission-plugins`,
//! `--disable-admission-plugins` (kube's plugin names and default-enabled set) and
//! `--admission-control-config-file` (an `AdmissionConfiguration`, of which kubecache reads
//! the ResourceQuota plugin's configuration).
//!
//! Every name kube-apiserver 1.33 registers is accepted, so a kube-apiserver command line
//! works unchanged; only the plugins kubecache implements change anything (see
//! [`IMPLEMENTED`]). An unknown name, or one both enabled and disabled, is a startup error
//! with kube's message.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// Every admission plugin kube-apiserver 1.33 registers, in its order.
pub const KNOWN: &[&str] = &[
    "AlwaysAdmit",
    "NamespaceAutoProvision",
    "NamespaceLifecycle",
    "NamespaceExists",
    "AlwaysPullImages",
    "ImagePolicyWebhook",
    "PodSecurity",
    "PodNodeSelector",
    "Priority",
    "DefaultTolerationSeconds",
    "PodTolerationRestriction",
    "EventRateLimit",
    "ExtendedResourceToleration",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "OwnerReferencesPermissionEnforcement",
    "PersistentVolumeClaimResize",
    "RuntimeClass",
    "CertificateApproval",
    "CertificateSigning",
    "ClusterTrustBundleAttest",
    "CertificateSubjectRestriction",
    "DefaultIngressClass",
    "DenyServiceExternalIPs",
    "PodTopologyLabels",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
    "AlwaysDeny",
    "ServiceAccount",
    "NodeRestriction",
    "TaintNodesByCondition",
    "LimitRanger",
    "LimitPodHardAntiAffinityTopology",
];

/// kube-apiserver 1.33's default-enabled plugins (`DefaultOffAdmissionPlugins`' complement).
pub const DEFAULT_ENABLED: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "TaintNodesByCondition",
    "PodSecurity",
    "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "PersistentVolumeClaimResize",
    "RuntimeClass",
    "CertificateApproval",
    "CertificateSigning",
    "ClusterTrustBundleAttest",
    "CertificateSubjectRestriction",
    "DefaultIngressClass",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
];

/// The plugins kubecache implements, which the flags turn on and off.
pub const IMPLEMENTED: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "Priority",
    "DefaultTolerationSeconds",
    "ResourceQuota",
];

/// Which plugins run.
#[derive(Debug, Clone)]
pub struct Enabled(BTreeSet<String>);

impl Default for Enabled {
    fn default() -> Self {
        Enabled(DEFAULT_ENABLED.iter().map(|s| s.to_string()).collect())
    }
}

impl Enabled {
    /// The default set, plus `enable`, minus `disable` (kube's `--enable-admission-plugins`
    /// and `--disable-admission-plugins`).
    pub fn from_flags(enable: &[String], disable: &[String]) -> Result<Enabled, String> {
        let mut errors = Vec::new();
        for (flag, names) in [
            ("enable-admission-plugins", enable),
            ("disable-admission-plugins", disable),
        ] {
            for name in names {
                if !KNOWN.contains(&name.as_str()) {
                    errors.push(format!("{flag} plugin {name:?} is unknown"));
                }
            }
        }
        let overlap: Vec<&String> = enable.iter().filter(|n| disable.contains(n)).collect();
        if !overlap.is_empty() {
            let names: Vec<&str> = overlap.iter().map(|n| n.as_str()).collect();
            errors.push(format!(
                "[{}] in enable-admission-plugins and disable-admission-plugins overlapped",
                names.join(" ")
            ));
        }
        if !errors.is_empty() {
            return Err(errors.join(", "));
        }
        let mut enabled = Enabled::default();
        enabled.0.extend(enable.iter().cloned());
        for name in disable {
            enabled.0.remove(name);
        }
        Ok(enabled)
    }

    pub fn is_enabled(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// The ResourceQuota plugin's configuration: resources whose consumption requires a quota
/// that covers it (kube's `limitedResources`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaConfiguration {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub limited_resources: Vec<LimitedResource>,
}

/// One `limitedResources` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitedResource {
    #[serde(default)]
    pub api_group: String,
    pub resource: String,
    /// Usage names containing any of these need a covering quota (`requests.cpu` contains
    /// `cpu`).
    #[serde(default)]
    pub match_contains: Vec<String>,
    /// Scopes the object matches that need a quota with that scope.
    #[serde(default)]
    pub match_scopes: Vec<Value>,
}

/// The versions and kinds kube accepts for the ResourceQuota configuration.
const QUOTA_CONFIGURATION_KINDS: &[(&str, &str)] = &[
    ("apiserver.config.k8s.io/v1", "ResourceQuotaConfiguration"),
    ("resourcequota.admission.k8s.io/v1beta1", "Configuration"),
    ("resourcequota.admission.k8s.io/v1", "Configuration"),
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionConfiguration {
    api_version: String,
    kind: String,
    #[serde(default)]
    plugins: Vec<PluginConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PluginConfiguration {
    name: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    configuration: Option<Value>,
}

/// Reads `--admission-control-config-file`: the ResourceQuota plugin's configuration, inline
/// or at its `path` (relative to the file). Any problem is an error naming it.
pub fn read_config_file(file: &Path) -> Result<QuotaConfiguration, String> {
    let context = |e: &dyn std::fmt::Display| {
        format!("--admission-control-config-file {}: {e}", file.display())
    };
    let text = std::fs::read_to_string(file).map_err(|e| context(&e))?;
    let config: AdmissionConfiguration = serde_yaml_ng::from_str(&text).map_err(|e| context(&e))?;
    let accepted = [
        ("apiserver.config.k8s.io/v1", "AdmissionConfiguration"),
        ("apiserver.config.k8s.io/v1alpha1", "AdmissionConfiguration"),
        ("apiserver.k8s.io/v1alpha1", "AdmissionConfiguration"),
    ];
    if !accepted.contains(&(config.api_version.as_str(), config.kind.as_str())) {
        return Err(context(&format!(
            "{}/{} is not an AdmissionConfiguration (apiserver.config.k8s.io/v1)",
            config.api_version, config.kind
        )));
    }
    let mut quota = QuotaConfiguration::default();
    for plugin in config.plugins {
        if !KNOWN.contains(&plugin.name.as_str()) {
            return Err(context(&format!("plugin {:?} is unknown", plugin.name)));
        }
        if plugin.name != "ResourceQuota" {
            continue;
        }
        let value = match (plugin.configuration, plugin.path) {
            (Some(value), _) => value,
            (None, Some(path)) => {
                let path = file.parent().unwrap_or(Path::new(".")).join(path);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| context(&format!("{}: {e}", path.display())))?;
                serde_yaml_ng::from_str(&text)
                    .map_err(|e| context(&format!("{}: {e}", path.display())))?
            }
            (None, None) => continue,
        };
        quota = serde_json::from_value(value)
            .map_err(|e| context(&format!("ResourceQuota configuration: {e}")))?;
        let kind = (
            quota.api_version.as_deref().unwrap_or_default(),
            quota.kind.as_deref().unwrap_or_default(),
        );
        if !QUOTA_CONFIGURATION_KINDS.contains(&kind) {
            return Err(context(&format!(
                "ResourceQuota configuration: {}/{} is not a ResourceQuotaConfiguration (apiserver.config.k8s.io/v1)",
                kind.0, kind.1
            )));
        }
        if let Some(entry) = quota
            .limited_resources
            .iter()
            .find(|r| r.resource.is_empty())
        {
            return Err(context(&format!(
                "ResourceQuota configuration: limitedResources entry {entry:?} names no resource"
            )));
        }
    }
    Ok(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_follow_kube_apiserver() {
        let enabled =
            Enabled::from_flags(&names(&["AlwaysPullImages"]), &names(&["LimitRanger"])).unwrap();
        assert!(enabled.is_enabled("ResourceQuota"));
        assert!(enabled.is_enabled("AlwaysPullImages"));
        assert!(!enabled.is_enabled("LimitRanger"));
        assert_eq!(
            Enabled::from_flags(&names(&["Nope"]), &[]).unwrap_err(),
            "enable-admission-plugins plugin \"Nope\" is unknown"
        );
        assert_eq!(
            Enabled::from_flags(&names(&["LimitRanger"]), &names(&["LimitRanger"])).unwrap_err(),
            "[LimitRanger] in enable-admission-plugins and disable-admission-plugins overlapped"
        );
    }

    #[test]
    fn the_quota_configuration_is_read_inline_or_from_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admission.yaml");
        std::fs::write(&file, "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: ResourceQuota\n  path: quota.yaml\n").unwrap();
        std::fs::write(dir.path().join("quota.yaml"), "apiVersion: apiserver.config.k8s.io/v1\nkind: ResourceQuotaConfiguration\nlimitedResources:\n- resource: pods\n  matchContains: [cpu]\n").unwrap();
        let config = read_config_file(&file).unwrap();
        assert_eq!(config.limited_resources[0].resource, "pods");
        assert_eq!(config.limited_resources[0].match_contains, vec!["cpu"]);
        std::fs::write(&file, "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: ResourceQuota\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: ResourceQuotaConfiguration\n    limitedResources:\n    - resourc: pods\n").unwrap();
        let err = read_config_file(&file).unwrap_err();
        assert!(err.contains("unknown field `resourc`"), "{err}");
        std::fs::write(&file, "kind: Nope\napiVersion: v1\n").unwrap();
        assert!(
            read_config_file(&file)
                .unwrap_err()
                .contains("is not an AdmissionConfiguration")
        );
    }
}
