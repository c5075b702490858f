//! The `kubecache` command line. Flag names follow kube-apiserver's where the meaning is the
//! same, so an operator's muscle memory carries over.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use kubecache_cache::WatchCacheConfig;

use crate::server::{ReadConfig, StorageConfig};
use std::time::Duration;

use crate::audit::LogOptions;
use crate::filters::ChainOptions;

/// kubecache: a Kubernetes API storage and watch tier. It serves the Kubernetes REST API,
/// stores objects in etcd (or in its embedded store) and serves reads from memory.
#[derive(Debug, Parser)]
#[command(name = "kubecache", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Kubernetes API.
    Serve(ServeArgs),
    /// Maintain what is in storage (run with the server's own flags).
    #[command(subcommand)]
    Storage(StorageCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// etcd client URLs, comma separated (e.g. http://127.0.0.1:2379). Without it,
    /// kubecache uses its embedded store.
    #[arg(long, value_delimiter = ',', value_name = "URL[,URL...]")]
    pub etcd_servers: Vec<String>,

    /// Prefix of every key kubecache writes in etcd (kube-apiserver's default).
    #[arg(long, default_value = "/registry", value_name = "PREFIX")]
    pub etcd_prefix: String,

    /// Directory where the embedded store persists its data; it survives restarts and
    /// kill -9. Without it the embedded store lives in memory. Ignored with --etcd-servers.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address of the plain-HTTP port. It has no authentication (every request runs as
    /// system:unsecured, in system:masters): keep it on loopback.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub insecure_bind_address: IpAddr,

    /// Port of the plain-HTTP, unauthenticated API; 0 turns it off.
    #[arg(long, default_value_t = 8080, value_name = "PORT")]
    pub insecure_port: u16,

    /// Serve GET/LIST/WATCH from the in-memory watch cache; with false, every read goes to
    /// storage.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub watch_cache: bool,

    /// Watch-cache shards (threads); default: one per core.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// Per resource, the watch-cache history (kept for watches resuming from an older
    /// resourceVersion: at least 1,000 events and 75 s, at most 100,000 events) holds beyond
    /// its first 1,000 events at most this many MiB of object versions (0: no byte bound).
    #[arg(long, value_name = "MIB")]
    pub watch_cache_history_mib: Option<usize>,

    /// The range Service cluster IPs are allocated from (one IPv4 or IPv6 CIDR, at most 2^20
    /// addresses).
    #[arg(long, default_value = "10.0.0.0/24", value_name = "CIDR")]
    pub service_cluster_ip_range: kubecache_admission::ServiceCidr,

    /// Admission plugins to enable besides kube-apiserver's default set (kube's plugin
    /// names, comma separated; the order is kubecache's own, as kube's).
    #[arg(long, value_delimiter = ',', value_name = "NAME[,NAME...]")]
    pub enable_admission_plugins: Vec<String>,

    /// Admission plugins to disable, even if on by default.
    #[arg(long, value_delimiter = ',', value_name = "NAME[,NAME...]")]
    pub disable_admission_plugins: Vec<String>,

    /// An AdmissionConfiguration (apiserver.config.k8s.io/v1, YAML or JSON): the
    /// ResourceQuota plugin's configuration (limitedResources) is read from it.
    #[arg(long, value_name = "FILE")]
    pub admission_control_config_file: Option<PathBuf>,
    /// The secure port, TLS, authentication, authorization, audit and limits.
    #[command(flatten)]
    pub security: SecurityArgs,

    /// Service-account tokens and the in-process controllers.
    #[command(flatten)]
    pub service_accounts: ServiceAccountArgs,

    /// etcd: TLS, timeouts, compaction, storage metrics.
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// How kubelets are reached (logs, exec, attach, port-forward, the proxies).
    #[command(flatten)]
    pub kubelet: KubeletArgs,
    /// How objects are encoded and encrypted at rest.
    #[command(flatten)]
    pub storage_format: StorageFormatArgs,
}

/// kube-apiserver's etcd flags (names, defaults and meanings are kube's unless said
/// otherwise; see docs/OPERATIONS.md). They apply with --etcd-servers.
#[derive(Debug, Args)]
pub struct EtcdArgs {
    /// CA bundle (PEM) the etcd members' serving certificates are verified with. Any of the
    /// three TLS flags makes every --etcd-servers URL https://.
    #[arg(long, value_name = "FILE")]
    pub etcd_cafile: Option<PathBuf>,

    /// Client certificate (PEM) presented to etcd (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "etcd_keyfile")]
    pub etcd_certfile: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_certfile")]
    pub etcd_keyfile: Option<PathBuf>,

