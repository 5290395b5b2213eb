//! The `tillmesh` CLI against a running till process.

mod support;

use serde_json::Value;
use support::{TillProcess, cli};

#[test]
fn the_cli_creates_lists_and_shows_orders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let till = TillProcess::start(&dir.path().join("till"), "B");
    let url = till.url.clone();

    let (ok, out, err) = cli(&[
        "order",
        "new",
        "--till",
        &url,
        "--item",
        "SOUP:Tomato soup:2:4.50",
        "--item",
        "BREAD:Bread:1:2.25",
        "--json",
    ]);
    assert!(ok, "{err}");
    let order: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(order["orderNumber"], "B-1");
    assert_eq!(order["total"].to_string(), "12.18");
    let id = order["id"].as_str().expect("id").to_string();

    let (ok, out, err) = cli(&["order", "list", "--till", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("B-1") && out.contains("USD 12.18") && out.contains(&id), "{out}");

    let (ok, out, err) = cli(&["order", "show", &id, "--till", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("Tomato soup") && out.contains("total USD 12.18"), "{out}");

    let (ok, out, err) = cli(&["order", "pay", &id, "--method", "CASH", "--till", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("payment PAID (unconfirmed)"), "{out}");

    let (ok, out, err) = cli(&["status", "--till", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("documents 2"), "{out}");

    let (ok, _, err) = cli(&["order", "new", "--till", &url, "--item", "SOUP:Soup:1:4.505"]);
    assert!(!ok && err.contains("more than two decimal places"), "{err}");
    let (ok, _, err) = cli(&["order", "advance", &id, "--status", "OPEN", "--till", &url]);
    assert!(!ok && err.contains("conflict"), "{err}");
    let (ok, _, err) = cli(&["status", "--till", "http://127.0.0.1:1"]);
    assert!(!ok && err.contains("cannot reach the till"), "{err}");

    assert!(till.terminate().success(), "SIGTERM stops the till cleanly");
}

/// The shop's secrets and roster, and a till's credentials, are the owner's only.
#[test]
fn shop_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    support::shop(dir.path(), &["A"]);
    let mode =
        |path: std::path::PathBuf| std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(dir.path().join("shop")), 0o700);
    for file in ["shop/shop.json", "shop/roster.json", "A.till"] {
        assert_eq!(mode(dir.path().join(file)), 0o600, "{file}");
    }
}
