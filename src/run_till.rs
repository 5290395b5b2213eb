//! `tillmesh till`: open the store, join the shop's mesh (with credentials), serve the HTTP API,
//! stop cleanly on SIGTERM or ctrl-c.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tillmesh_core::HqPublicKey;
use tillmesh_net::NetConfig;
use tillmesh_node::{Mesh, MeshConfig, SystemClock, Till, TillConfig};
use tracing_subscriber::EnvFilter;

use crate::TillArgs;
use crate::shop::TillCredentials;

/// How long to wait for the peer listener's address before starting anyway.
const LISTEN_WAIT_MS: u64 = 5_000;

pub(crate) async fn run(args: TillArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let credentials = args.credentials.as_deref().map(TillCredentials::read).transpose()?;
    let code = match (&credentials, args.code.clone()) {
        (Some(credentials), Some(code)) if code != credentials.till_code => {
            bail!("--code {code} does not match the credentials' till {}", credentials.till_code)
        }
        (Some(credentials), _) => credentials.till_code.clone(),
        (None, Some(code)) => code,
        (None, None) => bail!("give --code or --credentials"),
    };
    let mut config = TillConfig::new(args.data_dir.clone(), code);
    config.currency = args.currency;
    config.tax_rate_bps = args.tax_rate_bps;
    if let Some(credentials) = &credentials {
        config.currency = credentials.currency;
        config.tax_rate_bps = credentials.tax_rate_bps;
        config.hq = Some(HqPublicKey::from_hex(&credentials.hq_public_key)?);
    }
    let till = Till::open(config, Arc::new(SystemClock))
        .with_context(|| format!("cannot open the till's store in {}", args.data_dir.display()))?;
    let mesh = match &credentials {
        Some(credentials) => Some(join_mesh(&till, credentials, &args).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot listen on {}", args.http))?;
    let address = listener.local_addr()?;
    // One line on stdout that scripts and tests read to find the till.
    println!("till {} listening on http://{address}", till.device_id());
    tracing::info!(%address, device = till.device_id(), "till started");
    tillmesh_node::http::serve(listener, till, shutdown_signal()).await?;
    if let Some(mesh) = mesh {
        mesh.stop().await;
    }
    tracing::info!("till stopped; store flushed");
    Ok(())
}

async fn join_mesh(till: &Till, credentials: &TillCredentials, args: &TillArgs) -> anyhow::Result<Mesh> {
    let mut net = NetConfig::new(credentials.keypair()?, credentials.shop_key);
    net.listen = args.listen.clone();
    net.peers = args.peer.clone();
    net.mdns = args.mdns;
    let mesh = Mesh::start(
        till.clone(),
        MeshConfig {
            net,
            hq: HqPublicKey::from_hex(&credentials.hq_public_key)?,
            own_entry: credentials.entry.clone(),
            roster: credentials.roster.clone(),
            sync_interval_ms: args.sync_interval_ms,
            held_frames_max: 16,
        },
    )
    .context("cannot join the shop's mesh")?;
    let mut listening = mesh.listening.clone();
    if !args.listen.is_empty() {
        let wait = listening.wait_for(|addresses| !addresses.is_empty());
        // Starting without a printed address is still useful (static peers dial out).
        let _ = tokio::time::timeout(Duration::from_millis(LISTEN_WAIT_MS), wait).await;
    }
    for address in listening.borrow().iter() {
        println!("till {} peer {address}/p2p/{}", till.device_id(), mesh.local_peer_id);
    }
    Ok(mesh)
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
