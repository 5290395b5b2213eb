//! Conformance of the record stores: every test below is one function run against
//! [`SledRecords`] and against [`PgRecords`], so that what HQ builds on [`RecordStore`] behaves
//! the same on either.
//!
//! The PostgreSQL variants need a server: set `TILLMESH_TEST_DATABASE_URL`
//! (`postgres://postgres@127.0.0.1:5432/test`). Each test creates a database of its own named
//! `tillmesh_t_<unix seconds>_<random>` through that URL, and drops it at the end; databases of
//! this form older than an hour (left by killed runs) are dropped by the next run. Without the
//! variable the PostgreSQL variants print `SKIPPED` and pass.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tillmesh_core::legacy::{
    FieldConflict, LegacyItem, LegacyOrder, LegacyTransaction, RecordKind, Resolution, Since,
};
use tillmesh_core::{Amount, OrderStatus, PaymentMethod, PaymentStatus, Quantity, Timestamp};
use tillmesh_hq::records::{
    BatchKeys, CONFLICTS_KEPT, ConflictEntry, LegacyDevice, RecordBody, RecordCounts, RecordVersion,
};
use tillmesh_hq::{PgRecords, Record, RecordBatch, RecordError, RecordStore, SledRecords};
use tillmesh_store::{Store, StoreOptions};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Records to store.

/// A line of `quantity` (`"2"`, a weight `"0.35"`) at `unit_price_cents`.
fn item(product_id: &str, product_name: &str, quantity: &str, unit_price_cents: i64) -> LegacyItem {
    let quantity: Quantity = quantity.parse().expect("quantity");
    let unit_price = Amount::from_minor(unit_price_cents);
    LegacyItem {
        product_id: product_id.into(),
        product_name: product_name.into(),
        quantity,
        unit_price,
        total_price: quantity.price(unit_price).expect("line total"),
    }
}

/// An order record: its lines deliberately not in any sorted order, a name that needs quoting,
/// a logged conflict and a document with every byte value that tends to get mangled.
fn order_record(local_id: Uuid, number: &str, changed_at: i64) -> Record {
    let items = vec![
        item("P-9", "Soupe du jour", "2", 450),
        item("P-1", "Crème brûlée 'maison' \"x\" \\ ✓", "1", 1_299),
        item("P-5", "Bread", "3", 75),
        item("P-7", "Cheese by the kg", "0.355", 2_490),
    ];
    let subtotal: i64 = items.iter().map(|item| item.total_price.minor()).sum();
    let order = LegacyOrder {
        id: format!("order-{number}"),
        order_number: number.into(),
        items,
        subtotal: Amount::from_minor(subtotal),
        tax: Amount::from_minor(198),
        total: Amount::from_minor(subtotal + 198),
        payment_method: Some(PaymentMethod::Card.into()),
        payment_status: PaymentStatus::Paid.into(),
        order_status: OrderStatus::Sent.into(),
        created_at: Timestamp(1_704_067_200_000),
        updated_at: Timestamp(1_704_067_260_123),
    };
    record(local_id, RecordBody::Order(order), changed_at)
}

/// An order with no lines, no payment method, deleted, without a logged conflict.
fn bare_order_record(local_id: Uuid, number: &str, changed_at: i64) -> Record {
    let order = LegacyOrder {
        id: Uuid::new_v4().to_string(),
        order_number: number.into(),
        items: Vec::new(),
        subtotal: Amount::ZERO,
        tax: Amount::ZERO,
        total: Amount::ZERO,
        payment_method: None,
        payment_status: PaymentStatus::Pending.into(),
        order_status: OrderStatus::Voided.into(),
        created_at: Timestamp(0),
        updated_at: Timestamp(i64::MAX),
    };
    let mut record = record(local_id, RecordBody::Order(order), changed_at);
    record.deleted = true;
    record.logged_conflict = None;
    record.document = Vec::new();
    record
}

fn transaction_record(local_id: Uuid, reference: &str, changed_at: i64) -> Record {
    let transaction = LegacyTransaction {
        id: format!("txn-{reference}"),
        reference_number: reference.into(),
        amount: Amount::from_minor(92_233_720_368_547),
        payment_method: PaymentMethod::Voucher.into(),
        status: PaymentStatus::Captured.into(),
        order_id: "order-ORD-1".into(),
        created_at: Timestamp(1_704_067_200_001),
        updated_at: Timestamp(1_704_067_200_002),
    };
    record(local_id, RecordBody::Transaction(transaction), changed_at)
}

fn record(local_id: Uuid, body: RecordBody, changed_at: i64) -> Record {
    Record {
        local_id,
        doc_id: Uuid::new_v4(),
        device_id: "device-abc-123".into(),
        written_by: "till-A".into(),
        sync_version: 7,
        server_hash: body.content_hash(),
        heads: "0123456789abcdef0123456789abcdef".into(),
        deleted: false,
        body,
        logged_conflict: Some("paymentStatus".into()),
        changed_at: Timestamp(changed_at),
        position: 0,
        document: vec![0, 1, 0x5c, 0x27, 0x80, 0xff, 0, b'x'],
    }
}

