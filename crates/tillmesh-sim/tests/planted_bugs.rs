//! Every invariant can fail: each test plants a known bug in the real code — the mesh core, or
//! the document rules (feature `planted-bugs`, on this test thread only) — finds a seed whose run
//! the simulator fails, and checks that the same seed holds once the bug is gone. A simulator
//! that passed with these bugs planted would be checking nothing.

use tillmesh_core::planted::{Bugs, plant};
use tillmesh_sim::{SimConfig, SimError, Topology, run};

/// Seeds tried per bug before giving up.
const SEEDS: u64 = 40;

/// The first seed (from `first`) whose run fails with `bugs` planted, and its error.
fn caught(bugs: Bugs, configs: impl Fn(u64) -> SimConfig, first: u64) -> (SimConfig, SimError) {
    let _planted = plant(bugs);
    for seed in first..first + SEEDS {
        let config = configs(seed);
        if let Err(error) = run(&config) {
            eprintln!("{bugs:?} caught by seed {seed}: {error}");
            return (config, error);
        }
    }
    panic!("{bugs:?}: no seed of {first}..{} caught the bug", first + SEEDS);
}

/// The caught seed holds every invariant once the bug is gone.
fn holds_without_the_bug(config: &SimConfig) {
    if let Err(error) = run(config) {
        panic!("seed {} fails without the bug too: {}", config.seed, error);
    }
}

/// A line of tills on a clean network without anti-entropy: only relays carry a document past
/// its first neighbour.
fn line(seed: u64) -> SimConfig {
    let mut config = SimConfig::new(seed, 4);
    config.topology = Topology::Line;
    config.without_anti_entropy();
    config.faulty_ticks = 1_000;
    config.heal_ticks_max = 3_000;
    config.faults.crash_ppm = 0;
    config.faults.crash_before_ack_ppm = 0;
    config
}

#[test]
fn a_dropped_relay_is_caught() {
    let (config, error) = caught(Bugs { drop_relay: true, ..Bugs::default() }, line, 100);
    assert!(matches!(error, SimError::NotConverged { .. }), "{}", error);
    holds_without_the_bug(&config);
}

/// A till is revoked and comes back; the network is calm so that it surely does.
fn revocation(seed: u64) -> SimConfig {
    let mut config = SimConfig::new(seed, 3);
    config.faulty_ticks = 2_000;
    config.faults.revocation = true;
    config.faults.crash_ppm = 0;
    config.faults.down_ticks_max = 300;
    config
}

#[test]
fn a_skipped_admission_check_is_caught() {
    let (config, error) = caught(Bugs { skip_admission_check: true, ..Bugs::default() }, revocation, 200);
    assert!(matches!(error, SimError::RevokedWriteSpread { .. }), "{}", error);
    holds_without_the_bug(&config);
}

/// Frequent reconciliations and a disk that often refuses writes.
fn flaky_disk(seed: u64) -> SimConfig {
    let mut config = SimConfig::new(seed, 3);
    config.faulty_ticks = 2_000;
    config.anti_entropy_every_ticks = 40;
    config.faults.storage_fault_ppm = 150_000;
    config
}

#[test]
fn an_answer_before_durability_is_caught() {
    let (config, error) = caught(Bugs { answer_before_durable: true, ..Bugs::default() }, flaky_disk, 300);
    assert!(matches!(error, SimError::SyncedNotHeld { .. } | SimError::NotConverged { .. }), "{}", error);
    holds_without_the_bug(&config);
}

/// Tills that forge settlements often, HQ that settles often.
fn forgers(seed: u64) -> SimConfig {
    let mut config = SimConfig::new(seed, 3);
    config.faulty_ticks = 2_000;
    config.workload.forge_ppm = 5_000;
    config.workload.hq_settle_ppm = 16_000;
    config
}

#[test]
fn a_settlement_accepted_without_a_signature_is_caught() {
    let (config, error) = caught(Bugs { accept_unsigned_settlement: true, ..Bugs::default() }, forgers, 400);
    assert!(matches!(error, SimError::SettlementMismatch { .. }), "{}", error);
    holds_without_the_bug(&config);
}
