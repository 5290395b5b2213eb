//! Runs aimed at crash-restart and partitions: every run must still converge and hold every
//! invariant, and the faults must really have happened.

mod common;

use tillmesh_sim::SimConfig;

const FAULTY_TICKS: u64 = 1_500;

#[test]
fn stormy_runs_crash_restart_and_partition_then_converge() {
    let reports = common::run_all((0..20).map(|seed| {
        let mut config = SimConfig::stormy(10_000 + seed, 3);
        config.faulty_ticks = FAULTY_TICKS;
        config
    }));
    for report in &reports {
        assert!(report.stats.crashes >= 1, "no crash in seed {}: {report}", report.seed);
    }
    // Three partitions are expected per run: a run without one is rare, not impossible.
    let partitioned = reports.iter().filter(|report| report.stats.partitions >= 1).count();
    assert!(partitioned >= 17, "only {partitioned} of 20 runs saw a partition");
    let dropped_by_crashes: u64 = reports.iter().map(|report| report.stats.dropped_crash).sum();
    let cut: u64 = reports.iter().map(|report| report.stats.dropped_partition).sum();
    assert!(
        dropped_by_crashes > 0 && cut > 0,
        "{dropped_by_crashes} frames lost to crashes, {cut} to partitions"
    );
}

/// Nodes crash every few dozen ticks, often in the middle of a conversation, and restart with
/// fresh actors: nothing acknowledged is lost and no order number is reused.
#[test]
fn a_crash_storm_loses_nothing_acknowledged() {
    let reports = common::run_all((0..5).map(|seed| {
        let mut config = SimConfig::new(20_000 + seed, 3);
        config.faulty_ticks = FAULTY_TICKS;
        config.faults.crash_ppm = 20_000;
        config.faults.down_ticks_min = 5;
        config.faults.down_ticks_max = 60;
        config
    }));
    for report in &reports {
        assert!(report.stats.crashes >= 20, "seed {}: {report}", report.seed);
        assert!(report.stats.dropped_crash > 0, "seed {}: {report}", report.seed);
    }
}

/// One partition splits the shop for the whole faulty phase; both sides keep selling, and the
/// healed phase brings them together.
#[test]
fn a_partition_for_the_whole_faulty_phase_heals() {
    let reports = common::run_all((0..5).map(|seed| {
        let mut config = SimConfig::new(30_000 + seed, 4);
        config.faulty_ticks = FAULTY_TICKS;
        config.faults.crash_ppm = 0;
        config.faults.partition_ppm = 1_000_000;
        config.faults.partitions_max = 1;
        config.faults.partition_ticks_min = 10 * FAULTY_TICKS;
        config.faults.partition_ticks_max = 10 * FAULTY_TICKS;
        config
    }));
    for report in &reports {
        assert_eq!(report.stats.partitions, 1, "seed {}: {report}", report.seed);
        assert!(report.stats.dropped_partition > 0, "seed {}: {report}", report.seed);
        assert_eq!(report.documents as u64, report.stats.orders + report.stats.transactions);
    }
}

/// Without HQ nothing is ever confirmed, and tills alone still converge.
#[test]
fn tills_without_hq_converge() {
    let reports = common::run_all((0..5).map(|seed| {
        let mut config = SimConfig::stormy(40_000 + seed, 3);
        config.faulty_ticks = FAULTY_TICKS;
        config.hq = false;
        config
    }));
    assert!(reports.iter().all(|report| report.stats.settlements == 0));
}
