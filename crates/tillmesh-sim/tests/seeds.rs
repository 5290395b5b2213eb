//! Many seeds, 3 tills + HQ each, each seed with its own fault mix (swarm testing): every run
//! must converge and hold every invariant. Split into several tests so that the test harness
//! runs them in parallel.

mod common;

use tillmesh_sim::SimConfig;

/// Faulty phase of each run: sized so that the 200 seeds stay well under a minute in a debug
/// build (dependencies optimised) while each run still takes a dozen or more orders.
const FAULTY_TICKS: u64 = 1_500;
/// Seeds per test function.
const SEEDS_PER_TEST: u64 = 50;

fn shop(seed: u64) -> SimConfig {
    let mut config = SimConfig::swarm(seed, 3);
    config.faulty_ticks = FAULTY_TICKS;
    config
}

/// Runs seeds `first..first + SEEDS_PER_TEST` and checks that they did real work.
fn seeds_from(first: u64) {
    let reports = common::run_all((first..first + SEEDS_PER_TEST).map(shop));
    let orders: u64 = reports.iter().map(|report| report.stats.orders).sum();
    let settlements: u64 = reports.iter().map(|report| report.stats.settlements).sum();
    let lost: u64 = reports.iter().map(|report| report.stats.dropped_loss).sum();
    assert!(orders >= 5 * SEEDS_PER_TEST, "too little work: {orders} orders");
    assert!(settlements > 0 && lost > 0, "{settlements} settlements, {lost} frames lost");
    assert!(reports.iter().all(|report| report.documents > 0));
}

#[test]
fn seeds_0_to_49() {
    seeds_from(0);
}

#[test]
fn seeds_50_to_99() {
    seeds_from(50);
}

#[test]
fn seeds_100_to_149() {
    seeds_from(100);
}

#[test]
fn seeds_150_to_199() {
    seeds_from(150);
}
