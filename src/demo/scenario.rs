//! The demo's steps, each checked: a failed check ends the demo with its reason.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tillmesh_core::{OrderStatus, PaymentStatus};
use tillmesh_node::OrderDetail;
use uuid::Uuid;

use super::legacy::{client_view, legacy_order, send_as_kotlin};
use super::menu::{MENU, card_payment, item, order_input};
use super::progress::{Progress, seconds};
use super::shop::{DemoShop, NodeState, orders};
use super::{CLIENT, CUT, KOTLIN, PATIENCE};

/// A payment HQ settled, for the final table.
pub(super) struct Settled {
    pub(super) order: OrderDetail,
    pub(super) taken: String,
    pub(super) status: PaymentStatus,
}

/// What the final tables show.
pub(super) struct Summary {
    pub(super) states: Vec<NodeState>,
    pub(super) client: NodeState,
    pub(super) settled: Vec<Settled>,
    /// Per settled payment, per node (the tills, then the client): status and confirmation.
    pub(super) views: Vec<Vec<(PaymentStatus, Option<bool>)>>,
}

/// The scenario, every step checked.
pub(super) async fn scenario(shop: &mut DemoShop, progress: &Progress) -> anyhow::Result<Summary> {
    let all: Vec<usize> = (0..shop.nodes.len()).collect();
    let (a, b, c) = (shop.nodes[1].till.clone(), shop.nodes[2].till.clone(), shop.nodes[CUT].till.clone());

    // 1. Orders on every till at once; till B takes a card payment.
    let mut pending = Vec::new();
    for (n, node) in shop.tills().iter().enumerate() {
        for round in 0..2 {
            let till = node.till.clone();
            let items = vec![item(n * 2 + round, 1 + round as i64), item(n + 5, 1)];
            pending.push(tokio::spawn(async move { till.create_order(order_input(items)).await }));
        }
    }
    let mut taken = Vec::new();
    for task in pending {
        let (order, _) = task.await??;
        taken.push(order);
    }
    let x = taken[0].clone();
    ensure!(x.order.device_id == a.device_id(), "the first order is not till-A's");
    let paid_online = b.record_payment(taken[2].order.id, card_payment()).await?;
    progress.step(format!(
        "{} orders taken at once on 3 tills ({}); till-B takes a card payment for {} ({})",
        taken.len(),
        taken.iter().map(|order| order.order.order_number.as_str()).collect::<Vec<_>>().join(", "),
        paid_online.order.order_number,
        paid_online.order.total,
    ));
    let (states, waited) = shop.wait_agree(&all, true).await?;
    progress.step(format!("every node holds {} — in step after {}", states[0], seconds(waited)));

    // 2. Till C is cut off.
    for relay in &shop.relays {
        relay.set_open(false);
    }
    let waited = shop.wait_connected(&[0, 1, 2], &[0, 1, 2]).await?;
    shop.wait_connected(&[CUT], &[CUT]).await?;
    progress.step(format!(
        "till-C cut off the network: its links to hq, till-A and till-B dropped ({})",
        seconds(waited)
    ));

    // 3. While C is away: the same order edited on three tills at once; C takes an order and
    //    a payment offline.
    let note = "table 7: birthday, candles on the cake";
    let (added, advanced, noted) = tokio::join!(
        a.add_item(x.order.id, item(6, 2)),
        b.advance(x.order.id, OrderStatus::Sent),
        c.set_notes(x.order.id, note.to_string()),
    );
    let (added, advanced, noted) = (added?, advanced?, noted?);
    progress.step(format!(
        "order {} edited on three tills at once: till-A adds 2 x {} (total {}), till-B sends it \
         to the kitchen ({}), till-C (offline) notes {note:?}",
        x.order.order_number, MENU[6].1, added.order.total, advanced.order.status,
    ));
    ensure!(noted.order.notes == note, "till-C's note was not kept on till-C");
    let (offline, _) = c.create_order(order_input(vec![item(4, 2), item(5, 2)])).await?;
    let paid_offline = c.record_payment(offline.order.id, card_payment()).await?;
    ensure!(
        paid_offline.order.payment.claimed == Some(PaymentStatus::Paid)
            && !paid_offline.order.payment.confirmed,
        "till-C's offline payment is not an unconfirmed PAID claim"
    );
    progress.step(format!(
        "till-C (offline) takes order {} and a card payment of {}: durable on its own disk, \
         PAID as claimed, not yet confirmed by HQ",
        offline.order.order_number, paid_offline.order.total
    ));
    let (online, waited) = shop.wait_agree(&[0, 1, 2], false).await?;
    let c_state = NodeState::of(&c)?;
    ensure!(c_state.digest != online[0].digest, "till-C agrees with the others while cut off");
    ensure!(shop.hq().order(offline.order.id).is_err(), "HQ holds till-C's offline order while C is cut off");
    progress.step(format!(
        "hq, till-A, till-B agree on {} documents ({}); till-C holds {}, its changes unseen",
        online[0].documents,
        seconds(waited),
        c_state.documents
    ));

    // 4. Heal.
    for relay in &shop.relays {
        relay.set_open(true);
    }
    let healed = Instant::now();
    shop.wait_connected(&all, &all).await?;
    let (states, _) = shop.wait_agree(&all, true).await?;
    progress.step(format!(
        "till-C reconnected: every node holds {} — healed in {}",
        states[0],
        seconds(healed.elapsed())
    ));

    // 5. HQ settles: captures C's offline payment, declines B's.
    let hq = shop.hq().clone();
    hq.settle(offline.order.id, PaymentStatus::Captured).await?;
    hq.settle(paid_online.order.id, PaymentStatus::Declined).await?;
    progress.step(format!(
        "HQ settles with its signing key: {} CAPTURED, {} DECLINED",
        offline.order.order_number, paid_online.order.order_number
    ));
    let settled = vec![
        Settled { order: offline.clone(), taken: "till-C offline".into(), status: PaymentStatus::Captured },
        Settled { order: paid_online.clone(), taken: "till-B".into(), status: PaymentStatus::Declined },
    ];

    // 6. The legacy client sends two orders over REST.
    let mut sent = Vec::new();
    for (number, lines) in [("1001", &[(0, 2), (1, 2)][..]), ("1002", &[(2, 1), (7, 2)][..])] {
        sent.push(shop.client.save_order_for_sync(legacy_order(number, lines)?).await?);
    }
    let report = shop.client.sync_now().await.context("the legacy client's sync with HQ")?;
    ensure!(
        report.synced_orders == sent.len() && report.rejected == 0,
        "HQ did not take the legacy client's orders: {report:?}"
    );
    let (kotlin_id, kotlin_total) = send_as_kotlin(shop).await?;
    let mut client_ids = Vec::new();
    for order in &sent {
        let stored = shop.client.order(order.local_id)?.context("the client lost its own order")?;
        let id = stored.server_id.as_deref().context("HQ answered without a serverId")?;
        client_ids.push((Uuid::parse_str(id).context("HQ's serverId is not a document id")?, stored));
    }
    progress.step(format!(
        "{CLIENT} saves {} and {} in its outbox and syncs (POST /api/sync/batch); {KOTLIN} sends \
         ORD-20250115-0001 as the original Kotlin client writes it (doubles, 0.5 kg of cheese, COMPLETED, \
         CREDIT_CARD, 10 % off: total {kotlin_total}): HQ stores all three as documents",
        sent[0].record.order_number, sent[1].record.order_number
    ));

    // 7. Everything converges again: the tills get the client's orders, the client gets the
    //    tills' (and HQ's settlements) through GET /api/sync/updates.
    let (states, waited) = shop.wait_agree(&all, true).await?;
    for node in shop.tills() {
        let kotlin = node
            .till
            .order(kotlin_id)
            .with_context(|| format!("{} does not hold the Kotlin order", node.name))?;
        ensure!(
            kotlin.order.total == kotlin_total,
            "{} shows the Kotlin order's total as {} instead of the client's {kotlin_total}",
            node.name,
            kotlin.order.total
        );
        for (id, stored) in &client_ids {
            let order = node.till.order(*id).with_context(|| {
                format!("{} does not hold {CLIENT}'s order {}", node.name, stored.record.order_number)
            })?;
            ensure!(
                order.order.total == stored.record.total,
                "{} holds {CLIENT}'s order {} with total {} instead of {}",
                node.name,
                order.order.order_number,
                order.order.total,
                stored.record.total
            );
        }
    }
    progress.step(format!(
        "every till holds {CLIENT}'s 2 orders and {KOTLIN}'s at its client's total; every node holds {} ({})",
        states[0],
        seconds(waited)
    ));
    let hq_state = states[0].clone();
    let hq_payments = hq_state.documents as usize - hq_state.orders;
    let started = Instant::now();
    let (client_orders, client_payments) = loop {
        shop.client.sync_now().await.context("the legacy client's sync with HQ")?;
        let orders = shop.client.orders()?;
        let payments = shop.client.transactions()?.len();
        let settled_seen = settled.iter().all(|payment| {
            client_view(&orders, payment.order.order.id).is_some_and(|status| status == payment.status)
        });
        if orders.len() == hq_state.orders && payments == hq_payments && settled_seen {
            break (orders, payments);
        }
        ensure!(
            started.elapsed() < PATIENCE,
            "{CLIENT} holds {} orders and {payments} payments, HQ {} and {hq_payments} (settlements \
             seen: {settled_seen}) after {} s",
            orders.len(),
            hq_state.orders,
            PATIENCE.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stats = shop.client.stats()?;
    progress.step(format!(
        "{CLIENT} receives the tills' {} orders and {client_payments} payments with HQ's \
         settlements (GET /api/sync/updates); nothing left to send",
        client_orders.len() - sent.len(),
    ));
    ensure!(stats.unsent() == 0, "{CLIENT} still has {} records to send", stats.unsent());
    let client = NodeState {
        documents: (client_orders.len() + client_payments) as u64,
        orders: client_orders.len(),
        digest: "-".into(),
        pending: stats.unsent(),
    };

    // 8. Checks on every node: all edits merged, settlements confirmed, order numbers unique.
    let mut views = vec![Vec::new(); settled.len()];
    for node in &shop.nodes {
        let order = node.till.order(x.order.id)?.order;
        let cakes = order.items.iter().filter(|line| line.sku == MENU[6].0 && !line.voided).count();
        ensure!(cakes == 1, "{}: till-A's added item on {} is missing", node.name, order.order_number);
        ensure!(
            order.status == OrderStatus::Sent,
            "{}: {} is {}, not SENT as till-B set it",
            node.name,
            order.order_number,
            order.status
        );
        ensure!(
            order.notes == note,
            "{}: till-C's offline note on {} is missing",
            node.name,
            order.order_number
        );
        for (payment, view) in settled.iter().zip(&mut views) {
            let order = node.till.order(payment.order.order.id)?.order;
            ensure!(
                order.payment.status == payment.status && order.payment.confirmed,
                "{}: {} shows {} (confirmed: {}), HQ settled {}",
                node.name,
                order.order_number,
                order.payment.status,
                order.payment.confirmed,
                payment.status
            );
            view.push((order.payment.status, Some(order.payment.confirmed)));
        }
        let numbers = orders(&node.till)?;
        let distinct: BTreeSet<&str> = numbers.iter().map(|(_, number)| number.as_str()).collect();
        ensure!(distinct.len() == numbers.len(), "{}: duplicate order numbers", node.name);
    }
    for (payment, view) in settled.iter().zip(&mut views) {
        let status =
            client_view(&client_orders, payment.order.order.id).context("the client lost a settled order")?;
        view.push((status, None));
    }
    let numbers: BTreeSet<&str> =
        client_orders.iter().map(|order| order.record.order_number.as_str()).collect();
    ensure!(numbers.len() == client_orders.len(), "{CLIENT}: duplicate order numbers");
    progress.step(format!(
        "checked on every node: {}'s three concurrent edits all kept; both settlements confirmed \
         by HQ's signature; {} orders, no duplicate order number",
        x.order.order_number, hq_state.orders
    ));

    let (states, _) = shop.wait_agree(&all, true).await?;
    Ok(Summary { states, client, settled, views })
}
