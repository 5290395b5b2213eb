//! Run with: cargo run --release --example shop_sim -- --tills 5 --seed 42
//!
//! A deterministic simulation of one shop: `--tills` tills and an HQ peer in one thread, all
//! randomness from one seed. During the faulty phase the tills take orders and card payments
//! and HQ signs settlements while frames are delayed, lost, duplicated and reordered, tills are
//! partitioned off and crash (restarting with fresh Automerge actors, their documents intact).
//! Then the network heals and the peers must converge: the example prints the seed first,
//! progress along the way and the run's report (counts of orders, frames, faults, ticks to
//! converge, and a digest that the same seed always reproduces). A violated invariant prints
//! the failing seed and exits with status 1.
//!
//! Each seed draws its own fault mix (swarm testing: every fault class on or off, at its own
//! intensity; see `SimConfig::swarm`), printed after the seed; a knob given on the command line
//! overrides the mix, `--stormy` replaces it with frequent crashes and partitions.
//! `--seeds N` runs seeds `seed..seed+N` and ends with one line: seeds run, violations, time.
//! `--quiet` prints only the reports.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use tillmesh_sim::{SimConfig, run_observed};

/// Deterministic multi-till simulation of tillmesh under faults.
#[derive(Debug, Parser)]
struct Args {
    /// Number of tills (the shop also has an HQ peer unless --no-hq).
    #[arg(long, default_value_t = 5)]
    tills: usize,
    /// The first seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How many seeds to run, from --seed on.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Length of the faulty phase in ticks (1 tick = 1 simulated ms).
    #[arg(long, default_value_t = 5_000)]
    faulty_ticks: u64,
    /// Frequent crashes and partitions.
    #[arg(long)]
    stormy: bool,
    /// Highest per-link frame loss, in parts per million (default 100000 = 10 %).
    #[arg(long)]
    loss_ppm: Option<u32>,
    /// Frame duplication, in parts per million (default 30000 = 3 %).
    #[arg(long)]
    duplicate_ppm: Option<u32>,
    /// Frames held back beyond the delay window, in parts per million (default 30000 = 3 %).
    #[arg(long)]
    reorder_ppm: Option<u32>,
    /// Longest one-way delay in ticks (default 30); frames overtake each other within it.
    #[arg(long)]
    delay_ticks_max: Option<u64>,
    /// Each pair of peers reconciles every this many ticks (default 250).
    #[arg(long)]
    anti_entropy_every_ticks: Option<u64>,
    /// Tills edit one of their this many most recent orders (fewer: more concurrent edits).
    #[arg(long)]
    hot_orders: Option<usize>,
    /// Run without HQ (no settlements).
    #[arg(long)]
    no_hq: bool,
    /// Print only the reports, no progress lines.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut failed = Vec::new();
    let started = Instant::now();
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let mut config = if args.stormy {
            SimConfig::stormy(seed, args.tills)
        } else {
            SimConfig::swarm(seed, args.tills)
        };
        println!("seed {seed}: {}", config.mix());
        config.hq = !args.no_hq;
        config.faulty_ticks = args.faulty_ticks;
        if let Some(loss_ppm) = args.loss_ppm {
            config.network.loss_ppm_max = loss_ppm;
        }
        if let Some(duplicate_ppm) = args.duplicate_ppm {
            config.network.duplicate_ppm = duplicate_ppm;
        }
        if let Some(reorder_ppm) = args.reorder_ppm {
            config.network.reorder_ppm = reorder_ppm;
        }
        if let Some(delay_ticks_max) = args.delay_ticks_max {
            config.network.delay_ticks_max = delay_ticks_max;
        }
        if let Some(every) = args.anti_entropy_every_ticks {
            config.anti_entropy_every_ticks = every;
        }
        if let Some(hot_orders) = args.hot_orders {
            config.workload.hot_orders = hot_orders;
        }
        let quiet = args.quiet;
        let outcome = run_observed(&config, |progress| {
            if !quiet {
                println!("  {progress}");
            }
        });
        match outcome {
            Ok(report) => println!("{report}"),
            Err(error) => {
                eprintln!("FAILED seed {seed}: {error}");
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
                eprintln!("replay with: {}", replay_command(&args, seed));
                failed.push(seed);
            }
        }
    }
    println!("{} seeds, {} violations, {:.1} s", args.seeds, failed.len(), started.elapsed().as_secs_f64());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failing seeds: {failed:?}");
        ExitCode::FAILURE
    }
}

/// The command that runs exactly this seed again.
fn replay_command(args: &Args, seed: u64) -> String {
    let mut command = format!(
        "cargo run --release --example shop_sim -- --tills {} --seed {seed} --faulty-ticks {}",
        args.tills, args.faulty_ticks
    );
    let knobs = [
        ("--loss-ppm", args.loss_ppm.map(u64::from)),
        ("--duplicate-ppm", args.duplicate_ppm.map(u64::from)),
        ("--reorder-ppm", args.reorder_ppm.map(u64::from)),
        ("--delay-ticks-max", args.delay_ticks_max),
        ("--anti-entropy-every-ticks", args.anti_entropy_every_ticks),
        ("--hot-orders", args.hot_orders.map(|n| n as u64)),
    ];
    for (flag, value) in knobs {
        if let Some(value) = value {
            command.push_str(&format!(" {flag} {value}"));
        }
    }
    for (flag, on) in [("--stormy", args.stormy), ("--no-hq", args.no_hq)] {
        if on {
            command.push(' ');
            command.push_str(flag);
        }
    }
    command
}
