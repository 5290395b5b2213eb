//! What a run did: counters kept during the run ([`Stats`]), progress snapshots ([`Progress`])
//! and the final [`Report`] with a [`Digest`] of everything, which two runs of one seed must
//! share byte for byte.

use std::fmt;

/// Counters of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Orders created.
    pub orders: u64,
    /// Payment transactions recorded (card payments).
    pub transactions: u64,
    /// Edits of existing orders by tills.
    pub edits: u64,
    /// Settlements signed by HQ.
    pub settlements: u64,
    /// Settlements forged by tills (signed with keys of their own).
    pub forgeries: u64,
    /// Frames handed to the network (each encoded to bytes).
    pub frames: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Frames delivered to a session.
    pub delivered: u64,
    /// Frames lost by the network.
    pub dropped_loss: u64,
    /// Frames dropped because a partition cut their link.
    pub dropped_partition: u64,
    /// Frames dropped because their connection had closed (an end crashed or blocked the other).
    pub dropped_crash: u64,
    /// Frames the network delivered twice.
    pub duplicates: u64,
    /// Frames held back beyond the link's delay window.
    pub reordered: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Anti-entropy rounds started (each reconciles a node with every admitted peer).
    pub reconciles: u64,
    /// Writes of what a peer sent that the disk refused (storage faults).
    pub storage_faults: u64,
    /// Crashes between a write and its answer.
    pub crashes_before_ack: u64,
    /// Requests that got no answer (lost, or their answer was never sent).
    pub requests_failed: u64,
    /// Peers blocked (revoked, or not on the roster).
    pub blocks: u64,
    /// Documents created or changed by sync on some node.
    pub synced_docs: u64,
    /// Length of the faulty phase, in ticks.
    pub faulty_ticks: u64,
    /// Healed ticks until every node held the same index.
    pub ticks_to_converge: u64,
    /// Ticks after convergence until no frame was in flight or queued.
    pub ticks_to_quiesce: u64,
}

impl Stats {
    /// Every counter, in declaration order (for digests).
    pub fn values(&self) -> [u64; 24] {
        [
            self.orders,
            self.transactions,
            self.edits,
            self.settlements,
            self.forgeries,
            self.frames,
            self.bytes,
            self.delivered,
            self.dropped_loss,
            self.dropped_partition,
            self.dropped_crash,
            self.duplicates,
            self.reordered,
            self.crashes,
            self.partitions,
            self.reconciles,
            self.storage_faults,
            self.crashes_before_ack,
            self.requests_failed,
            self.blocks,
            self.synced_docs,
            self.faulty_ticks,
            self.ticks_to_converge,
            self.ticks_to_quiesce,
        ]
    }
}

/// Which phase a run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Faults and workload on.
    Faulty,
    /// No faults, no workload, anti-entropy on, until every index is equal.
    Healing,
    /// Converged; no anti-entropy, until no frame is in flight.
    Quiescing,
    /// Done; the invariants were checked.
    Done,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Phase::Faulty => "faulty",
            Phase::Healing => "healing",
            Phase::Quiescing => "quiescing",
            Phase::Done => "done",
        })
    }
}

/// A snapshot for progress output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The run's seed.
    pub seed: u64,
    /// The current phase.
    pub phase: Phase,
    /// The current tick.
    pub tick: u64,
    /// Nodes currently down.
    pub down: usize,
    /// Partitions in force.
    pub partitions: usize,
    /// Frames in flight.
    pub in_flight: usize,
    /// The most documents any node holds.
    pub documents_max: usize,
    /// The fewest documents any node holds.
    pub documents_min: usize,
    /// Counters so far.
    pub stats: Stats,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} tick {:>6} {:<9} docs {}..{} in flight {:>4} down {} partitions {} \
             orders {} edits {} settlements {} frames {}",
            self.seed,
            self.tick,
            self.phase,
            self.documents_min,
            self.documents_max,
            self.in_flight,
            self.down,
            self.partitions,
            self.stats.orders,
            self.stats.edits,
            self.stats.settlements,
            self.stats.frames,
        )
    }
}

/// A 128-bit digest (FNV-1a) of a run: every node's documents and heads, and the counters.
/// Not cryptographic: it tells two runs apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub u128);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Builds a [`Digest`] from bytes fed in order.
#[derive(Debug, Clone)]
pub struct Digester {
    state: u128,
}

impl Default for Digester {
    fn default() -> Self {
        Digester { state: 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d }
    }
}

impl Digester {
    /// A fresh digester.
    pub fn new() -> Digester {
        Digester::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
        for byte in bytes {
            self.state ^= u128::from(*byte);
            self.state = self.state.wrapping_mul(PRIME);
        }
    }

    /// Feeds a number.
    pub fn update_u64(&mut self, value: u64) {
        self.update(&value.to_le_bytes());
    }

    /// The digest of everything fed.
    pub fn finish(&self) -> Digest {
        Digest(self.state)
    }
}

/// The outcome of a run that held every invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The run's seed.
    pub seed: u64,
    /// Tills simulated.
    pub tills: usize,
    /// Whether HQ took part.
    pub hq: bool,
    /// Documents every node holds at the end.
    pub documents: usize,
    /// Counters.
    pub stats: Stats,
    /// Digest of every node's documents and heads, and of the counters.
    pub digest: Digest,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        let hq = if self.hq { " + HQ" } else { "" };
        writeln!(f, "seed {}: {} tills{hq}, all invariants hold", self.seed, self.tills)?;
        writeln!(
            f,
            "  documents   {} on every node ({} orders, {} transactions)",
            self.documents, s.orders, s.transactions
        )?;
        writeln!(
            f,
            "  writes      {} edits, {} settlements signed by HQ, {} forged by tills",
            s.edits, s.settlements, s.forgeries
        )?;
        writeln!(
            f,
            "  network     {} frames, {} bytes, {} delivered, {} docs changed by sync",
            s.frames, s.bytes, s.delivered, s.synced_docs
        )?;
        writeln!(
            f,
            "  faults      {} lost, {} cut by partitions, {} dropped by crashes, {} duplicated, {} reordered",
            s.dropped_loss, s.dropped_partition, s.dropped_crash, s.duplicates, s.reordered
        )?;
        writeln!(
            f,
            "  nodes       {} crashes ({} between a write and its answer), {} partitions, {} anti-entropy rounds",
            s.crashes, s.crashes_before_ack, s.partitions, s.reconciles
        )?;
        writeln!(
            f,
            "  storage     {} writes refused by the disk, {} requests unanswered, {} peers blocked",
            s.storage_faults, s.requests_failed, s.blocks
        )?;
        writeln!(
            f,
            "  time        {} faulty ticks, converged {} ticks after healing, quiet {} ticks later",
            s.faulty_ticks, s.ticks_to_converge, s.ticks_to_quiesce
        )?;
        write!(f, "  digest      {}", self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_tells_inputs_apart() {
        let digest = |bytes: &[u8]| {
            let mut digester = Digester::new();
            digester.update(bytes);
            digester.finish()
        };
        assert_eq!(digest(b"abc"), digest(b"abc"));
        assert_ne!(digest(b"abc"), digest(b"acb"));
        assert_eq!(digest(b"").to_string().len(), 32);
    }
}
