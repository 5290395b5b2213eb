//! `tillmesh till`: open the store, serve the HTTP API, stop cleanly on SIGTERM or ctrl-c.

use std::sync::Arc;

use anyhow::Context;
use tillmesh_node::{SystemClock, Till, TillConfig};
use tracing_subscriber::EnvFilter;

use crate::TillArgs;

pub(crate) async fn run(args: TillArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let mut config = TillConfig::new(args.data_dir.clone(), args.code);
    config.currency = args.currency;
    config.tax_rate_bps = args.tax_rate_bps;
    let till = Till::open(config, Arc::new(SystemClock))
        .with_context(|| format!("cannot open the till's store in {}", args.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot listen on {}", args.http))?;
    let address = listener.local_addr()?;
    // One line on stdout that scripts and tests read to find the till.
    println!("till {} listening on http://{address}", till.device_id());
    tracing::info!(%address, device = till.device_id(), "till started");
    tillmesh_node::http::serve(listener, till, shutdown_signal()).await?;
    tracing::info!("till stopped; store flushed");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
