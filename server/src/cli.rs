//! The `kubecache` command line. Flag names follow kube-apiserver's where the meaning is the
//! same, so an operator's muscle memory carries over.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use kubecache_cache::WatchCacheConfig;

use crate::server::{ReadConfig, StorageConfig};

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

    /// Address of the plain-HTTP port. It has no authentication: keep it on loopback.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub insecure_bind_address: IpAddr,

    /// Port of the plain-HTTP, unauthenticated API (0 picks a free port).
    #[arg(long, default_value_t = 8080, value_name = "PORT")]
    pub insecure_port: u16,

    /// Serve GET/LIST/WATCH from the in-memory watch cache; with false, every read goes to
    /// storage.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub watch_cache: bool,

    /// Watch-cache shards (threads); default: one per core.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// Authorizers, in order: AlwaysAllow, AlwaysDeny, RBAC (comma separated). The first
    /// that allows or denies decides; members of system:masters are always allowed.
    #[arg(long, default_value = "AlwaysAllow", value_name = "MODE[,MODE...]")]
    pub authorization_mode: String,
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
        ReadConfig::WatchCache(config)
    }

    pub fn storage(&self) -> StorageConfig {
        if self.etcd_servers.is_empty() {
            StorageConfig::Embedded {
                data_dir: self.data_dir.clone(),
            }
        } else {
            StorageConfig::Etcd {
                endpoints: self.etcd_servers.clone(),
            }
        }
    }
}
