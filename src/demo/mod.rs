//! `tillmesh demo`: the whole system on this machine, in one process. HQ and three tills run as
//! real nodes on 127.0.0.1 — real libp2p (pnet, noise, yamux), real sled stores in a temporary
//! directory, each serving its HTTP API on a free port — plus one legacy REST client
//! (`tillmesh_client::SyncService`) talking to HQ over HTTP.
//!
//! The scenario: orders on every till; till C is cut off the network; while it is away, two
//! tills edit the same order at once (and C edits it too), and C takes an order and a card
//! payment offline; C comes back; HQ settles two payments (declining one); the legacy client
//! sends orders and receives the tills'. Every wait is bounded and every step is checked: a
//! failed check ends the demo with a reason (exit status 1). It ends with a table of what every
//! node holds (equal documents, heads digest, nothing pending) and of the settled payments as
//! every node sees them.
//!
//! Till C is cut off for real: it reaches its peers only through TCP relays on 127.0.0.1
//! ([`relay::Relay`]), and cutting them drops its connections and stalls its re-dials, as a
//! pulled cable would; its node keeps running (its HTTP API answers, its mesh keeps re-dialing).
//!
//! # Layout
//! - `shop`: starting HQ, the tills and the legacy client ([`shop::DemoShop`]), waiting for them
//!   to connect and agree ([`shop::NodeState`]), stopping them.
//! - `relay`: the TCP relays that cut till C off and heal it.
//! - `menu`: the dishes and the tills' inputs made of them.
//! - `legacy`: the legacy side — the REST client's orders and a register sending as the original
//!   Kotlin client writes.
//! - `progress`: one printed line per step, with the time since the start (a leaf).
//! - `scenario`: the steps and their checks.
//! - `report`: the final tables and `--keep`'s directions.

mod legacy;
mod menu;
mod progress;
mod relay;
mod report;
mod scenario;
mod shop;

use std::time::{Duration, Instant};

use anyhow::bail;

use progress::Progress;
use report::{keep_running, print_summary};
use scenario::scenario;
use shop::DemoShop;

/// Seed of the demo shop's keys (predictable: a demo shop only, see [`tillmesh_node::LocalShop`]).
const SEED: u8 = 42;
/// The shop's devices: HQ first (its roster entry admits it everywhere), then the tills.
const DEVICES: [&str; 4] = [tillmesh_core::roster::HQ_CODE, "A", "B", "C"];
/// Index (in [`DEVICES`] and the node list) of the till that is cut off.
const CUT: usize = 3;
/// How often every node reconciles with every peer.
const SYNC_INTERVAL_MS: u64 = 500;
/// The longest any single wait may take before the demo fails.
const PATIENCE: Duration = Duration::from_secs(15);
/// Pause between two looks while waiting.
const POLL: Duration = Duration::from_millis(20);
/// The legacy client's device id.
const CLIENT: &str = "pos-1";
/// How the legacy client shows in the tables.
const CLIENT_NAME: &str = "pos-1 (REST)";

/// A register that still runs the original Kotlin client (its requests are written here as
/// kotlinx.serialization writes them).
const KOTLIN: &str = "register-k";
/// The shop's tax rate (8.25 %), also used for the legacy client's orders.
const TAX_BPS: i64 = 825;

/// `tillmesh demo [--keep]`. Logs warnings and errors only (`RUST_LOG` overrides), on stderr:
/// stdout is the demo's.
pub(crate) async fn run(keep: bool) -> anyhow::Result<()> {
    crate::run_till::init_logging("warn");
    let progress = Progress { started: Instant::now() };
    let mut shop = DemoShop::start(&progress).await?;
    let outcome = scenario(&mut shop, &progress).await;
    let outcome = match outcome {
        Ok(summary) => {
            print_summary(&shop, &summary, progress.started.elapsed());
            if keep { keep_running(&mut shop).await } else { Ok(()) }
        }
        Err(error) => Err(error),
    };
    shop.stop().await;
    outcome
}

/// Polls `probe` until it answers `Ok(Ok(_))`, for at most [`PATIENCE`]. `Ok(Err(state))`
/// means not yet; the last state is part of the error on a timeout.
async fn wait_until<T>(
    what: &str,
    mut probe: impl FnMut() -> anyhow::Result<Result<T, String>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match probe()? {
            Ok(value) => return Ok(value),
            Err(state) if Instant::now() >= deadline => {
                bail!("timed out after {} s waiting for {what}: {state}", PATIENCE.as_secs())
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