fn conflict(field: &str, kind: RecordKind, resolution: Resolution, at: i64) -> ConflictEntry {
    ConflictEntry {
        at: Timestamp(at),
        kind,
        local_id: Uuid::new_v4(),
        doc_id: Uuid::new_v4(),
        device_id: "device-xyz".into(),
        conflict: FieldConflict {
            field: field.into(),
            client_value: Some(format!("\"client {field}\"")),
            server_value: (resolution != Resolution::ServerAssigned).then(|| "\"server\"".into()),
            resolution,
        },
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What `changes` returns for a record: the same without its document.
fn in_feed(record: &Record) -> Record {
    Record { document: Vec::new(), ..record.clone() }
}

/// Puts `records` in one committed batch and returns them as stored.
async fn put_committed<S: RecordStore>(store: &S, records: Vec<Record>) -> Vec<Record> {
    let mut batch = store.begin().await.expect("begin");
    let mut stored = Vec::with_capacity(records.len());
    for record in records {
        stored.push(batch.put(record).await.expect("put"));
    }
    batch.commit().await.expect("commit");
    stored
}

/// Every record after `since`, `limit` at a time, resuming from each page's last position.
async fn page_through<S: RecordStore>(store: &S, since: Since, limit: usize) -> Vec<Record> {
    let mut since = since;
    let mut all = Vec::new();
    loop {
        let page = store.changes(since, limit).await.expect("changes");
        assert!(page.len() <= limit, "a page of {} for a limit of {limit}", page.len());
        let Some(last) = page.last() else { return all };
        since = Since::Token(last.position);
        all.extend(page);
    }
}

fn assert_strictly_increasing(records: &[Record]) {
    for pair in records.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The conformance tests, each run on both stores.

/// What is put is what is read back, by `get` (with the document) and by `changes` (without).
async fn round_trip<S: RecordStore>(store: S) {
    let records = vec![
        order_record(Uuid::new_v4(), "ORD-1001", 1_000),
        bare_order_record(Uuid::new_v4(), "ORD-1002", 1_001),
        transaction_record(Uuid::new_v4(), "REF-1", 999),
    ];
    let stored = put_committed(&store, records.clone()).await;
    assert_eq!(stored.len(), records.len());
    assert!(stored[0].position > 0);
    assert_strictly_increasing(&stored);
    for (put, stored) in records.iter().zip(&stored) {
        assert_eq!(stored, &Record { position: stored.position, ..put.clone() });
        let read = store.get(stored.kind(), stored.local_id).await.expect("get");
        assert_eq!(read.as_ref(), Some(stored));
    }
    // Kinds are separate: an order's localId names no transaction.
    assert_eq!(store.get(RecordKind::Transaction, stored[0].local_id).await.expect("get"), None);
    assert_eq!(store.get(RecordKind::Order, Uuid::new_v4()).await.expect("get"), None);

    let feed = store.changes(Since::Token(0), 100).await.expect("changes");
    assert_eq!(feed, stored.iter().map(in_feed).collect::<Vec<_>>());

    let mut versions = store.versions().await.expect("versions");
    versions.sort_by_key(|version| (version.kind, version.local_id));
    let mut expected: Vec<RecordVersion> = stored
        .iter()
        .map(|record| RecordVersion {
            kind: record.kind(),
            local_id: record.local_id,
            doc_id: record.doc_id,
            heads: record.heads.clone(),
        })
        .collect();
    expected.sort_by_key(|version| (version.kind, version.local_id));
    assert_eq!(versions, expected);
}

/// A batch's writes are invisible outside it until commit; a dropped batch leaves nothing, not
/// even the numbers it took.
async fn batch_isolation<S: RecordStore>(store: S) {
    let record = order_record(Uuid::new_v4(), "ORD-1", 10);
    let mut batch = store.begin().await.expect("begin");
    let stored = batch.put(record.clone()).await.expect("put");
    assert_eq!(batch.get(RecordKind::Order, record.local_id).await.expect("get"), Some(stored.clone()));
    assert_eq!(store.get(RecordKind::Order, record.local_id).await.expect("get"), None);
    assert_eq!(store.changes(Since::Token(0), 10).await.expect("changes"), Vec::new());
    assert_eq!(store.last_position().await.expect("last position"), 0);
    assert_eq!(store.counts().await.expect("counts"), RecordCounts::default());
    batch.commit().await.expect("commit");
    assert_eq!(store.get(RecordKind::Order, record.local_id).await.expect("get"), Some(stored.clone()));
    assert_eq!(store.last_position().await.expect("last position"), stored.position);

    let dropped = transaction_record(Uuid::new_v4(), "REF-1", 11);
    let mut batch = store.begin().await.expect("begin");
    let assigned = batch.next_assigned_number().await.expect("assigned number");
    assert_eq!(assigned, 1);
    batch.put(dropped.clone()).await.expect("put");
    batch.put(order_record(record.local_id, "ORD-2", 12)).await.expect("re-put");
    batch
        .log_conflict(conflict("orderNumber", RecordKind::Order, Resolution::ServerAssigned, 13))
        .await
        .expect("log");
    drop(batch);

    assert_eq!(store.get(RecordKind::Transaction, dropped.local_id).await.expect("get"), None);
    assert_eq!(store.get(RecordKind::Order, record.local_id).await.expect("get"), Some(stored.clone()));
    assert_eq!(store.changes(Since::Token(0), 10).await.expect("changes"), vec![in_feed(&stored)]);
    assert_eq!(store.last_position().await.expect("last position"), stored.position);
    assert_eq!(store.conflicts(10).await.expect("conflicts"), Vec::new());
    assert_eq!(
        store.counts().await.expect("counts"),
        RecordCounts { orders: 1, transactions: 0, devices: 0, conflicts: 0 }
    );

    let mut batch = store.begin().await.expect("begin after a dropped batch");
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-2").await.expect("owner"), None);
    assert_eq!(batch.number_owner(RecordKind::Transaction, "REF-1").await.expect("owner"), None);
    assert_eq!(batch.next_assigned_number().await.expect("assigned number"), assigned);
    assert_eq!(batch.next_assigned_number().await.expect("assigned number"), assigned + 1);
    batch.commit().await.expect("commit");
    let mut batch = store.begin().await.expect("begin");
    assert_eq!(batch.next_assigned_number().await.expect("assigned number"), assigned + 2);
}

/// `number_owner` sees the batch's own puts, per kind.
async fn number_owner_sees_own_put<S: RecordStore>(store: S) {
    let order = order_record(Uuid::new_v4(), "ORD-7", 1);
    let transaction = transaction_record(Uuid::new_v4(), "REF-7", 2);
    let mut batch = store.begin().await.expect("begin");
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-7").await.expect("owner"), None);
    batch.put(order.clone()).await.expect("put");
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-7").await.expect("owner"), Some(order.local_id));
    assert_eq!(batch.number_owner(RecordKind::Transaction, "ORD-7").await.expect("owner"), None);
    batch.put(transaction.clone()).await.expect("put");
    assert_eq!(
        batch.number_owner(RecordKind::Transaction, "REF-7").await.expect("owner"),
        Some(transaction.local_id)
    );
    assert_eq!(batch.number_owner(RecordKind::Order, "REF-7").await.expect("owner"), None);
    batch.commit().await.expect("commit");

    let mut batch = store.begin().await.expect("begin");
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-7").await.expect("owner"), Some(order.local_id));
    assert_eq!(
        batch.number_owner(RecordKind::Transaction, "REF-7").await.expect("owner"),
        Some(transaction.local_id)
    );
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-8").await.expect("owner"), None);
}

/// A batch told the keys it carries answers for them as for any other key: records and numbers
/// found, absent ones absent (per kind), its own puts and re-puts on top; keys it was not told
/// of are still looked up.
async fn read_ahead<S: RecordStore>(store: S) {
    let order = order_record(Uuid::new_v4(), "ORD-1", 1);
    let transaction = transaction_record(Uuid::new_v4(), "REF-1", 2);
    let other = order_record(Uuid::new_v4(), "ORD-2", 3);
    let [order, transaction, other] =
        put_committed(&store, vec![order, transaction, other]).await.try_into().expect("three records");
    let (absent, new) = (Uuid::new_v4(), order_record(Uuid::new_v4(), "ORD-3", 4));
    let mut keys = BatchKeys::default();
    keys.add(RecordKind::Order, order.local_id, "ORD-1");
    keys.add(RecordKind::Transaction, transaction.local_id, "REF-1");
    keys.add(RecordKind::Order, absent, "ORD-9");
    keys.add(RecordKind::Order, new.local_id, "ORD-3");
    // Kinds apart: a transaction's localId and number name no order, and the other way round.
    keys.add(RecordKind::Order, transaction.local_id, "REF-1");
    keys.add(RecordKind::Transaction, order.local_id, "ORD-1");

    let mut batch = store.begin().await.expect("begin");
    batch.read_ahead(&keys).await.expect("read ahead");
    batch.read_ahead(&keys).await.expect("read the same keys ahead again");
    assert_eq!(batch.get(RecordKind::Order, order.local_id).await.expect("get"), Some(order.clone()));
    assert_eq!(
        batch.get(RecordKind::Transaction, transaction.local_id).await.expect("get"),
        Some(transaction.clone())
    );
    assert_eq!(batch.get(RecordKind::Order, absent).await.expect("get"), None);
    assert_eq!(batch.get(RecordKind::Order, transaction.local_id).await.expect("get"), None);
    assert_eq!(batch.get(RecordKind::Transaction, order.local_id).await.expect("get"), None);
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-1").await.expect("owner"), Some(order.local_id));
    assert_eq!(
        batch.number_owner(RecordKind::Transaction, "REF-1").await.expect("owner"),
        Some(transaction.local_id)
    );
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-9").await.expect("owner"), None);
    assert_eq!(batch.number_owner(RecordKind::Order, "REF-1").await.expect("owner"), None);
    assert_eq!(batch.number_owner(RecordKind::Transaction, "ORD-1").await.expect("owner"), None);
    // Not read ahead.
    assert_eq!(batch.get(RecordKind::Order, other.local_id).await.expect("get"), Some(other.clone()));
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-2").await.expect("owner"), Some(other.local_id));

    let new = batch.put(new).await.expect("put");
    let renumbered = batch.put(order_record(order.local_id, "ORD-4", 5)).await.expect("re-put");
    assert_eq!(batch.get(RecordKind::Order, new.local_id).await.expect("get"), Some(new.clone()));
    assert_eq!(batch.get(RecordKind::Order, order.local_id).await.expect("get"), Some(renumbered.clone()));
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-3").await.expect("owner"), Some(new.local_id));
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-4").await.expect("owner"), Some(order.local_id));
    batch.commit().await.expect("commit");

    assert_eq!(store.get(RecordKind::Order, order.local_id).await.expect("get"), Some(renumbered));
    assert_eq!(store.get(RecordKind::Order, new.local_id).await.expect("get"), Some(new));
    assert_eq!(
        store.counts().await.expect("counts"),
        RecordCounts { orders: 3, transactions: 1, devices: 0, conflicts: 0 }
    );
}

/// Positions strictly increase across batches and kinds; `changes(Since::Token(p))` is exactly
/// what follows `p`, and paging with any limit resumes exactly.
async fn feed_by_position<S: RecordStore>(store: S) {
    assert_eq!(store.last_position().await.expect("last position"), 0);
    assert_eq!(store.changes(Since::Token(0), 10).await.expect("changes"), Vec::new());
    let mut stored = Vec::new();
    for round in 0..3 {
        stored.extend(
            put_committed(
                &store,
                vec![
                    order_record(Uuid::new_v4(), &format!("ORD-{round}"), 100 + round),
                    transaction_record(Uuid::new_v4(), &format!("REF-{round}"), 100 + round),
                    bare_order_record(Uuid::new_v4(), &format!("ORD-{round}-b"), 100 + round),
                ],
            )
            .await,
        );
    }
    assert_strictly_increasing(&stored);
    let last = stored.last().expect("records").position;
    assert_eq!(store.last_position().await.expect("last position"), last);

    let expected: Vec<Record> = stored.iter().map(in_feed).collect();
    assert_eq!(store.changes(Since::Token(0), 100).await.expect("changes"), expected);
    for (index, record) in stored.iter().enumerate() {
        let after = store.changes(Since::Token(record.position), 100).await.expect("changes");
        assert_eq!(after, expected[index + 1..], "after position {}", record.position);
    }
    for limit in 1..=4 {
        assert_eq!(page_through(&store, Since::Token(0), limit).await, expected, "limit {limit}");
    }
    assert_eq!(store.changes(Since::Token(0), 0).await.expect("changes"), Vec::new());
    assert_eq!(store.changes(Since::Token(last), 10).await.expect("changes"), Vec::new());
    assert_eq!(store.changes(Since::Token(u64::MAX), 10).await.expect("changes"), Vec::new());
}

/// `changes(Since::Time(t))`: records changed after `t`, still in position order, `limit` of
/// them.
async fn feed_by_time<S: RecordStore>(store: S) {
    let stored = put_committed(
        &store,
        vec![
            order_record(Uuid::new_v4(), "ORD-1", 300),
            transaction_record(Uuid::new_v4(), "REF-1", 100),
            order_record(Uuid::new_v4(), "ORD-2", 200),
            transaction_record(Uuid::new_v4(), "REF-2", 200),
        ],
    )
    .await;
    let feed: Vec<Record> = stored.iter().map(in_feed).collect();
    let changes = |time: i64, limit: usize| store.changes(Since::Time(Timestamp(time)), limit);
    assert_eq!(changes(0, 10).await.expect("changes"), feed);
    assert_eq!(
        changes(150, 10).await.expect("changes"),
        vec![feed[0].clone(), feed[2].clone(), feed[3].clone()]
    );
    assert_eq!(changes(150, 2).await.expect("changes"), vec![feed[0].clone(), feed[2].clone()]);
    assert_eq!(changes(200, 10).await.expect("changes"), vec![feed[0].clone()]);
    assert_eq!(changes(300, 10).await.expect("changes"), Vec::new());
    // A token continues a time query exactly.
    assert_eq!(
        store.changes(Since::Token(feed[2].position), 10).await.expect("changes"),
        vec![feed[3].clone()]
    );
}

/// A record put again moves to the end of the feed, once; its lines are replaced.
async fn re_put_moves_to_end<S: RecordStore>(store: S) {
    let first = put_committed(
        &store,
        vec![
            order_record(Uuid::new_v4(), "ORD-A", 1),
            transaction_record(Uuid::new_v4(), "REF-B", 2),
            order_record(Uuid::new_v4(), "ORD-C", 3),
        ],
    )
    .await;
    let (a, b, c) = (&first[0], &first[1], &first[2]);

    let mut changed = a.clone();
    if let RecordBody::Order(order) = &mut changed.body {
        order.items = vec![item("P-2", "Tea", "4", 250)];
        order.subtotal = Amount::from_minor(1_000);
        order.tax = Amount::from_minor(0);
        order.total = Amount::from_minor(1_000);
        order.order_number = "ORD-A2".into();
    }
    changed.server_hash = changed.body.content_hash();
    changed.sync_version += 1;
    changed.deleted = true;
    changed.logged_conflict = None;
    changed.changed_at = Timestamp(4);
    changed.document = vec![9; 4096];
    let a2 = put_committed(&store, vec![changed.clone()]).await.remove(0);
    assert!(a2.position > c.position);
    assert_eq!(a2, Record { position: a2.position, ..changed });
    assert_eq!(store.get(RecordKind::Order, a.local_id).await.expect("get"), Some(a2.clone()));
    assert_eq!(
        store.changes(Since::Token(0), 10).await.expect("changes"),
        vec![in_feed(b), in_feed(c), in_feed(&a2)]
    );

    // Put twice in one batch: one entry, at the later position, with the later content.
    let mut batch = store.begin().await.expect("begin");
    let mut b1 = b.clone();
    b1.sync_version = 8;
    batch.put(b1).await.expect("put");
    let mut b2 = b.clone();
    b2.sync_version = 9;
    let b2 = batch.put(b2).await.expect("put again");
    batch.commit().await.expect("commit");
    assert_eq!(store.get(RecordKind::Transaction, b.local_id).await.expect("get"), Some(b2.clone()));
    assert_eq!(
        store.changes(Since::Token(0), 10).await.expect("changes"),
        vec![in_feed(c), in_feed(&a2), in_feed(&b2)]
    );
    assert_eq!(store.last_position().await.expect("last position"), b2.position);
    let counts = store.counts().await.expect("counts");
    assert_eq!((counts.orders, counts.transactions), (2, 1));
}

/// Each order keeps its own lines, however many orders a batch holds: lines replaced by a put
/// in the same batch or a later one, moved with a new document id, added to an order that had
/// none.
async fn lines_follow_their_order<S: RecordStore>(store: S) {
    let x = order_record(Uuid::new_v4(), "ORD-X", 1);
    let mut y = order_record(Uuid::new_v4(), "ORD-Y", 2);
    if let RecordBody::Order(order) = &mut y.body {
        order.items = vec![item("P-7", "Tea", "1", 250)];
    }
    let z = bare_order_record(Uuid::new_v4(), "ORD-Z", 3);
    let t = transaction_record(Uuid::new_v4(), "REF-T", 4);
    let mut y_again = y.clone();
    if let RecordBody::Order(order) = &mut y_again.body {
        order.items = vec![item("P-8", "Coffee", "2", 300), item("P-9", "Cake", "1", 450)];
    }
    let stored = put_committed(&store, vec![x.clone(), y, z.clone(), t, y_again]).await;
    let [x1, _, z1, t1, y2] = <[Record; 5]>::try_from(stored).expect("five records");
    for record in [&x1, &y2, &z1, &t1] {
        assert_eq!(store.get(record.kind(), record.local_id).await.expect("get").as_ref(), Some(record));
    }
    assert_eq!(
        store.changes(Since::Token(0), 10).await.expect("changes"),
        [&x1, &z1, &t1, &y2].map(in_feed).to_vec()
    );

    let mut x_moved = x.clone();
    x_moved.doc_id = Uuid::new_v4();
    if let RecordBody::Order(order) = &mut x_moved.body {
        order.items = vec![item("P-1", "Bread", "5", 75)];
        order.order_number = "ORD-X2".into();
    }
    let mut z_lines = z.clone();
    if let RecordBody::Order(order) = &mut z_lines.body {
        order.items = vec![item("P-2", "Soup", "1", 600), item("P-3", "Salad", "2", 700)];
    }
    let mut batch = store.begin().await.expect("begin");
    let x2 = batch.put(x_moved).await.expect("put");
    let z2 = batch.put(z_lines).await.expect("put");
    // A number a record of an open batch held stays taken until the batch commits.
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-X").await.expect("owner"), Some(x.local_id));
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-X2").await.expect("owner"), Some(x.local_id));
    assert_eq!(batch.get(RecordKind::Order, x.local_id).await.expect("get"), Some(x2.clone()));
    batch.commit().await.expect("commit");
    for record in [&x2, &z2, &y2, &t1] {
        assert_eq!(store.get(record.kind(), record.local_id).await.expect("get").as_ref(), Some(record));
    }
    assert_eq!(
        store.changes(Since::Token(0), 10).await.expect("changes"),
        [&t1, &y2, &x2, &z2].map(in_feed).to_vec()
    );
}

fn device(device_id: &str, added_at: i64, revoked_at: Option<i64>) -> LegacyDevice {
    LegacyDevice {
        device_id: device_id.into(),
        added_at: Some(Timestamp(added_at)),
        revoked_at: revoked_at.map(Timestamp),
    }
}

/// Devices: registered once, found by token.
async fn devices<S: RecordStore>(store: S) {
    let (token1, token2) = (sha256_hex("token-1"), sha256_hex("token-2"));
    assert_eq!(store.device_of(&token1).await.expect("device"), None);
    store.add_device("device-1", &token1, Timestamp(5)).await.expect("add");
    assert_eq!(store.device_of(&token1).await.expect("device"), Some(device("device-1", 5, None)));
    match store.add_device("device-1", &token2, Timestamp(6)).await {
        Err(RecordError::DeviceExists { device_id }) => assert_eq!(device_id, "device-1"),
        other => panic!("a second token for device-1: {other:?}"),
    }
    assert_eq!(store.device_of(&token2).await.expect("device"), None);
    assert_eq!(store.device_of(&token1).await.expect("device"), Some(device("device-1", 5, None)));
    store.add_device("device-2", &token2, Timestamp(7)).await.expect("add");
    assert_eq!(store.device_of(&token2).await.expect("device"), Some(device("device-2", 7, None)));
    assert_eq!(store.counts().await.expect("counts").devices, 2);
}

/// Revoking: listed with its time, its token still found (so it is refused as revoked), no
/// longer counted; revoking again keeps the first time; adding it again issues a new token and
/// forgets the old one.
async fn device_revocation<S: RecordStore>(store: S) {
    let (token1, token2, token3) = (sha256_hex("token-1"), sha256_hex("token-2"), sha256_hex("token-3"));
    store.add_device("device-b", &token1, Timestamp(5)).await.expect("add");
    store.add_device("device-a", &token2, Timestamp(6)).await.expect("add");
    match store.revoke_device("device-c", Timestamp(7)).await {
        Err(RecordError::UnknownDevice { device_id }) => assert_eq!(device_id, "device-c"),
        other => panic!("revoking an unknown device: {other:?}"),
    }
    assert_eq!(store.device("device-c").await.expect("device"), None);
    assert_eq!(store.counts().await.expect("counts").devices, 2);

    let revoked = device("device-b", 5, Some(8));
    assert_eq!(store.revoke_device("device-b", Timestamp(8)).await.expect("revoke"), revoked);
    assert_eq!(store.revoke_device("device-b", Timestamp(9)).await.expect("revoke again"), revoked);
    assert_eq!(store.device_of(&token1).await.expect("device"), Some(revoked.clone()));
    assert_eq!(store.device("device-b").await.expect("device"), Some(revoked.clone()));
    assert_eq!(
        store.devices().await.expect("devices"),
        [device("device-a", 6, None), revoked.clone()],
        "by device id"
    );
    assert_eq!(store.counts().await.expect("counts").devices, 1);

    store.add_device("device-b", &token3, Timestamp(10)).await.expect("add again");
    assert_eq!(store.device_of(&token1).await.expect("device"), None, "the old token is forgotten");
    assert_eq!(store.device_of(&token3).await.expect("device"), Some(device("device-b", 10, None)));
    assert_eq!(
        store.devices().await.expect("devices"),
        [device("device-a", 6, None), device("device-b", 10, None)]
    );
    assert_eq!(store.counts().await.expect("counts").devices, 2);
    assert!(matches!(
        store.add_device("device-b", &sha256_hex("token-4"), Timestamp(11)).await,
        Err(RecordError::DeviceExists { .. })
    ));
}

/// Conflicts come back newest first; a dropped batch's are not logged.
async fn conflicts_newest_first<S: RecordStore>(store: S) {
    let logged = [
        conflict("orderNumber", RecordKind::Order, Resolution::ServerAssigned, 10),
        conflict("paymentStatus", RecordKind::Order, Resolution::ServerWins, 10),
        conflict("amount", RecordKind::Transaction, Resolution::ClientWins, 5),
    ];
    let mut batch = store.begin().await.expect("begin");
    batch.log_conflict(logged[0].clone()).await.expect("log");
    batch.log_conflict(logged[1].clone()).await.expect("log");
    batch.commit().await.expect("commit");
    let mut batch = store.begin().await.expect("begin");
    batch.log_conflict(logged[2].clone()).await.expect("log");
    batch.commit().await.expect("commit");
    let mut batch = store.begin().await.expect("begin");
    batch.log_conflict(conflict("tax", RecordKind::Order, Resolution::ServerWins, 11)).await.expect("log");
    drop(batch);

    let newest_first: Vec<ConflictEntry> = logged.iter().rev().cloned().collect();
    assert_eq!(store.conflicts(10).await.expect("conflicts"), newest_first);
    assert_eq!(store.conflicts(2).await.expect("conflicts"), newest_first[..2]);
    assert_eq!(store.conflicts(0).await.expect("conflicts"), Vec::new());
    assert_eq!(store.counts().await.expect("counts").conflicts, 3);
}

/// The conflict log keeps the newest [`CONFLICTS_KEPT`] entries, however many are logged (a
/// device resending stale copies in a loop).
async fn conflict_log_is_bounded<S: RecordStore>(store: S) {
    let logged = CONFLICTS_KEPT + 250;
    let mut at = 0;
    while at < logged {
        let mut batch = store.begin().await.expect("begin");
        for _ in 0..2_000.min(logged - at) {
            at += 1;
            let at_ms = i64::try_from(at).expect("small");
            batch
                .log_conflict(conflict("tax", RecordKind::Order, Resolution::ServerWins, at_ms))
                .await
                .expect("log");
        }
        batch.commit().await.expect("commit");
    }
    let kept = store.conflicts(usize::MAX >> 1).await.expect("conflicts");
    assert_eq!(kept.len() as u64, CONFLICTS_KEPT);
    assert_eq!(kept[0].at.0, i64::try_from(logged).expect("small"), "the newest kept");
    assert_eq!(kept.last().expect("oldest").at.0, i64::try_from(logged - CONFLICTS_KEPT + 1).expect("small"));
    assert_eq!(store.counts().await.expect("counts").conflicts, CONFLICTS_KEPT);
}

/// `counts` counts records once however often they were put, devices and conflicts, and
/// nothing of a batch dropped uncommitted.
async fn counts<S: RecordStore>(store: S) {
    assert_eq!(store.counts().await.expect("counts"), RecordCounts::default());
    let order = order_record(Uuid::new_v4(), "ORD-1", 1);
    put_committed(
        &store,
        vec![
            order.clone(),
            bare_order_record(Uuid::new_v4(), "ORD-2", 1),
            transaction_record(Uuid::new_v4(), "REF-1", 1),
        ],
    )
    .await;
    put_committed(&store, vec![order]).await;
    store.add_device("device-1", &sha256_hex("t"), Timestamp(1)).await.expect("add");
    let mut batch = store.begin().await.expect("begin");
    batch.log_conflict(conflict("total", RecordKind::Order, Resolution::ServerWins, 1)).await.expect("log");
    batch.commit().await.expect("commit");
    let mut dropped = store.begin().await.expect("begin");
    dropped.put(order_record(Uuid::new_v4(), "ORD-3", 2)).await.expect("put");
    dropped.log_conflict(conflict("total", RecordKind::Order, Resolution::ServerWins, 2)).await.expect("log");
    drop(dropped);
    assert_eq!(
        store.counts().await.expect("counts"),
        RecordCounts { orders: 2, transactions: 1, devices: 1, conflicts: 1 }
    );
}

/// What each racing task did.
#[derive(Debug)]
enum Outcome {
    Inserted(Record),
    Found(Record),
}

/// Eight tasks over two handles (two processes, for PostgreSQL) race to insert the same
/// `localId` if absent: it is inserted once and every other task finds the committed record.
async fn insert_once<S: RecordStore>(stores: [Arc<S>; 2]) {
    let record = order_record(Uuid::new_v4(), "ORD-ONCE", 42);
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = Arc::clone(&stores[task % 2]);
        let record = record.clone();
        tasks.push(tokio::spawn(async move {
            let mut batch = store.begin().await.expect("begin");
            let seen = batch.get(RecordKind::Order, record.local_id).await.expect("get");
            // Give the other tasks every chance to interleave.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let outcome = match seen {
                None => Outcome::Inserted(batch.put(record).await.expect("put")),
                Some(found) => Outcome::Found(found),
            };
            batch.commit().await.expect("commit");
            outcome
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task"));
    }
    let committed =
        stores[0].get(RecordKind::Order, record.local_id).await.expect("get").expect("the record exists");
    let inserted: Vec<&Record> = outcomes
        .iter()
        .filter_map(|outcome| if let Outcome::Inserted(r) = outcome { Some(r) } else { None })
        .collect();
    assert_eq!(inserted, vec![&committed], "{outcomes:?}");
    for outcome in &outcomes {
        if let Outcome::Found(found) = outcome {
            assert_eq!(found, &committed);
        }
    }
    let counts = stores[1].counts().await.expect("counts");
    assert_eq!((counts.orders, counts.transactions), (1, 0));
    assert_eq!(stores[1].changes(Since::Token(0), 10).await.expect("changes"), vec![in_feed(&committed)]);
}

/// A batch on one handle waits for a batch of the other to finish, then sees its writes.
///
/// The second batch is begun while the first is open, and the first raises `committing` just
/// before it commits: a second batch whose `begin` returned before that ran beside the first.
async fn batches_wait_for_each_other<S: RecordStore>(stores: [Arc<S>; 2]) {
    let [first_store, second_store] = stores;
    let record = transaction_record(Uuid::new_v4(), "REF-W", 1);
    let mut first = first_store.begin().await.expect("begin");
    let local_id = record.local_id;
    let committing = Arc::new(AtomicBool::new(false));
    let (beginning, begun) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn({
        let committing = Arc::clone(&committing);
        async move {
            let _ = beginning.send(());
            let mut second = second_store.begin().await.expect("begin second");
            let after_first = committing.load(Ordering::SeqCst);
            let seen = second.get(RecordKind::Transaction, local_id).await.expect("get");
            second.commit().await.expect("commit second");
            (after_first, seen)
        }
    });
    // The first batch writes while the second is on its way in.
    begun.await.expect("the second batch begins");
    let stored = first.put(record).await.expect("put");
    committing.store(true, Ordering::SeqCst);
    first.commit().await.expect("commit");
    let (after_first, seen) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the second batch starts once the first commits")
        .expect("task");
    assert!(after_first, "a second batch ran while the first was open");
    assert_eq!(seen, Some(stored));
}

/// A batch that waited for another one's lock continues that batch's positions and assigned
/// numbers (begun and checked as in [`batches_wait_for_each_other`]).
async fn waiting_batch_continues_counters<S: RecordStore>(stores: [Arc<S>; 2]) {
    let [first_store, second_store] = stores;
    let mut first = first_store.begin().await.expect("begin");
    let assigned = first.next_assigned_number().await.expect("assigned number");
    let committing = Arc::new(AtomicBool::new(false));
    let (beginning, begun) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn({
        let committing = Arc::clone(&committing);
        async move {
            let _ = beginning.send(());
            let mut second = second_store.begin().await.expect("begin second");
            let after_first = committing.load(Ordering::SeqCst);
            let assigned = second.next_assigned_number().await.expect("assigned number");
            let b = second.put(transaction_record(Uuid::new_v4(), "REF-2", 2)).await.expect("put");
            let c = second.put(order_record(Uuid::new_v4(), "ORD-3", 3)).await.expect("put");
            second.commit().await.expect("commit second");
            (after_first, assigned, b, c)
        }
    });
    // The first batch writes while the second is on its way in.
    begun.await.expect("the second batch begins");
    let a = first.put(order_record(Uuid::new_v4(), "ORD-1", 1)).await.expect("put");
    committing.store(true, Ordering::SeqCst);
    first.commit().await.expect("commit");
    let (after_first, second_assigned, b, c) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the second batch starts once the first commits")
        .expect("task");
    assert!(after_first, "a second batch ran while the first was open");
    assert_eq!(second_assigned, assigned + 1);
    assert_strictly_increasing(&[a.clone(), b.clone(), c.clone()]);
    assert_eq!(first_store.last_position().await.expect("last position"), c.position);
    assert_eq!(
        first_store.changes(Since::Token(0), 10).await.expect("changes"),
        [&a, &b, &c].map(in_feed).to_vec()
    );
    let mut batch = first_store.begin().await.expect("begin");
    assert_eq!(batch.next_assigned_number().await.expect("assigned number"), assigned + 2);
}

/// A batch on one handle finds what the other handle committed after both opened, by `localId`
/// and by number, and the other way round.
async fn batches_see_each_others_writes<S: RecordStore>(stores: [Arc<S>; 2]) {
    let order = order_record(Uuid::new_v4(), "ORD-1", 1);
    let transaction = transaction_record(Uuid::new_v4(), "REF-1", 2);
    let [first, second] = put_committed(&*stores[0], vec![order.clone(), transaction.clone()])
        .await
        .try_into()
        .expect("two records");
    let mut batch = stores[1].begin().await.expect("begin");
    assert_eq!(batch.get(RecordKind::Order, order.local_id).await.expect("get"), Some(first));
    assert_eq!(batch.get(RecordKind::Transaction, transaction.local_id).await.expect("get"), Some(second));
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-1").await.expect("owner"), Some(order.local_id));
    assert_eq!(
        batch.number_owner(RecordKind::Transaction, "REF-1").await.expect("owner"),
        Some(transaction.local_id)
    );
    assert_eq!(batch.get(RecordKind::Order, transaction.local_id).await.expect("get"), None);
    assert_eq!(batch.number_owner(RecordKind::Transaction, "ORD-1").await.expect("owner"), None);
    let renumbered = batch.put(order_record(order.local_id, "ORD-2", 3)).await.expect("put");
    let third = batch.put(order_record(Uuid::new_v4(), "ORD-3", 4)).await.expect("put");
    batch.commit().await.expect("commit");

    let mut batch = stores[0].begin().await.expect("begin");
    assert_eq!(batch.get(RecordKind::Order, order.local_id).await.expect("get"), Some(renumbered));
    assert_eq!(batch.get(RecordKind::Order, third.local_id).await.expect("get"), Some(third.clone()));
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-2").await.expect("owner"), Some(order.local_id));
    assert_eq!(batch.number_owner(RecordKind::Order, "ORD-3").await.expect("owner"), Some(third.local_id));
}

// ---------------------------------------------------------------------------------------------
// Running them.

async fn on_sled<F, Fut>(test: F)
where
    F: FnOnce(SledRecords) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), StoreOptions { cache_bytes: 8 << 20, hq: None }).expect("store");
    test(SledRecords::open(store).expect("records")).await;
}

async fn on_sled_shared<F, Fut>(test: F)
where
    F: FnOnce([Arc<SledRecords>; 2]) -> Fut,
    Fut: Future<Output = ()>,
{
    on_sled(|records| {
        let records = Arc::new(records);
        test([Arc::clone(&records), records])
    })
    .await;
}

async fn on_pg<F, Fut>(test: F)
where
    F: FnOnce(PgRecords) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    common::on_pg_database(|url| async move {
        test(PgRecords::connect(&url).await.expect("connect to the test database")).await;
    })
    .await;
}