    /// How often etcd is compacted, in cooperation with every other kube-apiserver and
    /// kubecache on the same etcd (kube's `compact_rev_key` protocol); 0 turns it off.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub etcd_compaction_interval: Duration,

    /// How often the number of stored objects per resource is counted
    /// (`apiserver_storage_objects`); 0 turns it off.
    #[arg(long, default_value = "1m", value_parser = parse_duration, value_name = "DURATION")]
    pub etcd_count_metric_poll_period: Duration,

    /// How long /readyz waits for etcd before the `etcd` check fails.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub etcd_readycheck_timeout: Duration,

    /// kubecache's own: how long one etcd request may take, retries on other members
    /// included, before it fails as unavailable (kube-apiserver bounds them by the API
    /// request's deadline instead).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub etcd_request_timeout: Duration,
}

impl EtcdArgs {
    /// The etcd settings for `endpoints`: the TLS files read, bare `host:port` endpoints
    /// given the scheme TLS implies.
    pub fn config(&self, endpoints: &[String]) -> Result<crate::etcd::EtcdConfig, String> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let tls = if self.etcd_cafile.is_some() || self.etcd_certfile.is_some() {
            Some(kubecache_storage::etcd::EtcdTls {
                ca_pem: self.etcd_cafile.as_ref().map(read).transpose()?,
                client: match (&self.etcd_certfile, &self.etcd_keyfile) {
                    (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                    _ => None,
                },
            })
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoints = endpoints
            .iter()
            .map(|endpoint| {
                if endpoint.contains("://") {
                    endpoint.clone()
                } else {
                    format!("{scheme}://{endpoint}")
                }
            })
            .collect();
        Ok(crate::etcd::EtcdConfig {
            endpoints,
            options: kubecache_storage::etcd::EtcdOptions {
                request_timeout: self.etcd_request_timeout,
                tls,
                ..Default::default()
            },
            compaction_interval: self.etcd_compaction_interval,
            count_poll_period: self.etcd_count_metric_poll_period,
            readycheck_timeout: self.etcd_readycheck_timeout,
        })
    }
}

/// kube-apiserver's kubelet client flags, and where a pod or node proxy may go.
#[derive(Debug, Args)]
pub struct KubeletArgs {
    /// Node address types tried in order to reach a kubelet.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = crate::kubelet::DEFAULT_ADDRESS_TYPES,
        value_name = "TYPE[,TYPE...]"
    )]
    pub kubelet_preferred_address_types: Vec<String>,

    /// Client certificate (PEM) kubecache presents to kubelets.
    #[arg(long, value_name = "FILE", requires = "kubelet_client_key")]
    pub kubelet_client_certificate: Option<PathBuf>,

    /// The key of --kubelet-client-certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "kubelet_client_certificate")]
    pub kubelet_client_key: Option<PathBuf>,

    /// CA bundle (PEM) kubelets' serving certificates are verified with; without it they
    /// are not verified (as kube-apiserver).
    #[arg(long, value_name = "FILE")]
    pub kubelet_certificate_authority: Option<PathBuf>,

    /// Let pod and node proxies reach loopback and link-local addresses (refused by
    /// default, as kube-apiserver: "address not allowed"). For development and tests.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_loopback_proxy_targets: bool,
}

impl KubeletArgs {
    pub fn options(&self) -> crate::kubelet::KubeletOptions {
        crate::kubelet::KubeletOptions {
            preferred_address_types: self.kubelet_preferred_address_types.clone(),
            client_cert: self
                .kubelet_client_certificate
                .clone()
                .zip(self.kubelet_client_key.clone()),
            certificate_authority: self.kubelet_certificate_authority.clone(),
            allow_loopback_proxy_targets: self.allow_loopback_proxy_targets,
        }
    }
}

/// kube-apiserver's service-account token flags, and kube-controller-manager's
/// `--controllers` for the few controllers kubecache runs itself.
#[derive(Debug, Args)]
pub struct ServiceAccountArgs {
    /// Private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 P-256) service-account tokens are
    /// signed with. Without it a P-256 key is generated and kept in DATA_DIR (or --cert-dir).
    #[arg(long, value_name = "FILE")]
    pub service_account_signing_key_file: Option<PathBuf>,

    /// Keys (PEM, public or private) tokens are verified with; repeatable. Default: the
    /// signing key.
    #[arg(long, value_delimiter = ',', value_name = "FILE")]
    pub service_account_key_file: Vec<PathBuf>,

