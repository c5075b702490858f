use std::process::ExitCode;

use clap::Parser;
use kubecache_server::cli::{Cli, Command, ServeArgs};
use kubecache_server::server;
use tokio::net::TcpListener;

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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kubecache: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let modes = kubecache_server::authz::parse_modes(&args.authorization_mode)?;
    let storage = args.storage();
    let backend = server::open_backend(&storage)
        .await
        .map_err(|e| format!("cannot open storage ({}): {e}", storage.describe()))?;
    let api = server::build_api(backend, &args.etcd_prefix, args.reads())
        .await
        .map_err(|e| format!("cannot initialise storage: {e}"))?;
    kubecache_server::authz::install(&api, &modes);
    let listener = TcpListener::bind((args.insecure_bind_address, args.insecure_port))
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}:{}: {e}",
                args.insecure_bind_address, args.insecure_port
            )
        })?;
    let addr = server::local_addr(&listener);
    println!(
        "kubecache serving the Kubernetes API on http://{addr} (storage: {})",
        storage.describe()
    );
    println!("try: kubectl --server http://{addr} get namespaces");
    server::serve(listener, api, shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("cannot install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
