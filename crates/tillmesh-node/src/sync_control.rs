//! What the till's runtime and its sync driver share, in a leaf both import: the controls the
//! HTTP API uses to reach the driver, and the driver's traffic counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tillmesh_core::SignedRosterEntry;
use tokio::sync::{mpsc, watch};

/// How the HTTP API reaches the sync driver, once one runs.
#[derive(Debug, Clone)]
pub struct SyncControl {
    /// Asks for a reconciliation with every peer now.
    pub request: mpsc::Sender<()>,
    /// Hands the driver a signed roster entry (a revocation, a new till) to apply and pass on.
    pub roster: mpsc::Sender<SignedRosterEntry>,
    /// The admitted peers, by remote name.
    pub peers: watch::Receiver<Vec<String>>,
    /// The driver's traffic counters.
    pub stats: Arc<SyncStats>,
}

/// Traffic counters of a mesh member, for benchmarks and monitoring, and the signal that its
/// sync status moved without a document being written.
#[derive(Debug)]
pub struct SyncStats {
    /// Frames sent (requests and responses).
    pub frames_sent: AtomicU64,
    /// Bytes of frames sent.
    pub bytes_sent: AtomicU64,
    /// Frames received (requests and responses).
    pub frames_received: AtomicU64,
    /// Bytes of frames received.
    pub bytes_received: AtomicU64,
    /// Requests sent: each is one round trip.
    pub requests_sent: AtomicU64,
    /// Document messages from peers refused (not loadable or not valid), repeats included.
    pub documents_refused: AtomicU64,
    /// Counts the times documents were marked synced with a peer: what the sync status shows
    /// changed though no document was written (the change stream's `sync` event).
    pub marked_synced: watch::Sender<u64>,
}

impl Default for SyncStats {
    fn default() -> Self {
        SyncStats {
            frames_sent: AtomicU64::default(),
            bytes_sent: AtomicU64::default(),
            frames_received: AtomicU64::default(),
            bytes_received: AtomicU64::default(),
            requests_sent: AtomicU64::default(),
            documents_refused: AtomicU64::default(),
            marked_synced: watch::Sender::new(0),
        }
    }
}

impl SyncStats {
    pub(crate) fn count_sent(&self, bytes: usize) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn count_received(&self, bytes: usize) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}
