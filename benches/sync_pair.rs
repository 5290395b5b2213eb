//! Two tills of a shop as real processes of the release binary on 127.0.0.1, every byte between
//! them through a byte-counting TCP proxy (B dials A only through it; mDNS is off, as it is
//! unless `--mdns` is given). Prints figures, asserts nothing:
//!
//! 1. catch-up: A holds N five-dish orders, B starts empty; the time from spawning B until B
//!    holds N documents and each till has the other as a connected peer with nothing pending for
//!    it (`GET /api/sync/status`), within it the time until B holds N documents (a document
//!    sent whole is marked synced when a later reconciliation agrees), and the bytes through the
//!    proxy meanwhile;
//! 2. the disk each till's data directory takes per order after catch-up;
//! 3. new orders: K orders taken on A one at a time, each timed from its create request until a
//!    subscriber of B's change stream (`GET /api/changes`) sees it — the latency a kitchen display
//!    or another till's screen sees — and the proxy's bytes per order;
//! 4. reconnect after the link drops (the proxy cuts every connection, both tills keep running),
//!    and after B restarts from its own disk (terminated, started again on the same data
//!    directory) while both hold the same orders: the time until both are connected and B has
//!    agreed with A since (its remote's `lastSyncAt`), and the proxy's bytes, handshakes
//!    included;
//! 5. B's peak RSS (`VmHWM`) before its restart, and after it;
//! 6. what B's store holds per order in each of its trees, keys and values (read while B is
//!    stopped for its restart), against sled's files in row 2.
//!
//! Run with: `cargo bench --bench sync_pair -- --orders N --repeat R --new-orders K` (defaults
//! 1,000, 1, 200); each row is the median of the R runs.

#[path = "sync_pair/proxy.rs"]
mod proxy;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use proxy::{Carried, Proxy};
use serde_json::Value;
use support::{Changes, TillProcess};
use tillmesh_store::{Store, StoreOptions};

/// The tills' default reconciliation interval: the figures are those of a shop as it runs.
const SYNC_INTERVAL_MS: u64 = 5_000;
/// Requests creating the first N orders on A at once.
const FILL_CLIENTS: usize = 8;
/// How often the sync status is read while waiting.
const POLL_MS: u64 = 5;
/// How long a phase may take before the benchmark gives up (a hang, not a slow run).
const PHASE_TIMEOUT_MS: u64 = 300_000;

/// What the command line asks for.
struct Options {
    orders: usize,
    new_orders: usize,
    repeat: usize,
}

impl Options {
    fn parse() -> Options {
        let args: Vec<String> = std::env::args().collect();
        let flag = |name: &str, default: usize| {
            args.iter()
                .position(|arg| arg == name)
                .and_then(|at| args.get(at + 1))
                .map_or(default, |n| n.parse().unwrap_or_else(|_| panic!("{name} takes a number, not {n}")))
        };
        Options {
            orders: flag("--orders", 1_000),
            new_orders: flag("--new-orders", 200),
            repeat: flag("--repeat", 1),
        }
    }
}

/// One figure of one run.
enum Figure {
    Seconds(f64),
    Millis(f64),
    Bytes(f64),
    Mebibytes(f64),
}

impl Figure {
    fn value(&self) -> f64 {
        match *self {
            Figure::Seconds(v) | Figure::Millis(v) | Figure::Bytes(v) | Figure::Mebibytes(v) => v,
        }
    }

    /// The same kind of figure with another value (a median).
    fn with(&self, value: f64) -> Figure {
        match self {
            Figure::Seconds(_) => Figure::Seconds(value),
            Figure::Millis(_) => Figure::Millis(value),
            Figure::Bytes(_) => Figure::Bytes(value),
            Figure::Mebibytes(_) => Figure::Mebibytes(value),
        }
    }