    /// Issuer (`iss`) of service-account tokens; repeatable: the first issues, all are
    /// accepted.
    #[arg(long, value_name = "URL")]
    pub service_account_issuer: Vec<String>,

    /// Audiences the API accepts in tokens, comma separated. Default: the issuers.
    #[arg(long, value_delimiter = ',', value_name = "AUDIENCE[,AUDIENCE...]")]
    pub api_audiences: Vec<String>,

    /// The `jwks_uri` of /.well-known/openid-configuration. Default: this server's
    /// /openid/v1/jwks at the host the client asked for.
    #[arg(long, value_name = "URL")]
    pub service_account_jwks_uri: Option<String>,

    /// In-process controllers, comma separated, kube-controller-manager's syntax: `*` for
    /// all on by default, `name` to turn one on, `-name` to turn one off. Known:
    /// serviceaccount, root-ca-cert-publisher, serviceaccount-token, resourcequota.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "*",
        value_name = "NAME[,NAME...]"
    )]
    pub controllers: Vec<String>,

    /// How often the resourcequota controller recounts every quota's usage (it also
    /// recounts a quota when it is created or changed and when an object of its namespace is
    /// deleted), kube-controller-manager's flag (Go duration: 5m, 30s).
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub resource_quota_sync_period: Duration,
}

impl ServeArgs {
    pub fn reads(&self) -> ReadConfig {
        if !self.watch_cache {
            return ReadConfig::Storage;
        }
        let mut config = WatchCacheConfig::default();
        if let Some(shards) = self.shards {
            config.shards = shards.max(1);
        }
        if let Some(mib) = self.watch_cache_history_mib {
            config.history_max_bytes = if mib == 0 { usize::MAX } else { mib << 20 };
        }
        ReadConfig::WatchCache(config)
    }

    /// The admission settings; an unknown plugin name or a bad configuration file is an
    /// error naming the problem.
    pub fn admission(&self) -> Result<kubecache_admission::Config, String> {
        use kubecache_admission::plugins;
        let plugins = plugins::Enabled::from_flags(
            &self.enable_admission_plugins,
            &self.disable_admission_plugins,
        )?;
        let quota = match &self.admission_control_config_file {
            Some(file) => plugins::read_config_file(file)?,
            None => Default::default(),
        };
        Ok(kubecache_admission::Config {
            service_cluster_ip_range: self.service_cluster_ip_range.clone(),
            plugins,
            quota,
            ..Default::default()
        })
    }

    /// The token keys and issuers. A generated signing key is kept in `--cert-dir`, else
    /// in the data dir, so tokens stay valid across restarts.
    pub fn tokens(&self) -> crate::service_accounts::TokenConfig {
        let accounts = &self.service_accounts;
        crate::service_accounts::TokenConfig {
            signing_key_file: accounts.service_account_signing_key_file.clone(),
            key_files: accounts.service_account_key_file.clone(),
            issuers: accounts.service_account_issuer.clone(),
            api_audiences: accounts.api_audiences.clone(),
            generated_key_dir: self
                .security
                .cert_dir
                .clone()
                .or_else(|| self.data_dir.as_ref().map(|dir| dir.join("tls"))),
            jwks_uri: accounts.service_account_jwks_uri.clone(),
        }
    }

    pub fn storage(&self) -> Result<StorageConfig, String> {
        Ok(if self.etcd_servers.is_empty() {
            StorageConfig::Embedded {
                data_dir: self.data_dir.clone(),
            }
        } else {
            StorageConfig::Etcd(self.etcd.config(&self.etcd_servers)?)
        })
    }
}

/// The flags of the secure port and the filter chain (see docs/SECURITY.md). Names and
/// meanings are kube-apiserver's.
#[derive(Debug, Args)]
pub struct SecurityArgs {
    /// Address of the secure (TLS) port.
    #[arg(long, default_value = "0.0.0.0", value_name = "IP")]
    pub bind_address: IpAddr,

    /// The HTTPS port, authenticated and authorized; 0 turns it off.
    #[arg(long, default_value_t = 6443, value_name = "PORT")]
    pub secure_port: u16,

    /// The serving certificate (PEM, leaf first, then intermediates). Without it and
    /// --tls-private-key-file a self-signed one is generated in --cert-dir.
    #[arg(long, value_name = "FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// The serving certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,

    /// Where a generated serving certificate is kept; default: DATA_DIR/tls with
    /// --data-dir, else a new temporary directory.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,

