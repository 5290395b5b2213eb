//! A byte-counting TCP proxy on 127.0.0.1: every connection it accepts is forwarded to one
//! upstream address, and every byte it carries is counted, each way. It can cut every
//! connection it carries (the link drops; new connections are still accepted).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Bytes carried so far, each way.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Carried {
    /// From the proxy's clients to upstream.
    pub(crate) to_upstream: u64,
    /// From upstream back to the clients.
    pub(crate) to_clients: u64,
}

impl Carried {
    pub(crate) fn total(self) -> u64 {
        self.to_upstream + self.to_clients
    }

    /// What was carried since `earlier`.
    pub(crate) fn since(self, earlier: Carried) -> Carried {
        Carried {
            to_upstream: self.to_upstream - earlier.to_upstream,
            to_clients: self.to_clients - earlier.to_clients,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    to_upstream: AtomicU64,
    to_clients: AtomicU64,
    /// When the latest connection was accepted.
    last_accepted: Mutex<Option<Instant>>,
    /// The forwarding task of every connection accepted, aborted by [`Proxy::cut`].
    connections: Mutex<Vec<JoinHandle<()>>>,
}

/// The proxy; it stops (and drops its connections) when dropped.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// Where it listens.
    pub(crate) address: SocketAddr,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream`.
    pub(crate) async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept(listener, upstream, Arc::clone(&counters)));
        Proxy { address, counters, accept }
    }

    /// Bytes carried so far.
    pub(crate) fn carried(&self) -> Carried {
        Carried {
            to_upstream: self.counters.to_upstream.load(Ordering::Relaxed),
            to_clients: self.counters.to_clients.load(Ordering::Relaxed),
        }
    }

    /// When the latest connection was accepted.
    pub(crate) fn last_accepted(&self) -> Option<Instant> {
        *self.counters.last_accepted.lock().expect("lock")
    }

    /// Drops every connection carried now (both ends see it closed).
    pub(crate) fn cut(&self) {
        for connection in self.counters.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, counters: Arc<Counters>) {
    while let Ok((client, _)) = listener.accept().await {
        *counters.last_accepted.lock().expect("lock") = Some(Instant::now());
        let connection = tokio::spawn(forward(client, upstream, Arc::clone(&counters)));
        counters.connections.lock().expect("lock").push(connection);
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, counters: Arc<Counters>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    // No Nagle delay added by the proxy: the tills set no-delay on their own sockets.
    for stream in [&client, &server] {
        stream.set_nodelay(true).expect("nodelay");
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pipe(client_read, server_write, &counters.to_upstream),
        pipe(server_read, client_write, &counters.to_clients),
    );
}

/// Copies `from` to `to`, counting, until either end closes.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, counter: &AtomicU64) {
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(read @ 1..) = from.read(&mut buffer).await {
        counter.fetch_add(read as u64, Ordering::Relaxed);
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