/// Two [`PgRecords`] on one database, as two HQ processes have; they migrate it concurrently.
async fn on_pg_shared<F, Fut>(test: F)
where
    F: FnOnce([Arc<PgRecords>; 2]) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    common::on_pg_database(|url| async move {
        let (first, second) = tokio::join!(PgRecords::connect(&url), PgRecords::connect(&url));
        let stores = [Arc::new(first.expect("connect")), Arc::new(second.expect("connect again"))];
        test(stores).await;
    })
    .await;
}

macro_rules! on_both {
    ($runner_sled:ident, $runner_pg:ident: $($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sled() {
                    super::$runner_sled(super::$test).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$runner_pg(super::$test).await;
                }
            }
        )+
    };
}

on_both!(on_sled, on_pg:
    round_trip,
    batch_isolation,
    number_owner_sees_own_put,
    read_ahead,
    feed_by_position,
    feed_by_time,
    re_put_moves_to_end,
    lines_follow_their_order,
    devices,
    device_revocation,
    conflicts_newest_first,
    conflict_log_is_bounded,
    counts,
);

on_both!(on_sled_shared, on_pg_shared:
    insert_once,
    batches_wait_for_each_other,
    waiting_batch_continues_counters,
    batches_see_each_others_writes,
);

// ---------------------------------------------------------------------------------------------
// Sled only.

