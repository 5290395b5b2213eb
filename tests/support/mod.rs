//! Helpers for the end-to-end tests: run the real `tillmesh` binary, find its address, and
//! make seeded pseudo-random choices.
#![allow(dead_code, unreachable_pub)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a till may take to start listening.
const START_TIMEOUT_MS: u64 = 20_000;

/// A till process started from the real binary.
pub struct TillProcess {
    pub child: Child,
    /// Its HTTP API.
    pub url: String,
    /// Its peer address (`/ip4/…/tcp/…/p2p/…`), when it listens for peers.
    pub peer: Option<String>,
    /// Every line it has logged (its stderr, which is also passed on to the test's).
    log: Arc<Mutex<Vec<String>>>,
}

impl TillProcess {
    /// Starts a standalone `tillmesh till` on 127.0.0.1:0 and waits for its address.
    pub fn start(data_dir: &Path, code: &str) -> TillProcess {
        let data_dir = data_dir.to_str().expect("utf-8 path");
        TillProcess::spawn(&["till", "--data-dir", data_dir, "--code", code, "--tax-rate-bps", "825"])
    }

    /// Starts `tillmesh <args>` (`till …` or `hq …`, plus `--http 127.0.0.1:0`) and waits
    /// until it prints its HTTP address (and its peer address before that, when it listens).
    pub fn spawn(args: &[&str]) -> TillProcess {
        TillProcess::spawn_with(args, &["--http", "127.0.0.1:0"], &[])
    }

    /// Like [`TillProcess::spawn`] with `http_args` instead of `--http 127.0.0.1:0` and the
    /// environment variables `env` (the seed's, such as `SERVER_PORT`, or a `RUST_LOG` filter
    /// that logs more than warnings); the seed's others are not passed on.
    pub fn spawn_with(args: &[&str], http_args: &[&str], env: &[(&str, &str)]) -> TillProcess {
        TillProcess::spawn_program(env!("CARGO_BIN_EXE_tillmesh"), args, http_args, env)
    }

    /// Like [`TillProcess::spawn_with`] through another program
    /// (`sh -c 'ulimit …; exec "$@"' sh tillmesh …`).
    pub fn spawn_program(
        program: &str,
        args: &[&str],
        http_args: &[&str],
        env: &[(&str, &str)],
    ) -> TillProcess {
        let child = Command::new(program)
            .args(args)
            .args(http_args)
            .env("RUST_LOG", std::env::var("TILLMESH_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .env_remove("DATABASE_URL")
            .env_remove("DATABASE_USER")
            .env_remove("DATABASE_PASSWORD")
            .env_remove("SERVER_PORT")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tillmesh");
        // Owned by the guard from here on: a failed start still kills and reaps the process.
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut till = TillProcess { child, url: String::new(), peer: None, log: Arc::clone(&log) };
        let stderr = till.child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                log.lock().expect("log lock").push(line);
            }
        });
        let stdout = till.child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        loop {
            let line = receiver
                .recv_timeout(Duration::from_millis(START_TIMEOUT_MS))
                .expect("the till printed its address");
            if let Some(at) = line.find(" peer /") {
                till.peer = Some(line[at + 6..].trim().to_string());
            }
            if let Some(at) = line.find("http://") {
                till.url = line[at..].trim().to_string();
                return till;
            }
        }
    }

    /// The peer id at the end of its peer address.
    pub fn peer_id(&self) -> &str {
        let peer = self.peer.as_deref().expect("the till listens for peers");
        peer.rsplit_once("/p2p/").map_or(peer, |(_, id)| id)
    }

    /// Whether it has logged a line containing every one of `parts` (a message and, say, a
    /// peer id: a line's fields may be set apart by colour codes).
    pub fn logged(&self, parts: &[&str]) -> bool {
        self.log.lock().expect("log lock").iter().any(|line| parts.iter().all(|part| line.contains(part)))
    }

    /// Pauses the process (SIGSTOP): to its peers it is cut off.
    pub fn pause(&self) {
        signal(&self.child, "-STOP");
    }

    /// Resumes a paused process (SIGCONT).
    pub fn resume(&self) {
        signal(&self.child, "-CONT");
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        signal(&self.child, "-TERM");
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the till did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TillProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("run kill");
    assert!(status.success(), "kill {signal} failed");
}

