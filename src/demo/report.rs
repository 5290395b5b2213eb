//! What the demo prints at the end: the final tables, and with `--keep` how to reach every
//! node.

use std::path::Path;
use std::time::Duration;

use super::progress::seconds;
use super::scenario::Summary;
use super::shop::DemoShop;
use super::{CLIENT, CLIENT_NAME};

pub(super) fn print_summary(shop: &DemoShop, summary: &Summary, elapsed: Duration) {
    println!();
    println!(
        "{:<14} {:>9} {:>7} {:>9}  {:<16}  {:>7}",
        "NODE", "DOCUMENTS", "ORDERS", "PAYMENTS", "HEADS DIGEST", "PENDING"
    );
    let rows = shop.nodes.iter().map(|node| node.name.as_str()).zip(&summary.states);
    for (name, state) in rows.chain(std::iter::once((CLIENT_NAME, &summary.client))) {
        println!(
            "{:<14} {:>9} {:>7} {:>9}  {:<16}  {:>7}",
            name,
            state.documents,
            state.orders,
            state.documents as usize - state.orders,
            state.short_digest(),
            state.pending
        );
    }
    println!("(heads digest: SHA-256 over every document's id and Automerge heads; REST records have none)");

    println!();
    let mut header = format!("{:<9} {:>7}  {:<15}", "PAYMENT", "TOTAL", "TAKEN ON");
    for name in shop.nodes.iter().map(|node| node.name.as_str()) {
        header.push_str(&format!(" {name:<11}"));
    }
    header.push_str(&format!(" {CLIENT_NAME}"));
    println!("{}", header.trim_end());
    for (payment, view) in summary.settled.iter().zip(&summary.views) {
        let mut row = format!(
            "{:<9} {:>7}  {:<15}",
            payment.order.order.order_number, payment.order.order.total, payment.taken
        );
        for (status, confirmed) in view {
            let mark = match confirmed {
                Some(true) => " ✓",
                Some(false) => " ?",
                None => "",
            };
            row.push_str(&format!(" {:<11}", format!("{status}{mark}")));
        }
        println!("{}", row.trim_end());
    }
    println!("(✓ = confirmed: the node verified HQ's signature on the settlement itself)");
    println!();
    let state = &summary.states[0];
    println!(
        "all nodes agree: {} documents, heads {}, nothing pending — total {}",
        state.documents,
        state.short_digest(),
        seconds(elapsed)
    );
}

/// `--keep`: prints how to reach every node, keeps the client syncing, waits for ctrl-c.
pub(super) async fn keep_running(shop: &mut DemoShop) -> anyhow::Result<()> {
    shop.start_client_loop();
    let exe = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let cwd = std::env::current_dir().ok()?;
            Some(exe.strip_prefix(&cwd).map(Path::to_path_buf).unwrap_or(exe))
        })
        .map_or_else(|| "tillmesh".to_string(), |exe| exe.display().to_string());
    let hq = &shop.nodes[0];
    println!();
    println!("The nodes keep running (stores in {}); ctrl-c stops them.", shop.dir.path().display());
    println!("`{exe}` is this binary (`cargo run --release --` works too).");
    let admin = format!(" --admin-token-file {}", shop.admin_token_file.display());
    for (index, node) in shop.nodes.iter().enumerate() {
        // HQ's node API takes its admin token; the tills' is local.
        let auth = if index == 0 { admin.as_str() } else { "" };
        println!();
        println!("{:<7} {}", node.name, node.url);
        println!("  peer {}", node.peer);
        println!("  {exe} order list --till {}{auth}", node.url);
        println!("  {exe} status --till {}{auth}", node.url);
        println!("  {exe} order new --till {}{auth} --item 'SOUP:Tomato soup:1:4.50'", node.url);
        if index > 0 {
            println!("  till screen: {}/ (in a browser)", node.url);
            println!("  kitchen display: {}/kitchen (in a browser)", node.url);
            println!("  change stream: curl -N {}/api/changes", node.url);
        }
    }
    println!();
    println!("HQ's legacy REST API ({CLIENT}'s token; HQ keeps only its SHA-256):");
    println!(
        "  curl -H 'Authorization: Bearer {}' '{}/api/sync/updates?deviceId={CLIENT}'",
        shop.client_token, hq.url
    );
    println!("  curl {}/api/openapi.json", hq.url);
    println!("HQ's admin token: {}", shop.admin_token);
    println!("  back office: {}/ (in a browser; sign in with the admin token)", hq.url);
    println!("  {exe} hq conflicts --hq {}{admin}", hq.url);
    println!("  {exe} hq settle --hq {}{admin} --order <ID> --status CAPTURED", hq.url);
    println!("{CLIENT_NAME}: syncs with HQ every 5 s in this process (device token above).");
    crate::run_till::shutdown_signal().await;
    println!("stopping: flushing every node");
    Ok(())
}
