//! tillmesh's deterministic simulator: many peers (tills and an HQ) in one thread, one `u64`
//! seed driving the network, the clocks, the crashes and the workload, in the manner of
//! TigerBeetle's VOPR and FoundationDB's simulation.
//!
//! A run has a *faulty phase* (tills take orders and payments, HQ settles, while frames are
//! delayed, lost, duplicated and reordered, sets of nodes are partitioned and nodes crash and
//! restart with fresh Automerge actors), then a *healed phase* (no faults, no writes,
//! anti-entropy on) that must bring every node to the same documents, then a *quiet phase* that
//! must fall silent, and finally the invariants of the reliability model: identical heads
//! everywhere, nothing acknowledged lost, no duplicate order numbers or `localId`s, HQ's signed
//! settlements in force on every node, and nothing a revoked till wrote after its revocation on
//! any other node. One invariant is checked as the run goes: a node that marks everything synced
//! with a peer is right (the peer durably holds all of it). The same seed always gives the same
//! [`Report`] (with the same [`Digest`]); a failure is a [`SimError`] naming the seed.
//!
//! The simulator runs the real peer: every node is a [`tillmesh_mesh::MeshCore`] — the same
//! state machine a till runs in a shop, with admission, the roster and revocations, relays, flow
//! control, anti-entropy and marking synced — driven with simulated connections (requests,
//! answers, timeouts, blocks), network, time and storage ([`tillmesh_sync::MemoryDocuments`]
//! standing in for the store, with writes that fail and crashes between a write and its
//! answer). Every write goes through [`tillmesh_core`]'s document API. Nothing here reads the
//! system clock, spawns a thread or does I/O, and no result depends on hash-map iteration order.
//!
//! # Layout
//! - [`config`]: [`SimConfig`] and its network, fault and workload parts.
//! - [`simulation`]: [`Simulation`], the tick loop and the phases.
//! - `node`: one peer, its durable state and its volatile mesh core and actor.
//! - `storage`: a node's durable state as the core's storage, with storage faults.
//! - `connections`: who is connected (topology, blocks), requests awaiting answers.
//! - `network`: frames in flight, per-link faults, partitions.
//! - `workload`: what tills and HQ write.
//! - `ledger`: the oracle of acknowledged writes and HQ's settlements.
//! - `invariants`: the checks after healing.
//! - [`report`]: [`Stats`], [`Progress`], [`Report`] and its [`Digest`].
//! - [`rng`]: the seeded generator ([`SimRng`]); [`clock`]: simulated time ([`SimClock`]).
//! - `error`: [`SimError`].
//!
//! ```
//! use tillmesh_sim::{SimConfig, run};
//!
//! let mut config = SimConfig::new(7, 2);
//! config.faulty_ticks = 300;
//! let report = run(&config).expect("invariants hold");
//! assert_eq!(report.digest, run(&config).expect("same again").digest);
//! ```

#![deny(missing_docs)]

pub mod clock;
pub mod config;
mod connections;
pub mod error;
mod invariants;
mod ledger;
mod network;
mod node;
pub mod report;
pub mod rng;
pub mod simulation;
mod storage;
mod workload;

pub use clock::SimClock;
pub use config::{EditWeights, FaultConfig, NetworkConfig, SimConfig, Topology, WorkloadConfig};
pub use error::SimError;
pub use report::{Digest, Phase, Progress, Report, Stats};
pub use rng::SimRng;
pub use simulation::Simulation;

/// Runs one simulation to the end and checks its invariants.
pub fn run(config: &SimConfig) -> Result<Report, SimError> {
    Simulation::new(config)?.run(&mut |_| {})
}

/// Like [`run`], calling `observer` with progress along the way.
pub fn run_observed(config: &SimConfig, mut observer: impl FnMut(&Progress)) -> Result<Report, SimError> {
    Simulation::new(config)?.run(&mut observer)
}
