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
//! `--quiet` prints only the reports; `--jobs N` runs N seeds at once (default: one per core),
//! printing them in seed order.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
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
    /// Each node reconciles with its peers every this many ticks (default 250; 0: never).
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
    /// Seeds run at once, each on a thread of its own (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let seeds: Vec<u64> = (args.seed..args.seed.saturating_add(args.seeds)).collect();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
        .clamp(1, seeds.len().max(1));
    // Seeds run on `jobs` threads (each run is alone on its thread and as deterministic as
    // ever); their output is printed in seed order.
    let next = AtomicUsize::new(0);
    let (sender, results) = mpsc::channel::<(usize, Outcome)>();
    let failed = std::thread::scope(|scope| {
        for _ in 0..jobs {
            let (sender, next, seeds, args) = (sender.clone(), &next, &seeds, &args);
            scope.spawn(move || {
                while let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let index = usize::try_from(seed - args.seed).unwrap_or(usize::MAX);
                    if sender.send((index, run_seed(args, seed))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut waiting = BTreeMap::new();
        let mut printed = 0;
        let mut failed = Vec::new();
        for (index, outcome) in results {
            waiting.insert(index, outcome);
            while let Some(outcome) = waiting.remove(&printed) {
                print!("{}", outcome.out);
                eprint!("{}", outcome.err);
                if !outcome.passed {
                    failed.push(seeds[printed]);
                }
                printed += 1;
            }
        }
        failed
    });
    println!("{} seeds, {} violations, {:.1} s", args.seeds, failed.len(), started.elapsed().as_secs_f64());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failing seeds: {failed:?}");
        ExitCode::FAILURE
    }
}

/// What one seed printed, and whether it held.
struct Outcome {
    out: String,
    err: String,
    passed: bool,
}

/// Runs one seed with the command line's settings; its output is returned, not printed.
fn run_seed(args: &Args, seed: u64) -> Outcome {
    let mut config =
        if args.stormy { SimConfig::stormy(seed, args.tills) } else { SimConfig::swarm(seed, args.tills) };
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
    let mut out = format!("seed {seed}: {}\n", config.mix());
    let mut err = String::new();
    let quiet = args.quiet;
    let outcome = run_observed(&config, |progress| {
        if !quiet {
            out.push_str(&format!("  {progress}\n"));
        }
    });
    let passed = match outcome {
        Ok(report) => {
            out.push_str(&format!("{report}\n"));
            true
        }
        Err(error) => {
            err.push_str(&format!("FAILED seed {seed}: {error}\n"));
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                err.push_str(&format!("  caused by: {cause}\n"));
                source = cause.source();
            }
            err.push_str(&format!("replay with: {}\n", replay_command(args, seed)));
            false
        }
    };
    Outcome { out, err, passed }
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