/// A device registered by a build that kept its token's hash alone (no time) is listed without
/// `addedAt`, authenticates, and can be revoked and added again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_device_without_a_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), StoreOptions { cache_bytes: 8 << 20, hq: None }).expect("store");
    let token = sha256_hex("old-token");
    let tree = store.extra_tree("hq/devices").expect("devices tree");
    tree.insert(format!("token:{token}"), "pos-old").expect("insert");
    tree.insert("id:pos-old", token.as_str()).expect("insert");
    let records = SledRecords::open(store).expect("records");

    let old = LegacyDevice { device_id: "pos-old".into(), added_at: None, revoked_at: None };
    assert_eq!(records.device_of(&token).await.expect("device"), Some(old.clone()));
    assert_eq!(records.devices().await.expect("devices"), [old]);
    assert_eq!(records.counts().await.expect("counts").devices, 1);
    let revoked = records.revoke_device("pos-old", Timestamp(3)).await.expect("revoke");
    assert_eq!(
        revoked,
        LegacyDevice { device_id: "pos-old".into(), added_at: None, revoked_at: Some(Timestamp(3)) }
    );
    assert_eq!(records.device_of(&token).await.expect("device"), Some(revoked));
    records.add_device("pos-old", &sha256_hex("new-token"), Timestamp(4)).await.expect("add again");
    assert_eq!(records.device_of(&token).await.expect("device"), None);
    assert_eq!(records.devices().await.expect("devices"), [device("pos-old", 4, None)]);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only.