/// The arguments of `tillmesh till` for a shop's till: credentials `dir/<credentials>.till`, its
/// store in `dir/data-<data>`, listening for peers on 127.0.0.1, reconciling every
/// `sync_interval_ms`, dialing `peers`.
pub fn shop_till_args(
    dir: &Path,
    credentials: &str,
    data: &str,
    sync_interval_ms: u64,
    peers: &[&str],
) -> Vec<String> {
    let path = |name: String| dir.join(name).to_str().expect("utf-8 path").to_string();
    let mut args: Vec<String> = vec![
        "till".into(),
        "--credentials".into(),
        path(format!("{credentials}.till")),
        "--data-dir".into(),
        path(format!("data-{data}")),
        "--listen".into(),
        "/ip4/127.0.0.1/tcp/0".into(),
        "--sync-interval-ms".into(),
        sync_interval_ms.to_string(),
    ];
    for peer in peers {
        args.extend(["--peer".to_string(), (*peer).to_string()]);
    }
    args
}

/// Starts the shop's till `code` (credentials `dir/<code>.till`, store `dir/data-<code>`; see
/// [`shop_till_args`]).
pub fn start_shop_till(dir: &Path, code: &str, sync_interval_ms: u64, peers: &[&str]) -> TillProcess {
    let args = shop_till_args(dir, code, code, sync_interval_ms, peers);
    TillProcess::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Starts the shop's HQ (shop `dir/shop`, store `dir/data-hq`, listening for peers on
/// 127.0.0.1, reconciling every `sync_interval_ms`) and reads the admin token it wrote.
pub fn start_shop_hq(dir: &Path, sync_interval_ms: u64) -> (TillProcess, String) {
    let path = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_string();
    let interval = sync_interval_ms.to_string();
    let hq = TillProcess::spawn(&[
        "hq",
        "--shop",
        &path("shop"),
        "--data-dir",
        &path("data-hq"),
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--sync-interval-ms",
        &interval,
    ]);
    let token =
        std::fs::read_to_string(dir.join("data-hq").join("admin-token")).expect("HQ wrote its admin token");
    (hq, token.trim().to_string())
}

impl TillProcess {
    /// [`TillProcess::spawn`] under `ulimit -n descriptors` (soft and hard).
    pub fn spawn_with_descriptors(descriptors: u64, args: &[&str]) -> TillProcess {
        let command = format!("ulimit -n {descriptors} && exec \"$@\"");
        let mut all = vec!["-c", command.as_str(), "sh", env!("CARGO_BIN_EXE_tillmesh")];
        all.extend_from_slice(args);
        TillProcess::spawn_program("sh", &all, &["--http", "127.0.0.1:0"], &[])
    }
}

/// Creates a shop in `dir/shop` (tax 8.25 %) and a credentials file `dir/<code>.till` per code.
pub fn shop(dir: &Path, codes: &[&str]) {
    let shop = dir.join("shop");
    let shop = shop.to_str().expect("utf-8 path");
    let (ok, _, err) = cli(&["shop", "init", "--dir", shop, "--tax-rate-bps", "825"]);
    assert!(ok, "{err}");
    for code in codes {
        let out = dir.join(format!("{code}.till"));
        let (ok, _, err) = cli(&[
            "shop",
            "add-till",
            "--dir",
            shop,
            "--code",
            code,
            "--out",
            out.to_str().expect("utf-8 path"),
        ]);
        assert!(ok, "{err}");
    }
}

/// Runs the `tillmesh` CLI and returns (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tillmesh"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE_USER")
        .env_remove("DATABASE_PASSWORD")
        .output()
        .expect("run tillmesh");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A small seeded generator (SplitMix64): the same seed gives the same choices.
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Seeded {
        Seeded(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low)
    }
}

/// The JSON a `GET` of `url` answers.
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = http.get(url).send().await.unwrap_or_else(|error| panic!("GET {url}: {error}"));
    response.json().await.unwrap_or_else(|error| panic!("GET {url}: not JSON: {error}"))
}

