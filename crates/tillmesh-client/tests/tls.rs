//! HQ reached over HTTPS, as a shop reaches an HQ in the cloud without a proxy in front: HQ
//! serves TLS with its certificate, the client trusts HQ's CA and syncs; a client that does not
//! trust it, or speaks plain HTTP to the TLS port, stores nothing there.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{HqNode, config, order};
use tillmesh_client::SyncService;
use tillmesh_node::SystemClock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_syncs_with_hq_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let certificate_pem = certified.cert.pem();
    let (certificate, key) = (dir.path().join("hq.crt"), dir.path().join("hq.key"));
    std::fs::write(&certificate, &certificate_pem).expect("write");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write");
    let tls = tillmesh_node::http::tls_config(&certificate, &key).expect("TLS configuration");

    let node = HqNode::start(dir.path());
    let token = node.add_device("pos-1").await;
    let hq = node.serve_with(SocketAddr::from(([127, 0, 0, 1], 0)), Some(tls)).await;
    let https = format!("https://localhost:{}", hq.addr.port());

    let mut trusting = config(dir.path().join("trusting"), &https, "pos-1", &token);
    trusting.hq_ca_pem = Some(certificate_pem.into_bytes());
    let sync = SyncService::open(trusting, Arc::new(SystemClock)).expect("client");
    sync.save_order_for_sync(order("TLS-1", &[("tea", 1, 250)])).await.expect("save");
    sync.sync_now().await.expect("synced over HTTPS");
    assert_eq!(hq.orders_held().await, 1);

    let untrusting = SyncService::open(
        config(dir.path().join("untrusting"), &https, "pos-1", &token),
        Arc::new(SystemClock),
    )
    .expect("client");
    untrusting.save_order_for_sync(order("TLS-2", &[("tea", 1, 250)])).await.expect("save");
    untrusting.sync_now().await.expect_err("HQ's certificate is not trusted");

    let plain = format!("http://127.0.0.1:{}", hq.addr.port());
    let cleartext =
        SyncService::open(config(dir.path().join("plain"), &plain, "pos-1", &token), Arc::new(SystemClock))
            .expect("client");
    cleartext.save_order_for_sync(order("TLS-3", &[("tea", 1, 250)])).await.expect("save");
    cleartext.sync_now().await.expect_err("plain HTTP to the TLS port");
    assert_eq!(hq.orders_held().await, 1, "nothing else stored");
    hq.stop().await;
}