/// A status this build does not know is reported as corrupt, not guessed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unknown_status_is_corrupt() {
    on_pg(|store: PgRecords| async move {
        let stored = put_committed(&store, vec![order_record(Uuid::new_v4(), "ORD-1", 1)]).await.remove(0);
        sqlx::query("UPDATE sync_orders SET order_status = ''").execute(store.pool()).await.expect("update");
        let read = store.get(RecordKind::Order, stored.local_id).await;
        assert!(matches!(read, Err(RecordError::Corrupt { .. })), "{read:?}");
        let feed = store.changes(Since::Token(0), 10).await;
        assert!(matches!(feed, Err(RecordError::Corrupt { .. })), "{feed:?}");
    })
    .await;
}

/// The counts are counters kept with the writes, not rows counted: a database that holds records
/// from before it kept them counts them once when migrated, and from then on `counts` reads the
/// counters alone (however many rows, one lookup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_counts_are_kept_as_counters() {
    common::on_pg_database(|url| async move {
        let store = PgRecords::connect(&url).await.expect("connect");
        put_committed(
            &store,
            vec![
                order_record(Uuid::new_v4(), "ORD-1", 1),
                bare_order_record(Uuid::new_v4(), "ORD-2", 1),
                transaction_record(Uuid::new_v4(), "REF-1", 1),
            ],
        )
        .await;
        store.add_device("device-1", &sha256_hex("t"), Timestamp(1)).await.expect("add");
        let mut batch = store.begin().await.expect("begin");
        batch
            .log_conflict(conflict("total", RecordKind::Order, Resolution::ServerWins, 1))
            .await
            .expect("log");
        batch.commit().await.expect("commit");
        let held = RecordCounts { orders: 2, transactions: 1, devices: 1, conflicts: 1 };

        // The database as a build before the counters left it.
        sqlx::query(
            "DELETE FROM legacy_counters WHERE name IN ('orders', 'transactions', 'devices', 'conflicts')",
        )
        .execute(store.pool())
        .await
        .expect("forget the counters");
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 3")
            .execute(store.pool())
            .await
            .expect("forget their migration");
        store.pool().close().await;
        drop(store);
        let store = PgRecords::connect(&url).await.expect("connect and migrate");
        assert_eq!(store.counts().await.expect("counts"), held);

        sqlx::query("UPDATE legacy_counters SET value = value + 1000000 WHERE name = 'orders'")
            .execute(store.pool())
            .await
            .expect("a million more orders, as far as the counter knows");
        assert_eq!(store.counts().await.expect("counts").orders, 1_000_002, "read from the counter");
    })
    .await;
}

