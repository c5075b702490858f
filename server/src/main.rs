use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kubecache_server::cli::{Cli, Command, RewriteArgs, ServeArgs, StorageCommand};
use kubecache_server::{filters, kubelet, server, service_accounts, serving, tls};
use kubecache_store::service_accounts::Controllers;
use kubecache_store::storage_format::FormattedBackend;
use tokio::net::TcpListener;

/// mimalloc instead of glibc malloc: the fan-out allocates and frees a frame per event and
/// history keeps tens of thousands of object versions alive between them; glibc spent a third
/// of the server's CPU in malloc/free/consolidation on the fanout load and fragmented its
/// arenas (docs/PERFORMANCE.md, "Watch fan-out: memory and CPU per connection").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Storage(StorageCommand::Rewrite(args)) => runtime.block_on(rewrite(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kubecache: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The storage the flags name, behind the storage format they name, and the etcd client's
/// own services (metrics, compaction, readiness) when it is etcd.
async fn open_storage(
    args: &ServeArgs,
) -> Result<
    (
        Arc<FormattedBackend>,
        Option<Arc<kubecache_server::etcd::Etcd>>,
    ),
    String,
> {
    let format = args.storage_format.format()?;
    let storage = args.storage()?;
    let opened = server::open_backend(&storage)
        .await
        .map_err(|e| format!("cannot open storage ({}): {e}", storage.describe()))?;
    let backend = Arc::new(FormattedBackend::new(
        opened.backend,
        &args.etcd_prefix,
        format,
    ));
    Ok((backend, opened.etcd))
}

/// `kubecache storage rewrite`: every object of each resource written again.
async fn rewrite(args: RewriteArgs) -> Result<(), String> {
    let (backend, _) = open_storage(&args.server).await?;
    let root = args.server.etcd_prefix.trim_end_matches('/');
    let mut unreadable = 0;
    for name in &args.resource {
        let prefix = server::storage_prefix_of(root, name);
        let done = backend
            .rewrite(&prefix)
            .await
            .map_err(|e| format!("rewriting {name}: {e}"))?;
        println!(
            "{name}: {} rewritten, {} changed meanwhile, {} unreadable",
            done.rewritten,
            done.skipped,
            done.unreadable.len()
        );
        for value in &done.unreadable {
            println!("  {value}");
        }
        unreadable += done.unreadable.len();
    }
    match unreadable {
        0 => Ok(()),
        n => Err(format!(
            "{n} objects could not be read and were left as they are"
        )),
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let admission = args.admission()?;
    let storage = args.storage()?;
    let (backend, etcd) = open_storage(&args).await?;
    let security = &args.security;
    let tls = match security.secure_port {
        0 => None,
        _ => Some(tls::server_config(
            &serving_cert(&args),
            security.client_ca_file.as_deref(),
        )?),
    };
    let controllers = server::ControllerConfig {
        enabled: Controllers::parse(&args.service_accounts.controllers)?,
        root_ca: root_ca(tls.as_ref(), security.tls_cert_file.as_deref())?,
        quota_sync_period: args.service_accounts.resource_quota_sync_period,
    };
    let tokens = service_accounts::Tokens::load(&args.tokens())?;
    let api = server::build_api_with(
        backend,
        &args.etcd_prefix,
        args.reads(),
        admission,
        controllers,
    )
    .await
    .map_err(|e| format!("cannot initialise storage: {e}"))?;
    let _ = api.tokens.set(std::sync::Arc::new(tokens));
    if let Some(etcd) = etcd {
        etcd.start(&api);
    }
    let kubelets = kubelet::Kubelets::new(&args.kubelet.options())?;
    let _ = api.kubelets.set(std::sync::Arc::new(kubelets));
    let shutdown = shutdown_signal();
    let chain = filters::Chain::new(&security.chain_options()?, &api)?;
    let app = filters::apply(server::router(api), chain.clone());
    let mut listeners = Vec::new();
    if args.insecure_port != 0 {
        let tcp = bind(args.insecure_bind_address, args.insecure_port).await?;
        let addr = server::local_addr(&tcp);
        println!(
            "kubecache serving the Kubernetes API on http://{addr} (storage: {})",
            storage.describe()
        );
        println!("try: kubectl --server http://{addr} get namespaces");
        listeners.push(serving::Listener { tcp, tls: None });
    }
    if let Some(tls) = tls {
        let tcp = bind(security.bind_address, security.secure_port).await?;
        let addr = server::local_addr(&tcp);
        println!(
            "kubecache serving securely on https://{addr} (storage: {})",
            storage.describe()
        );
        if let Some(ca) = &tls.generated_ca {
            println!(
                "self-signed serving certificate in {}; clients trust {}",
                ca.with_file_name(tls::GENERATED_CERT).display(),
                ca.display()
            );
        }
        listeners.push(serving::Listener {
            tcp,
            tls: Some(tls.config),
        });
    }
    if listeners.is_empty() {
        return Err("both --insecure-port and --secure-port are 0: nothing to serve".to_string());
    }
    serving::run(
        listeners,
        app,
        chain.drain.clone(),
        shutdown,
        security.shutdown_timeout,
    )
    .await;
    Ok(())
}

async fn bind(address: std::net::IpAddr, port: u16) -> Result<TcpListener, String> {
    TcpListener::bind((address, port))
        .await
        .map_err(|e| format!("cannot listen on {address}:{port}: {e}"))
}

/// The serving certificate: the files given, or one generated in --cert-dir, in the data
/// dir, or in a new temporary directory.
fn serving_cert(args: &ServeArgs) -> tls::ServingCert {
    let security = &args.security;
    if let (Some(cert), Some(key)) = (&security.tls_cert_file, &security.tls_private_key_file) {
        return tls::ServingCert::Files {
            cert: cert.clone(),
            key: key.clone(),
        };
    }
    let dir = security
        .cert_dir
        .clone()
        .or_else(|| args.data_dir.as_ref().map(|dir| dir.join("tls")))
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("kubecache-certs-{}", std::process::id()))
        });
    tls::ServingCert::Generated { dir }
}

/// The CA bundle the `kube-root-ca.crt` ConfigMaps publish: what clients verify the secure
/// port with — the generated CA, else the serving certificate file's chain; empty without
/// a secure port.
fn root_ca(tls: Option<&tls::Tls>, cert_file: Option<&std::path::Path>) -> Result<String, String> {
    let source = match (tls.and_then(|t| t.generated_ca.as_ref()), cert_file) {
        (Some(ca), _) => ca.as_path(),
        (None, Some(chain)) if tls.is_some() => chain,
        _ => return Ok(String::new()),
    };
    std::fs::read_to_string(source)
        .map_err(|e| format!("cannot read the serving CA {}: {e}", source.display()))
}

/// SIGTERM or SIGINT. The handlers are installed when this is called (before the ports
/// are announced), so a signal sent as soon as the server serves is never missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("cannot install the SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("cannot install the SIGINT handler");
    async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
    }
}
