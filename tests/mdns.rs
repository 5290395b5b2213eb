//! mDNS discovery between tills in separate network namespaces joined by a bridge (mDNS skips
//! loopback, so two processes on 127.0.0.1 never find each other). Needs root and `ip netns`;
//! where the namespaces cannot be made, the test says so and is skipped.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::shop;

/// How long discovery and the first sync may take.
const DISCOVERY_TIMEOUT_MS: u64 = 30_000;

/// Namespaces, veth pairs and a bridge made for one test, removed when dropped.
struct TestNet {
    tag: String,
    namespaces: Vec<String>,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl TestNet {
    /// Two namespaces on one bridge, `10.213.<n>.2/24` and `.3/24`; `None` when not permitted.
    fn create(count: usize) -> Option<TestNet> {
        let tag = format!("tm{}", std::process::id() % 100_000);
        let bridge = format!("{tag}br");
        let mut net = TestNet { tag: tag.clone(), namespaces: Vec::new() };
        if !ip(&["link", "add", &bridge, "type", "bridge"]) || !ip(&["link", "set", &bridge, "up"]) {
            return None;
        }
        for n in 0..count {
            let namespace = format!("{tag}n{n}");
            let (outside, inside) = (format!("{tag}v{n}"), format!("{tag}p{n}"));
            let address = format!("10.213.{}.{}/24", std::process::id() % 200, n + 2);
            let ok = ip(&["netns", "add", &namespace])
                && ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside])
                && ip(&["link", "set", &outside, "master", &bridge])
                && ip(&["link", "set", &outside, "up"])
                && ip(&["link", "set", &inside, "netns", &namespace])
                && ip(&["-n", &namespace, "addr", "add", &address, "dev", &inside])
                && ip(&["-n", &namespace, "link", "set", &inside, "up"])
                && ip(&["-n", &namespace, "link", "set", "lo", "up"]);
            net.namespaces.push(namespace);
            if !ok {
                return None;
            }
        }
        Some(net)
    }

    /// Runs `tillmesh` in a namespace.
    fn command(&self, n: usize) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespaces[n], env!("CARGO_BIN_EXE_tillmesh")]);
        command
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for namespace in &self.namespaces {
            ip(&["netns", "del", namespace]);
        }
        ip(&["link", "del", &format!("{}br", self.tag)]);
    }
}

fn spawn_till(net: &TestNet, n: usize, credentials: &Path, data: &Path) -> Child {
    net.command(n)
        .args(["till", "--credentials"])
        .arg(credentials)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--http",
            "127.0.0.1:8080",
            "--listen",
            "/ip4/0.0.0.0/tcp/4001",
            "--mdns",
            "--sync-interval-ms",
            "500",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn till")
}

fn order_count(net: &TestNet, n: usize) -> Option<usize> {
    let output =
        net.command(n).args(["order", "list", "--json", "--till", "http://127.0.0.1:8080"]).output().ok()?;
    let page: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    page["orders"].as_array().map(Vec::len)
}

#[test]
fn tills_in_separate_namespaces_find_each_other_by_mdns() {
    let Some(net) = TestNet::create(2) else {
        // Written past the test harness's capture, so a skip is always visible.
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED tills_in_separate_namespaces_find_each_other_by_mdns: cannot create network namespaces here \
             (needs root and `ip netns`)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    shop(dir.path(), &["A", "B"]);
    let mut tills: Vec<Child> = ["A", "B"]
        .iter()
        .enumerate()
        .map(|(n, code)| {
            spawn_till(&net, n, &dir.path().join(format!("{code}.till")), &dir.path().join(code))
        })
        .collect();
    let started = Instant::now();
    while order_count(&net, 0).is_none() || order_count(&net, 1).is_none() {
        assert!(started.elapsed() < Duration::from_millis(DISCOVERY_TIMEOUT_MS), "tills did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let created = net
        .command(0)
        .args(["order", "new", "--till", "http://127.0.0.1:8080", "--item", "SOUP:Soup:1:4.50"])
        .output()
        .expect("create");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    // No --peer anywhere: B only learns of A through mDNS.
    while order_count(&net, 1) != Some(1) {
        assert!(
            started.elapsed() < Duration::from_millis(DISCOVERY_TIMEOUT_MS),
            "B never received A's order"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("discovered and synced in {} ms", started.elapsed().as_millis());
    for till in &mut tills {
        let _ = till.kill();
        let _ = till.wait();
    }
}