/// Money is stored as exact integer cents, quantities as thousandths, lines in their own rows
/// in line order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_cents_and_lines() {
    on_pg(|store: PgRecords| async move {
        let stored = put_committed(&store, vec![order_record(Uuid::new_v4(), "ORD-1", 1)]).await.remove(0);
        let (subtotal, total): (i64, i64) =
            sqlx::query_as("SELECT subtotal_cents, total_cents FROM sync_orders")
                .fetch_one(store.pool())
                .await
                .expect("row");
        let RecordBody::Order(order) = &stored.body else { panic!("an order") };
        assert_eq!((subtotal, total), (order.subtotal.minor(), order.total.minor()));
        let lines: Vec<(i32, String, i64)> = sqlx::query_as(
            "SELECT line, product_id, quantity_thousandths FROM sync_order_items ORDER BY line",
        )
        .fetch_all(store.pool())
        .await
        .expect("lines");
        let line = |at: i32, product: &str, thousandths: i64| (at, product.to_string(), thousandths);
        assert_eq!(
            lines,
            vec![line(0, "P-9", 2_000), line(1, "P-1", 1_000), line(2, "P-5", 3_000), line(3, "P-7", 355)]
        );
    })
    .await;
}

/// Connecting again (an HQ restart, another process) migrates nothing and finds the records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reconnect_keeps_records() {
    common::on_pg_database(|url| async move {
        let store = PgRecords::connect(&url).await.expect("connect");
        let stored =
            put_committed(&store, vec![transaction_record(Uuid::new_v4(), "REF-1", 1)]).await.remove(0);
        store.pool().close().await;
        drop(store);
        let store = PgRecords::connect(&url).await.expect("connect again");
        assert_eq!(
            store.get(RecordKind::Transaction, stored.local_id).await.expect("get"),
            Some(stored.clone())
        );
        assert_eq!(store.last_position().await.expect("last position"), stored.position);
        let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(store.pool())
            .await
            .expect("migrations");
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .expect("migrations directory")
            .filter(|entry| {
                entry.as_ref().is_ok_and(|entry| entry.path().extension().is_some_and(|e| e == "sql"))
            })
            .count();
        assert_eq!(usize::try_from(migrations).expect("count"), files);
    })
    .await;
}

