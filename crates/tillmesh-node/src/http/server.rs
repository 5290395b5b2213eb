//! Serving a router over HTTP/1.1 (or HTTPS, given a certificate) with connection hygiene: a
//! total and a per-address limit on open connections, and a header-read timeout that also closes
//! idle keep-alive connections (and bounds a TLS handshake).
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
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
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

/// Why a certificate and key could not be used for HTTPS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM certificate or key.
    #[error("{path}: {detail}")]
    Pem {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the certificate chain or key.
    #[error("certificate or key refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The HTTPS configuration from a PEM certificate chain and a PEM private key.
pub fn tls_config(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |path: &std::path::Path, error: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_path_buf(),
        detail: error.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .map_err(|error| pem(certificate, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem(certificate, error))?;
    if chain.is_empty() {
        return Err(TlsError::Pem { path: certificate.to_path_buf(), detail: "no certificate".to_string() });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|error| pem(key, error))?;
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` within `limits` (over TLS with `tls`) until `shutdown`
/// resolves, then lets in-flight requests finish (up to the grace period).
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
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
        let (router, watcher, tls) = (router.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, router, header_read_timeout, watcher, peer).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, router, header_read_timeout, watcher, peer).await
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
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

/// Serves one connection (plain or TLS) until it ends, watched for graceful shutdown.
async fn serve_connection<I>(
    io: I,
    router: Router,
    header_read_timeout: Duration,
    watcher: Watcher,
    peer: std::net::SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%peer, %error, "connection ended");
    }
}