    fn show(&self) -> String {
        match *self {
            Figure::Seconds(s) => format!("{s:.2} s"),
            Figure::Millis(ms) => format!("{ms:.1} ms"),
            Figure::Bytes(b) if b >= 1e6 => format!("{:.2} MB", b / 1e6),
            Figure::Bytes(b) if b >= 1e4 => format!("{:.1} KB", b / 1e3),
            Figure::Bytes(b) => format!("{b:.0} B"),
            Figure::Mebibytes(m) => format!("{m:.1} MiB"),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = Options::parse();
    let mut runs = Vec::with_capacity(options.repeat);
    for run in 1..=options.repeat {
        eprintln!("sync_pair: run {run} of {}, {} orders", options.repeat, options.orders);
        runs.push(measure(&options).await);
    }
    print_table(&options, &runs);
}

/// One run's figures, labelled, in the table's order.
type Figures = Vec<(String, Figure)>;

/// One run, every phase on fresh tills.
async fn measure(options: &Options) -> Figures {
    let mut figures = Figures::new();
    let pair = Pair::start(options.orders).await;
    let b = pair.catch_up(options.orders, &mut figures).await;
    let documents = options.orders + options.new_orders;
    pair.new_orders(&b, options.new_orders, documents, &mut figures).await;
    pair.link_drop(&b, documents, &mut figures).await;
    let b = pair.restart(b, documents, &mut figures).await;
    for till in [pair.a, b] {
        assert!(till.terminate().success());
    }
    figures
}

fn add(figures: &mut Figures, label: &str, figure: Figure) {
    figures.push((label.to_string(), figure));
}

/// Till A holding the first orders, and the proxy B dials it through.
struct Pair {
    dir: tempfile::TempDir,
    http: reqwest::Client,
    a: TillProcess,
    proxy: Proxy,
    /// A's peer address through the proxy, for B's `--peer`.
    a_via_proxy: String,
}

impl Pair {
    /// Starts A, creates `orders` five-dish orders on it, and the proxy to its peer port.
    async fn start(orders: usize) -> Pair {
        let dir = tempfile::tempdir().expect("tempdir");
        support::shop(dir.path(), &["A", "B"]);
        let a = support::start_shop_till(dir.path(), "A", SYNC_INTERVAL_MS, &[]);
        let http = reqwest::Client::new();
        fill(&http, &a.url, orders).await;
        let proxy = Proxy::start(tcp_address(a.peer.as_deref().expect("A listens"))).await;
        let a_via_proxy = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", proxy.address.port(), a.peer_id());
        Pair { dir, http, a, proxy, a_via_proxy }
    }

    /// Starts B on its data directory, dialing A through the proxy.
    fn start_b(&self) -> TillProcess {
        support::start_shop_till(self.dir.path(), "B", SYNC_INTERVAL_MS, &[&self.a_via_proxy])
    }

    /// B starts empty and catches up with A's `orders`; then the disk both take.
    async fn catch_up(&self, orders: usize, figures: &mut Figures) -> TillProcess {
        let before = self.wire().await;
        let started = Instant::now();
        let b = self.start_b();
        self.wait_for(&b, |_, b| b["documents"] == orders).await;
        let holds = started.elapsed();
        self.wait_for(&b, |a, b| in_sync(a, b, orders, None)).await;
        let catch_up = started.elapsed();
        let connected = self.proxy.last_accepted().expect("B connected") - started;
        let (carried, frames) = self.wire_since(before).await;
        add(figures, "catch-up, empty till: B's spawn to in sync", Figure::Seconds(catch_up.as_secs_f64()));
        add(figures, "  of which B's spawn to its connection", Figure::Millis(millis(connected)));
        add(figures, "  of which B's spawn to holding N documents", Figure::Millis(millis(holds)));
        add(figures, "catch-up bytes through the proxy", Figure::Bytes(carried.total() as f64));
        add(figures, "  A to B", Figure::Bytes(carried.to_clients as f64));
        add(figures, "  per order", per_order(carried.total(), orders));
        add(figures, "  sync frames, uncompressed (A's /metrics)", Figure::Bytes(frames as f64));
        for code in ["A", "B"] {
            let bytes = tillmesh_store::disk_bytes(&self.dir.path().join(format!("data-{code}")))
                .expect("the till's directory reads");
            add(figures, &format!("on disk per order, {code}"), per_order(bytes, orders));
        }
        b
    }

    /// `orders` new orders on A, one at a time; their bytes are counted once both tills hold
    /// the `documents` in sync (B's change stream shows a new order before B answers its push).
    async fn new_orders(&self, b: &TillProcess, orders: usize, documents: usize, figures: &mut Figures) {
        let before = self.wire().await;
        let (p50, p99) = new_orders(&self.http, &self.a.url, &b.url, orders).await;
        self.wait_for(b, |a, b| in_sync(a, b, documents, None)).await;
        let (carried, frames) = self.wire_since(before).await;
        add(figures, "new order visible on B, median", Figure::Millis(p50));
        add(figures, "new order visible on B, p99", Figure::Millis(p99));
        add(figures, "bytes on the wire per new order", per_order(carried.total(), orders));
        add(figures, "  sync frames, uncompressed (A's /metrics)", per_order(frames, orders));
    }

    /// The proxy cuts the link while both tills run; B redials.
    async fn link_drop(&self, b: &TillProcess, documents: usize, figures: &mut Figures) {
        let before = self.wire().await;
        let since_ms = wall_clock_ms();
        let started = Instant::now();
        self.proxy.cut();
        self.wait_for(b, |a, b| in_sync(a, b, documents, Some(since_ms))).await;
        let (carried, frames) = self.wire_since(before).await;
        add(
            figures,
            "reconnect after the link drops: time to in sync",
            Figure::Millis(millis(started.elapsed())),
        );
        add(figures, "reconnect after the link drops: bytes", Figure::Bytes(carried.total() as f64));
        add(figures, "  sync frames, uncompressed (A's /metrics)", Figure::Bytes(frames as f64));
        add(figures, "peak RSS of B (VmHWM)", Figure::Mebibytes(peak_rss_mib(b)));
    }

    /// B is terminated and started again on its own data directory.
    async fn restart(&self, b: TillProcess, documents: usize, figures: &mut Figures) -> TillProcess {
        assert!(b.terminate().success());
        self.footprint_of_b(documents, figures);
        let before = self.wire().await;
        let since_ms = wall_clock_ms();
        let started = Instant::now();
        let b = self.start_b();
        let listening = started.elapsed();
        self.wait_for(&b, |a, b| in_sync(a, b, documents, Some(since_ms))).await;
        let in_sync_after = started.elapsed();
        let (carried, frames) = self.wire_since(before).await;
        add(figures, "B restarts from its disk: time to in sync", Figure::Millis(millis(in_sync_after)));
        add(figures, "  of which B's spawn to listening", Figure::Millis(millis(listening)));
        add(figures, "B restarts from its disk: bytes", Figure::Bytes(carried.total() as f64));
        add(figures, "  sync frames, uncompressed (A's /metrics)", Figure::Bytes(frames as f64));
        add(figures, "peak RSS of B after its restart", Figure::Mebibytes(peak_rss_mib(&b)));
        b
    }

    /// What B's store holds per order in each tree, keys and values, before sled's own
    /// overhead (B is stopped: only then does its store open here).
    fn footprint_of_b(&self, documents: usize, figures: &mut Figures) {
        let dir = self.dir.path().join("data-B");
        let store = Store::open(&dir, StoreOptions::default()).expect("B's store opens");
        let trees = store.footprint().expect("B's store reads");
        let total: u64 = trees.iter().map(|tree| tree.key_bytes + tree.value_bytes).sum();
        add(figures, "B's trees per order, keys and values", per_order(total, documents));
        for tree in trees {
            add(
                figures,
                &format!("  {}", tree.tree),
                per_order(tree.key_bytes + tree.value_bytes, documents),
            );
        }
    }

    /// What has passed between A and B: every byte through the proxy, and the bytes of sync
    /// frames (A's only peer is B, so its frame counters are the pair's).
    async fn wire(&self) -> (Carried, u64) {
        (self.proxy.carried(), sync_frame_bytes(&self.http, &self.a.url).await)
    }

    /// What has passed since `before`.
    async fn wire_since(&self, before: (Carried, u64)) -> (Carried, u64) {
        let (carried, frames) = self.wire().await;
        (carried.since(before.0), frames - before.1)
    }

    /// Waits until `done(A's sync status, B's)`.
    async fn wait_for(&self, b: &TillProcess, done: impl Fn(&Value, &Value) -> bool) {
        let started = Instant::now();
        loop {
            let (a, b) = (
                support::sync_status(&self.http, &self.a.url).await,
                support::sync_status(&self.http, &b.url).await,
            );
            if done(&a, &b) {
                return;
            }
            let waited = started.elapsed();
            assert!(
                waited < Duration::from_millis(PHASE_TIMEOUT_MS),
                "still waiting after {waited:?}: A {a} B {b}"
            );
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }
}

fn per_order(bytes: u64, orders: usize) -> Figure {
    Figure::Bytes(bytes as f64 / orders as f64)
}

/// Creates `orders` five-dish orders on the till at `url`, [`FILL_CLIENTS`] requests at a time.
async fn fill(http: &reqwest::Client, url: &str, orders: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..FILL_CLIENTS)
        .map(|_| {
            let (http, url, next) = (http.clone(), url.to_string(), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= orders {
                        break;
                    }
                    let (status, order) = support::create_five_dish_order(&http, &url, n).await;
                    assert!(status.is_success(), "{order}");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a filling client");
    }
}

/// Takes `orders` orders on A one at a time, each timed from its create request until B's
/// change stream shows it: the median and p99 in milliseconds.
async fn new_orders(http: &reqwest::Client, a_url: &str, b_url: &str, orders: usize) -> (f64, f64) {
    let mut changes = Changes::open(http, b_url).await;
    let mut seen = Vec::with_capacity(orders);
    for n in 0..orders {
        let started = Instant::now();
        let (status, order) = support::create_five_dish_order(http, a_url, n).await;
        assert!(status.is_success(), "{order}");
        changes.order(order["id"].as_str().expect("id")).await;
        seen.push(millis(started.elapsed()));
    }
    seen.sort_by(f64::total_cmp);
    let at = |q: f64| seen[((seen.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Whether B holds `documents`, each till has the other as a connected peer and nothing pending
/// for it and, with `since_ms`, B has agreed with A since then (a state read from disk proves
/// nothing).
fn in_sync(a: &Value, b: &Value, documents: usize, since_ms: Option<i64>) -> bool {
    let agreed =
        since_ms.is_none_or(|ms| remote(b, "till-A")["lastSyncAt"].as_i64().is_some_and(|at| at >= ms));
    b["documents"] == documents && all_sent(a, "till-B") && all_sent(b, "till-A") && agreed
}

/// Whether `peer` is connected and every document of this node is synced with it.
fn all_sent(status: &Value, peer: &str) -> bool {
    let connected = status["peers"].as_array().is_some_and(|peers| peers.iter().any(|p| p == peer));
    connected && remote(status, peer)["synced"] == status["documents"]
}

/// The counts of one remote in a sync status (`null` if the node has never synced with it).
fn remote<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["remotes"]
        .as_array()
        .and_then(|remotes| remotes.iter().find(|r| r["remote"] == name))
        .unwrap_or(&Value::Null)
}

/// Bytes of sync frames the node at `url` has sent and received (its `/metrics`).
async fn sync_frame_bytes(http: &reqwest::Client, url: &str) -> u64 {
    let metrics =
        http.get(format!("{url}/metrics")).send().await.expect("metrics").text().await.expect("text");
    let counter = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix("_total ")?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    counter("tillmesh_sync_bytes_sent") + counter("tillmesh_sync_bytes_received")
}

/// The TCP address of a `/ip4/…/tcp/…/p2p/…` multiaddr.
fn tcp_address(multiaddr: &str) -> SocketAddr {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4", ip, "tcp", port, ..] => format!("{ip}:{port}").parse().expect("an address"),
        _ => panic!("not a /ip4/…/tcp/… address: {multiaddr}"),
    }
}

/// The till process's peak resident set (`VmHWM` in `/proc/<pid>/status`), in MiB.
fn peak_rss_mib(till: &TillProcess) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", till.child.id())).expect("proc status");
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024.0
}

fn wall_clock_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Every row: the median of the runs, then each run's figure.
fn print_table(options: &Options, runs: &[Figures]) {
    println!(
        "\n`cargo bench --bench sync_pair -- --orders {} --repeat {} --new-orders {}` (two tills, one proxy, 127.0.0.1)\n",
        options.orders, options.repeat, options.new_orders
    );
    println!("| N = {} | median of {} | runs |", options.orders, runs.len());
    println!("|---|---|---|");
    for (row, (label, first)) in runs[0].iter().enumerate() {
        let mut values: Vec<f64> = runs.iter().map(|run| run[row].1.value()).collect();
        let each: Vec<String> = runs.iter().map(|run| run[row].1.show()).collect();
        values.sort_by(f64::total_cmp);
        let median = first.with(values[values.len() / 2]);
        println!("| {label} | {} | {} |", median.show(), each.join(", "));
    }
}