    /// CA bundle (PEM) for client certificates: a certificate it signed authenticates
    /// as its common name (CN), in its organizations (O) as groups.
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// Static bearer tokens, CSV lines `token,user,uid,"group1,group2"`.
    #[arg(long, value_name = "FILE")]
    pub token_auth_file: Option<PathBuf>,

    /// Serve requests without credentials as system:anonymous (group
    /// system:unauthenticated); with false they are refused 401.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub anonymous_auth: bool,

    /// Authorizers, comma separated, asked in order: AlwaysAllow, AlwaysDeny, RBAC.
    /// (kube-apiserver's default on a real cluster is Node,RBAC.)
    #[arg(long, default_value = "AlwaysAllow", value_name = "MODE[,MODE...]")]
    pub authorization_mode: String,

    /// Write audit events as JSON lines to this file (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub audit_log_path: Option<PathBuf>,

    /// Audit policy (audit.k8s.io/v1 Policy, YAML or JSON); default: Metadata for all.
    #[arg(long, value_name = "FILE")]
    pub audit_policy_file: Option<PathBuf>,

    /// Rotate the audit log at this many megabytes (0: 100, as kube-apiserver).
    #[arg(long, default_value_t = 0, value_name = "MB")]
    pub audit_log_maxsize: u64,

    /// Rotated audit logs kept (0: all).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub audit_log_maxbackup: usize,

    /// Days rotated audit logs are kept (0: no age limit).
    #[arg(long, default_value_t = 0, value_name = "DAYS")]
    pub audit_log_maxage: u64,

    /// Origins allowed for CORS, as regular expressions, comma separated (anchor them:
    /// `^https://dash\.example\.com$`). CORS is off without it.
    #[arg(long, value_delimiter = ',', value_name = "REGEX[,REGEX...]")]
    pub cors_allowed_origins: Vec<String>,

    /// Time limit of requests that are not long-running (Go duration: 60s, 1m30s).
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,

    /// Read-only requests served at once; beyond, 429 (0: unlimited).
    #[arg(long, default_value_t = 400, value_name = "N")]
    pub max_requests_inflight: usize,

    /// Mutating requests served at once; beyond, 429 (0: unlimited).
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub max_mutating_requests_inflight: usize,

    /// On SIGTERM/SIGINT, how long requests in flight may take to finish.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_timeout: Duration,

    /// Test-only routes under /debug/kubecache/ (panic, sleep).
    #[arg(long, hide = true)]
    pub debug_test_routes: bool,
}

impl SecurityArgs {
    pub fn chain_options(&self) -> Result<ChainOptions, String> {
        Ok(ChainOptions {
            authorization_modes: crate::authz::parse_modes(&self.authorization_mode)?,
            token_auth_file: self.token_auth_file.clone(),
            anonymous_auth: self.anonymous_auth,
            audit_log: self.audit_log_path.as_ref().map(|path| LogOptions {
                path: path.clone(),
                max_size_mb: self.audit_log_maxsize,
                max_backups: self.audit_log_maxbackup,
                max_age_days: self.audit_log_maxage,
            }),
            audit_policy_file: self.audit_policy_file.clone(),
            cors_allowed_origins: self.cors_allowed_origins.clone(),
            request_timeout: self.request_timeout,
            max_requests_inflight: self.max_requests_inflight,
            max_mutating_requests_inflight: self.max_mutating_requests_inflight,
            debug_routes: self.debug_test_routes,
        })
    }
}

/// A Go duration (`300ms`, `1.5h`, `1m30s`, `0`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?} (examples: 60s, 1m30s, 500ms)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

// ---------------------------------------------------------------------------------------
// Storage format and encryption at rest (kube-apiserver's flags), and `kubecache storage`.

/// `--storage-media-type` and `--encryption-provider-config`, as kube-apiserver's.
#[derive(Debug, Args)]
pub struct StorageFormatArgs {
    /// How built-in objects are written: application/vnd.kubernetes.protobuf (kube-apiserver's
    /// default) or application/json. Custom resources are always JSON; both are read.
    #[arg(
        long,
        default_value = "application/vnd.kubernetes.protobuf",
        value_name = "MEDIA TYPE"
    )]
    pub storage_media_type: String,

    /// An EncryptionConfiguration (apiserver.config.k8s.io/v1): which resources are encrypted
    /// at rest, with which providers (aescbc, aesgcm, secretbox, identity) and keys.
    #[arg(long, value_name = "FILE")]
    pub encryption_provider_config: Option<PathBuf>,
}

