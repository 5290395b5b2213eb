//! `tillmesh demo`, the README's main command, run as the real binary: it must end with every
//! node in agreement and exit 0; with `--keep` its nodes stay reachable with the CLI it prints
//! until SIGTERM.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::cli;

/// Far beyond what the demo needs (it bounds every wait itself): only a hung process hits it.
const DEADLINE: Duration = Duration::from_secs(300);

/// One demo at a time: two at once on a small machine only slow each other down.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn demo(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tillmesh"))
        .arg("demo")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tillmesh demo")
}

/// Waits for the child's exit, killing it after [`DEADLINE`].
fn wait(child: &mut Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tillmesh demo still running after {} s", DEADLINE.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_tables(out: &str) {
    for expected in ["NODE", "DOCUMENTS", "HEADS DIGEST", "PENDING", "PAYMENT", "TAKEN ON", "all nodes agree"]
    {
        assert!(out.contains(expected), "no {expected:?} in the output:\n{out}");
    }
    for node in ["hq ", "till-A ", "till-B ", "till-C ", "pos-1 (REST)"] {
        assert!(out.lines().any(|line| line.starts_with(node)), "no row for {node:?}:\n{out}");
    }
    assert!(out.contains("CAPTURED") && out.contains("DECLINED"), "no settlements:\n{out}");
}

#[test]
fn the_demo_ends_with_every_node_in_agreement() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut child = demo(&[]);
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).expect("read stdout");
        out
    });
    let errors = std::thread::spawn(move || {
        let mut err = String::new();
        stderr.read_to_string(&mut err).expect("read stderr");
        err
    });
    let status = wait(&mut child);
    let out = reader.join().expect("stdout reader");
    let err = errors.join().expect("stderr reader");
    assert!(status.success(), "tillmesh demo failed ({status}):\n{out}\n{err}");
    assert_tables(&out);
}

#[test]
fn the_demo_with_keep_leaves_reachable_nodes_until_sigterm() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut child = demo(&["--keep"]);
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    // Drained, so that a chatty stderr never blocks the demo.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::stderr()));
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut out = String::new();
    loop {
        let line = match received.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().expect("reap");
                panic!("tillmesh demo --keep stopped ({status}) before printing its nodes:\n{out}");
            }
        };
        out.push_str(&line);
        out.push('\n');
        if line.contains("HQ's admin token") {
            break;
        }
    }
    assert_tables(&out);
    // Till A's URL from its line `till-A  http://127.0.0.1:…   peer …`.
    let url = out
        .lines()
        .find(|line| line.starts_with("till-A") && line.contains("http://"))
        .and_then(|line| line.split_whitespace().find(|word| word.starts_with("http://")))
        .expect("till-A's URL")
        .to_string();
    let (ok, listed, err) = cli(&["order", "list", "--till", &url, "--json"]);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    let orders = listed["orders"].as_array().expect("orders");
    assert!(orders.iter().any(|order| order["orderNumber"] == "1001"), "{listed}");
    // The Kotlin register's order, at the total its client sold it at (10 % off).
    let kotlin =
        orders.iter().find(|order| order["orderNumber"] == "ORD-20250115-0001").expect("the Kotlin order");
    assert_eq!(kotlin["total"].to_string(), "34.83", "{kotlin}");
    // Each till's screen and kitchen display are printed and served.
    for (printed, path, title) in [
        (format!("till screen: {url}/ "), "/", "<title>Till"),
        (format!("kitchen display: {url}/kitchen"), "/kitchen", "<title>Kitchen"),
    ] {
        assert!(out.contains(&printed), "{printed:?} in {out}");
        let mut connection =
            std::net::TcpStream::connect(url.trim_start_matches("http://")).expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        std::io::Write::write_all(&mut connection, request.as_bytes()).expect("request");
        let mut page = String::new();
        connection.read_to_string(&mut page).expect("the page");
        assert!(page.starts_with("HTTP/1.1 200") && page.contains(title), "{page}");
    }

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let status = wait(&mut child);
    assert!(status.success(), "tillmesh demo --keep did not stop cleanly on SIGTERM: {status}");
}
