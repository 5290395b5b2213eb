//! Run with: `cargo run --release --example local_mesh -- --tills 3`
//!
//! A plain real-network walkthrough: a few tills in one process, each with its own sled store in
//! a temporary directory, joined over real libp2p on 127.0.0.1 (static peers: mDNS ignores
//! loopback). Every till takes orders at once; one till leaves and misses some; it comes back and
//! catches up; then every till shows the same orders with the same hashes.

use std::time::{Duration, Instant};

use tillmesh_node::till::OrderInput;
use tillmesh_node::{LocalShop, Till};

const CODES: [&str; 8] = ["A", "B", "C", "D", "E", "F", "G", "H"];

fn order(sku: &str) -> anyhow::Result<OrderInput> {
    Ok(serde_json::from_value(serde_json::json!({
        "items": [{ "sku": sku, "name": format!("dish {sku}"), "quantity": 1, "unitPrice": "4.50" }]
    }))?)
}

/// Each till's (order number, hash) list, sorted.
fn view(till: &Till) -> anyhow::Result<Vec<(String, String)>> {
    let page = till.list(&tillmesh_store::OrderQuery { limit: 500, ..Default::default() })?;
    let mut rows = Vec::new();
    for summary in page.orders {
        rows.push((summary.order_number, till.order(summary.id)?.server_hash));
    }
    rows.sort();
    Ok(rows)
}

async fn wait_same(tills: &[Till], expected: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let views = tills.iter().map(view).collect::<anyhow::Result<Vec<_>>>()?;
        if views.iter().all(|v| v.len() == expected && *v == views[0]) {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "no convergence after 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args
        .iter()
        .position(|a| a == "--tills")
        .and_then(|at| args.get(at + 1))
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(3)
        .clamp(2, CODES.len());
    let dir = tempfile::tempdir()?;
    let shop = LocalShop::new(42, &CODES[..count])?;
    let mut tills = Vec::new();
    let mut meshes = Vec::new();
    let mut addresses = Vec::new();
    for n in 0..count {
        let till = shop.till(dir.path(), n)?;
        let (mesh, address) = shop.join(&till, n, addresses.clone(), 1_000).await?;
        println!("till {} up: {address}", till.device_id());
        tills.push(till);
        meshes.push(mesh);
        addresses.push(address);
    }

    let mut created = 0;
    for round in 0..3 {
        let mut pending = Vec::new();
        for till in &tills {
            let till = till.clone();
            let sku = format!("{}-{round}", till.config().code);
            pending.push(tokio::spawn(async move {
                till.create_order(order(&sku)?).await.map_err(anyhow::Error::from)
            }));
        }
        for task in pending {
            task.await??;
            created += 1;
        }
    }
    println!(
        "{created} orders taken at once on {count} tills; in step after {:?}",
        wait_same(&tills, created).await?
    );

    let leaving = tills.len() - 1;
    let mesh = meshes.remove(leaving);
    mesh.stop().await;
    println!("till {} leaves the network", tills[leaving].device_id());
    for round in 0..5 {
        tills[0].create_order(order(&format!("while-away-{round}"))?).await?;
        created += 1;
    }
    let (mesh, _) = shop.join(&tills[leaving], leaving, addresses[..leaving].to_vec(), 1_000).await?;
    meshes.push(mesh);
    println!(
        "till {} is back; in step after {:?}",
        tills[leaving].device_id(),
        wait_same(&tills, created).await?
    );

    println!("\n{:<8} {:>7}  HASH OF FIRST ORDER", "TILL", "ORDERS");
    for till in &tills {
        let rows = view(till)?;
        println!(
            "{:<8} {:>7}  {}",
            till.device_id(),
            rows.len(),
            rows.first().map_or("-", |(_, hash)| hash.as_str())
        );
    }
    for mesh in meshes {
        mesh.stop().await;
    }
    Ok(())
}