impl StorageFormatArgs {
    /// The format, or why the flags cannot be used (a startup error).
    pub fn format(&self) -> Result<kubecache_store::storage_format::StorageFormat, String> {
        use kubecache_store::storage_format::{EncryptionConfig, MediaType, StorageFormat};
        let media_type = MediaType::parse(&self.storage_media_type)?;
        let encryption = match &self.encryption_provider_config {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "cannot read --encryption-provider-config {}: {e}",
                        path.display()
                    )
                })?;
                let config = EncryptionConfig::parse(&text)
                    .map_err(|e| format!("--encryption-provider-config {}: {e}", path.display()))?;
                Some(std::sync::Arc::new(config))
            }
        };
        Ok(StorageFormat {
            media_type,
            encryption,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Rewrites every object of the given resources in the current format with the current
    /// encryption key (after adding a key first in --encryption-provider-config, before
    /// removing the old one). Takes the server's flags; safe while servers run (each object is
    /// replaced by compare-and-swap).
    Rewrite(RewriteArgs),
}

#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Resources to rewrite, comma separated: `secrets`, `deployments.apps`, `widgets.example.com`.
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        value_name = "RESOURCE[,RESOURCE...]"
    )]
    pub resource: Vec<String>,

    #[command(flatten)]
    pub server: ServeArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "60", "s", "1x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn security_flags() {
        let cli = Cli::try_parse_from([
            "kubecache",
            "serve",
            "--authorization-mode",
            "RBAC,AlwaysDeny",
            "--request-timeout",
            "2m",
            "--cors-allowed-origins",
            "^a$,^b$",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let options = args.security.chain_options().unwrap();
        assert_eq!(
            options.authorization_modes,
            vec![
                crate::authz::AuthorizationMode::Rbac,
                crate::authz::AuthorizationMode::AlwaysDeny
            ]
        );
        assert_eq!(options.request_timeout, Duration::from_secs(120));
        assert_eq!(options.cors_allowed_origins, vec!["^a$", "^b$"]);
        assert_eq!(args.security.secure_port, 6443);
        let bad =
            Cli::try_parse_from(["kubecache", "serve", "--authorization-mode", "Node"]).unwrap();
        let Command::Serve(args) = bad.command else {
            panic!("not serve")
        };
        assert!(args.security.chain_options().is_err());
        // A certificate needs its key.
        assert!(Cli::try_parse_from(["kubecache", "serve", "--tls-cert-file", "c.pem"]).is_err());
    }

    #[test]
    fn etcd_flags() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ca.crt", "client.crt", "client.key"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let (ca, cert, key) = (file("ca.crt"), file("client.crt"), file("client.key"));
        let cli = Cli::try_parse_from([
            "kubecache",
            "serve",
            "--etcd-servers",
            "10.0.0.1:2379,https://10.0.0.2:2379",
            "--etcd-cafile",
            &ca,
            "--etcd-certfile",
            &cert,
            "--etcd-keyfile",
            &key,
            "--etcd-compaction-interval",
            "0",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve");
        };
        let StorageConfig::Etcd(config) = args.storage().unwrap() else {
            panic!("etcd storage expected");
        };
        // TLS makes bare endpoints https://.
        assert_eq!(
            config.endpoints,
            vec!["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
        );
        let tls = config.options.tls.unwrap();
        assert_eq!(tls.ca_pem.as_deref(), Some(&b"ca.crt"[..]));
        assert_eq!(
            tls.client,
            Some((b"client.crt".to_vec(), b"client.key".to_vec()))
        );
        assert_eq!(config.compaction_interval, Duration::ZERO);
        // kube's defaults.
        assert_eq!(config.count_poll_period, Duration::from_secs(60));
        assert_eq!(config.readycheck_timeout, Duration::from_secs(2));

        let cli = Cli::try_parse_from(["kubecache", "serve", "--etcd-servers", "e:2379"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve");
        };
        let StorageConfig::Etcd(config) = args.storage().unwrap() else {
            panic!("etcd storage expected");
        };
        assert_eq!(config.endpoints, vec!["http://e:2379"]);
        assert_eq!(config.options.tls, None);
        assert_eq!(config.compaction_interval, Duration::from_secs(300));

        // A certificate needs its key; an unreadable file is an error naming it.
        let half = ["kubecache", "serve", "--etcd-certfile", "c.pem"];
        assert!(Cli::try_parse_from(half).is_err());
        let cli = Cli::try_parse_from([
            "kubecache",
            "serve",
            "--etcd-servers",
            "e:2379",
            "--etcd-cafile",
            "/nonexistent/ca.crt",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve");
        };
        let error = args.storage().unwrap_err();
        assert!(error.contains("/nonexistent/ca.crt"), "{error}");
    }
}
