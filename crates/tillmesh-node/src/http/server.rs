//! Serving a router over HTTP/1.1 with connection hygiene: a total and a per-address limit on
//! open connections, and a header-read timeout that also closes idle keep-alive connections.
//! A flood of idle connections (1,100 from one address on a 1,024-descriptor process) then
//! costs the node at most [`ConnectionLimits::per_address_max`] descriptors, and legitimate
//! clients keep being served.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What an HTTP server of a node takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub connections_max: usize,
    /// Connections open at once from one IP address.
    pub per_address_max: usize,
    /// How long a client may take to send a request's headers, and how long a keep-alive
    /// connection may sit idle.
    pub header_read_timeout_ms: u64,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_grace_ms: u64,
}

impl Default for ConnectionLimits {
    /// 512 connections, 64 per address, 10 s to send headers or sit idle, 10 s to finish at
    /// shutdown: within a 1,024-descriptor process with room for the store and the mesh.
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            connections_max: 512,
            per_address_max: 64,
            header_read_timeout_ms: 10_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// Open connections per address, released by [`AddressSlot`] on drop.
#[derive(Debug, Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

impl PerAddress {
    fn take(self: &Arc<Self>, address: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.0.lock().ok()?;
        let count = open.entry(address).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { counts: Arc::clone(self), address })
    }
}

struct AddressSlot {
    counts: Arc<PerAddress>,
    address: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counts.0.lock()
            && let Some(count) = open.get_mut(&self.address)
        {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then lets in-flight
/// requests finish (up to the grace period).
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.connections_max));
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    let header_read_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before it was taken: wait a
                    // little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached: closed");
            continue;
        };
        let Some(slot) = per_address.take(peer.ip(), limits.per_address_max) else {
            tracing::debug!(%peer, "per-address connection limit reached: closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended");
            }
            drop((permit, slot));
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_millis(limits.shutdown_grace_ms), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the grace period: closed");
    }
    Ok(())
}