/// Rows written without `PgRecords` (an administrator's copy, a restore) are found by a batch,
/// by `localId` and by number, whether it read them ahead or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batches_find_rows_written_by_others() {
    on_pg(|store: PgRecords| async move {
        let stored = put_committed(&store, vec![order_record(Uuid::new_v4(), "ORD-1", 1)]).await.remove(0);
        let copies = [Uuid::new_v4(), Uuid::new_v4()];
        for (n, local_id) in copies.iter().enumerate() {
            sqlx::query(
                "INSERT INTO sync_orders SELECT $1, $2, client_id, $3, subtotal_cents, tax_cents, \
                   total_cents, payment_method, payment_status, order_status, device_id, written_by, \
                   sync_version, server_hash, heads, deleted, logged_conflict, created_at, updated_at, \
                   changed_at, position + $4, document FROM sync_orders WHERE local_id = $5",
            )
            .bind(Uuid::new_v4())
            .bind(local_id)
            .bind(format!("ORD-COPY-{n}"))
            .bind(i64::try_from(n + 1).expect("offset"))
            .bind(stored.local_id)
            .execute(store.pool())
            .await
            .expect("copy the row");
        }
        let mut batch = store.begin().await.expect("begin");
        let mut keys = BatchKeys::default();
        keys.add(RecordKind::Order, copies[0], "ORD-COPY-0");
        batch.read_ahead(&keys).await.expect("read ahead");
        for (n, local_id) in copies.iter().enumerate() {
            let found =
                batch.get(RecordKind::Order, *local_id).await.expect("get").expect("the copy is found");
            assert_eq!(found.body.number(), format!("ORD-COPY-{n}"));
            assert_eq!(
                batch.number_owner(RecordKind::Order, &format!("ORD-COPY-{n}")).await.expect("owner"),
                Some(*local_id)
            );
        }
    })
    .await;
}

/// A batch begins even when the connection the previous batch left for it was lost (the server
/// restarted, an administrator ended it), and a batch dropped uncommitted lets the next one in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batches_survive_lost_connections() {
    on_pg(|store: PgRecords| async move {
        let first = put_committed(&store, vec![order_record(Uuid::new_v4(), "ORD-1", 1)]).await.remove(0);
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(store.pool())
        .await
        .expect("end the other connections");
        assert!(ended.contains(&true), "the batches' connection was ended");
        let mut batch = store.begin().await.expect("begin on a new connection");
        assert_eq!(batch.get(RecordKind::Order, first.local_id).await.expect("get"), Some(first.clone()));
        batch.put(order_record(Uuid::new_v4(), "ORD-2", 2)).await.expect("put");
        drop(batch);
        let second = tokio::time::timeout(
            Duration::from_secs(10),
            put_committed(&store, vec![order_record(Uuid::new_v4(), "ORD-3", 3)]),
        )
        .await
        .expect("a batch after a dropped one")
        .remove(0);
        assert_eq!(
            store.changes(Since::Token(0), 10).await.expect("changes"),
            vec![in_feed(&first), in_feed(&second)]
        );
    })
    .await;
}