/// The ids of the orders a till lists (its first 500), sorted.
pub async fn order_ids(http: &reqwest::Client, url: &str) -> Vec<String> {
    let page = get_json(http, &format!("{url}/api/orders?limit=500")).await;
    let mut ids: Vec<String> = page["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|order| order["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

/// Opens up to `connections` idle TCP connections from 127.0.0.2 to `port` on 127.0.0.1 (as an
/// attacker would: another address than the legitimate clients'); returns those that connected.
pub async fn flood(port: u16, connections: usize) -> Vec<tokio::net::TcpStream> {
    let mut flood = Vec::with_capacity(connections);
    for _ in 0..connections {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.2:0".parse().expect("address")).expect("bind 127.0.0.2");
        if let Ok(stream) = socket.connect(([127, 0, 0, 1], port).into()).await {
            flood.push(stream);
        }
    }
    flood
}

/// A tmpfs mounted at a directory (a small disk that fills up), unmounted when dropped.
/// Mounting needs root.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`8m`) at `at`; `None` when `mount` fails (not root).
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_path_buf()))
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Gives it a new size (`64m`: space is back).
    pub fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(status.success(), "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Whether this process runs as root (mounting a tmpfs needs it).
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Posts `order` (`{"items": […], …}`) to the till at `url`: the answer's status and body.
pub async fn post_order(
    http: &reqwest::Client,
    url: &str,
    order: &serde_json::Value,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = http.post(format!("{url}/api/orders")).json(order).send().await.expect("send");
    let status = response.status();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

/// The node at `url`'s `GET /api/sync/status`.
pub async fn sync_status(http: &reqwest::Client, url: &str) -> serde_json::Value {
    get_json(http, &format!("{url}/api/sync/status")).await
}

/// Reads every node of `urls` with `read` until `check` holds for all of them (`None`, a node
/// that cannot answer yet, never does); panics after `wait_ms`. Answers what was read last.
pub async fn wait_everywhere<T: std::fmt::Debug>(
    urls: &[&str],
    wait_ms: u64,
    read: impl AsyncFn(&str) -> Option<T>,
    check: impl Fn(&T) -> bool,
) -> Vec<T> {
    let started = Instant::now();
    loop {
        let mut views = Vec::new();
        for url in urls {
            views.push(read(url).await);
        }
        if views.iter().all(|view| view.as_ref().is_some_and(&check)) {
            return views.into_iter().flatten().collect();
        }
        assert!(started.elapsed() < Duration::from_millis(wait_ms), "not everywhere in time: {views:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates an order of five dishes on the till at `url` (≈ 3.5 KB stored; `n` goes into the
/// dishes' names): its status and body.
pub async fn create_five_dish_order(
    http: &reqwest::Client,
    url: &str,
    n: usize,
) -> (reqwest::StatusCode, serde_json::Value) {
    let items: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            serde_json::json!({
                "sku": format!("SKU{i}"), "name": format!("Dish {i} of order {n}"),
                "quantity": 1, "unitPrice": "4.50"
            })
        })
        .collect();
    post_order(http, url, &serde_json::json!({ "items": items })).await
}

/// A subscriber of a node's change stream (`GET /api/changes`, server-sent events).
pub struct Changes {
    response: reqwest::Response,
    buffered: String,
}

impl Changes {
    /// Subscribes to the node at `url` and waits for its `ready` event.
    pub async fn open(http: &reqwest::Client, url: &str) -> Changes {
        let response = http.get(format!("{url}/api/changes")).send().await.expect("subscribe");
        assert!(response.status().is_success(), "{}", response.status());
        let mut changes = Changes { response, buffered: String::new() };
        let (event, _) = changes.next().await.expect("the stream's first event");
        assert_eq!(event, "ready");
        changes
    }

    /// The next event as (name, data); `None` once the stream ends. Keep-alive comments are
    /// skipped.
    pub async fn next(&mut self) -> Option<(String, serde_json::Value)> {
        loop {
            if let Some(end) = self.buffered.find("\n\n") {
                let block: String = self.buffered.drain(..end + 2).collect();
                let field = |name: &str| {
                    block.lines().find_map(|line| line.strip_prefix(name)).map(|v| v.trim_start().to_string())
                };
                if let Some(event) = field("event:") {
                    let data = field("data:")
                        .map_or(serde_json::Value::Null, |d| serde_json::from_str(&d).expect("JSON data"));
                    return Some((event, data));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("an event within 30 s")
                .expect("read the stream")?;
            self.buffered.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// Skips events until an order event for `id`.
    pub async fn order(&mut self, id: &str) -> serde_json::Value {
        while let Some((event, data)) = self.next().await {
            if event == "order" && data["id"] == id {
                return data;
            }
        }
        panic!("the stream ended before order {id}'s change");
    }
}
