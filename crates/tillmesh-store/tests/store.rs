//! The sled store on real files: durability across reopen, indexes, paging, sync bookkeeping.

use automerge::ActorId;
use tillmesh_core::{
    Amount, Currency, Document, NewItem, NewOrder, OrderDoc, OrderStatus, TillCode, Timestamp,
};
use tillmesh_store::{OrderQuery, Store, StoreError, StoreOptions, SyncStatus, TillIdentity};
use uuid::Uuid;

fn order(n: u128, created_ms: i64) -> Document {
    let new = NewOrder {
        id: Uuid::from_u128(n),
        local_id: Uuid::from_u128(1_000_000 + n),
        number: TillCode::parse("A").expect("code").order_number(n as u64).to_string(),
        device_id: "till-A".into(),
        currency: Currency::parse("USD").expect("code"),
        tax_rate_bps: 0,
        items: vec![NewItem {
            id: Uuid::from_u128(2_000_000 + n),
            sku: "SOUP".into(),
            name: "Soup".into(),
            quantity: tillmesh_core::Quantity::pieces(1),
            unit_price: Amount::from_minor(450),
        }],
        notes: String::new(),
        created_at: Timestamp(created_ms),
    };
    Document::Order(OrderDoc::create(new, ActorId::from([1u8; 16])).expect("valid"))
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("open")
}

/// The store's sled database opened directly, once the store that had it has let go of it:
/// sled's own threads may hold its lock for a moment after the store is dropped.
fn raw_open(dir: &std::path::Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(error) if started.elapsed() < std::time::Duration::from_secs(10) => {
                assert!(error.to_string().contains("could not acquire lock"), "{error}");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(error) => panic!("raw open: {error}"),
        }
    }
}

#[test]
fn documents_survive_reopen_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut docs = vec![order(1, 10), order(2, 20)];
    let saved: Vec<Vec<u8>> = docs.iter_mut().map(Document::save).collect();
    {
        let store = open(dir.path());
        store.put(&mut docs).expect("put");
        store.flush().expect("flush");
    }
    let store = open(dir.path());
    assert_eq!(store.document_count(), 2);
    assert_eq!(store.get_bytes(Uuid::from_u128(1)).expect("read"), Some(saved[0].clone()));
    assert_eq!(store.find_local_id(Uuid::from_u128(1_000_002)).expect("read"), Some(Uuid::from_u128(2)));
    assert!(store.get(Uuid::from_u128(3)).expect("read").is_none());
}

/// Documents are stored packed with the shipped dictionary; a store of layout 1 (documents
/// stored as saved) has them packed when it opens, and every read gives the saved bytes.
#[test]
fn documents_are_stored_packed_and_a_layout_1_store_is_packed_when_it_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut docs: Vec<Document> = (1..=30).map(|n| order(n, n as i64)).collect();
    let saved: Vec<Vec<u8>> = docs.iter_mut().map(Document::save).collect();
    let saved_bytes: usize = saved.iter().map(Vec::len).sum();
    let stored_bytes = |store: &Store| {
        store
            .footprint()
            .expect("footprint")
            .into_iter()
            .find(|tree| tree.tree == "docs")
            .expect("docs")
            .value_bytes
    };
    {
        let store = open(dir.path());
        store.put(&mut docs).expect("put");
        store.flush().expect("flush");
        assert!(
            stored_bytes(&store) * 2 < saved_bytes as u64,
            "{} packed, {saved_bytes} saved",
            stored_bytes(&store)
        );
    }
    {
        // What a store of layout 1 holds: the saved bytes, and no record of the packing.
        let db = raw_open(dir.path());
        let tree = db.open_tree("docs").expect("docs");
        for (n, bytes) in saved.iter().enumerate() {
            tree.insert(Uuid::from_u128(n as u128 + 1).as_bytes(), bytes.as_slice()).expect("insert");
        }
        db.remove("migration/0002-packed-documents").expect("remove");
        db.insert("schema_version", &1u64.to_be_bytes()).expect("insert");
        db.flush().expect("flush");
    }
    let store = open(dir.path());
    assert!(stored_bytes(&store) * 2 < saved_bytes as u64, "packed by the migration");
    for (n, bytes) in saved.iter().enumerate() {
        assert_eq!(store.get_bytes(Uuid::from_u128(n as u128 + 1)).expect("read").as_ref(), Some(bytes));
    }
    let walked = store.documents_after(None, 100).expect("walk");
    assert_eq!(walked.into_iter().map(|(_, bytes)| bytes).collect::<Vec<_>>(), saved);
}

#[test]
fn lists_newest_first_in_pages_with_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut docs: Vec<Document> = (1..=7).map(|n| order(n, n as i64 * 100)).collect();
    if let Document::Order(third) = &mut docs[2] {
        third.advance(OrderStatus::Sent, "till-A", Timestamp(350)).expect("advance");
    }
    store.put(&mut docs).expect("put");

    let first = store.list_orders(&OrderQuery { limit: 3, ..OrderQuery::default() }).expect("list");
    let numbers: Vec<_> = first.orders.iter().map(|o| o.order_number.as_str()).collect();
    assert_eq!(numbers, ["A-7", "A-6", "A-5"]);
    let second = store
        .list_orders(&OrderQuery { limit: 3, cursor: first.next_cursor.clone(), ..OrderQuery::default() })
        .expect("list");
    let numbers: Vec<_> = second.orders.iter().map(|o| o.order_number.as_str()).collect();
    assert_eq!(numbers, ["A-4", "A-3", "A-2"], "A-3 was updated at 350");
    let last = store
        .list_orders(&OrderQuery { limit: 3, cursor: second.next_cursor, ..OrderQuery::default() })
        .expect("list");
    assert_eq!(last.orders.len(), 1);
    assert_eq!(last.next_cursor, None);

    let sent = store
        .list_orders(&OrderQuery { status: Some(OrderStatus::Sent), ..OrderQuery::default() })
        .expect("list");
    assert_eq!(sent.orders.len(), 1);
    assert_eq!(sent.orders[0].order_number, "A-3");
    let open_orders = store
        .list_orders(&OrderQuery { status: Some(OrderStatus::Open), ..OrderQuery::default() })
        .expect("list");
    assert_eq!(open_orders.orders.len(), 6, "the status index moved A-3 out of OPEN");

    let recent = store
        .list_orders(&OrderQuery { since: Some(Timestamp(500)), ..OrderQuery::default() })
        .expect("list");
    assert_eq!(recent.orders.len(), 3);

    let bad = store.list_orders(&OrderQuery { cursor: Some("zz".into()), ..OrderQuery::default() });
    assert!(matches!(bad, Err(StoreError::Cursor)));
    let status_counts = store.status_counts().expect("counts");
    assert!(status_counts.contains(&(OrderStatus::Open, 6)));
}

#[test]
fn sync_status_follows_local_changes_per_remote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.put(&mut [order(1, 10)]).expect("put");
    store.register_remote("hq").expect("register");
    assert_eq!(store.sync_status("hq", Uuid::from_u128(1)).expect("read"), Some(SyncStatus::Pending));

    store.set_sync_status("hq", Uuid::from_u128(1), SyncStatus::Synced).expect("set");
    store.put(&mut [order(2, 20)]).expect("put");
    let mut again = order(1, 10);
    if let Document::Order(doc) = &mut again {
        doc.set_notes("table 4", "till-A", Timestamp(30)).expect("notes");
    }
    store.put(&mut [again]).expect("put");
    assert_eq!(store.sync_status("hq", Uuid::from_u128(1)).expect("read"), Some(SyncStatus::Modified));
    assert_eq!(store.sync_status("hq", Uuid::from_u128(2)).expect("read"), Some(SyncStatus::Pending));
    store.set_sync_status("hq", Uuid::from_u128(2), SyncStatus::Failed).expect("set");
    store.record_sync("hq", Timestamp(99)).expect("record");

    drop(store);
    let store = open(dir.path());
    let counts = store.remote_counts("hq").expect("counts");
    assert_eq!((counts.pending, counts.modified, counts.failed, counts.synced), (0, 1, 1, 0));
    assert_eq!(counts.last_sync_at, Some(Timestamp(99)));
    assert_eq!(store.remotes().expect("remotes"), ["hq"]);
    assert!(store.register_remote("").is_err());
    assert!(store.set_sync_status("a\0b", Uuid::nil(), SyncStatus::Synced).is_err());

    store.mark_all_synced("hq").expect("mark");
    let counts = store.remote_counts("hq").expect("counts");
    assert_eq!((counts.pending, counts.modified, counts.failed, counts.synced), (0, 0, 0, 2));
    assert_eq!(store.sync_status("hq", Uuid::from_u128(2)).expect("read"), Some(SyncStatus::Synced));
    assert_eq!(store.sync_status("till-c", Uuid::from_u128(2)).expect("read"), None, "unknown remote");
    let index = store.load_index().expect("index");
    assert_eq!(index.len(), 2);

    store.put_sync_state("hq", Uuid::from_u128(1), b"state").expect("put state");
    assert_eq!(store.sync_state("hq", Uuid::from_u128(1)).expect("read"), Some(b"state".to_vec()));
}

#[test]
fn a_store_belongs_to_one_till_and_one_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let till = |code: &str| TillIdentity {
        code: TillCode::parse(code).expect("code"),
        device_id: format!("till-{code}"),
    };
    {
        let store = open(dir.path());
        store.bind_till(&till("A")).expect("bind");
        assert_eq!(store.next_order_sequence().expect("seq"), 1);
        assert_eq!(store.next_order_sequence().expect("seq"), 2);
        store.flush().expect("flush");
    }
    {
        let store = open(dir.path());
        store.bind_till(&till("A")).expect("same till");
        assert_eq!(store.next_order_sequence().expect("seq"), 3, "sequence survives restart");
        assert!(matches!(store.bind_till(&till("B")), Err(StoreError::OtherTill { .. })));
    }
    {
        // Pretend a newer tillmesh wrote this store.
        let db = raw_open(dir.path());
        db.insert("schema_version", &99u64.to_be_bytes()).expect("insert");
        db.flush().expect("flush");
    }
    let error = Store::open(dir.path(), StoreOptions::default()).expect_err("newer layout");
    assert!(error.to_string().contains("upgrade tillmesh"), "{error}");
}

/// Every order is in the store's directory: it and the files in it are the owner's only.
#[test]
fn the_store_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("till");
    std::fs::create_dir_all(&path).expect("mkdir");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let store = Store::open(&path, StoreOptions::default()).expect("open");
    store.flush().expect("flush");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    for entry in std::fs::read_dir(&path).expect("read dir") {
        let entry = entry.expect("entry");
        let expected = if entry.file_type().expect("type").is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&entry.path()), expected, "{}", entry.path().display());
    }
}

/// Order summaries are kept compact; a store of layout 2 (summaries as JSON) has them rewritten
/// when it opens, and lists the same orders the same way.
#[test]
fn summaries_are_kept_compact_and_a_layout_2_store_is_rewritten_when_it_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut docs: Vec<Document> = (1..=40).map(|n| order(n, n as i64 * 10)).collect();
    if let Document::Order(fifth) = &mut docs[4] {
        fifth.advance(OrderStatus::Sent, "till-A", Timestamp(1_000)).expect("advance");
    }
    let summary_bytes = |store: &Store| {
        let trees = store.footprint().expect("footprint");
        let summaries = trees.into_iter().find(|tree| tree.tree == "summaries").expect("summaries");
        summaries.value_bytes / summaries.entries
    };
    let all = OrderQuery { limit: 100, ..OrderQuery::default() };
    let listed = {
        let store = open(dir.path());
        store.put(&mut docs).expect("put");
        store.flush().expect("flush");
        assert!(summary_bytes(&store) < 80, "{} bytes a summary", summary_bytes(&store));
        store.list_orders(&all).expect("list")
    };
    assert_eq!(listed.orders.len(), 40);
    {
        // What a store of layout 2 holds: every summary as JSON, and no record of the rewrite.
        let db = raw_open(dir.path());
        let tree = db.open_tree("summaries").expect("summaries");
        for summary in &listed.orders {
            tree.insert(summary.id.as_bytes(), serde_json::to_vec(summary).expect("JSON")).expect("insert");
        }
        db.remove("migration/0003-compact-summaries").expect("remove");
        db.insert("schema_version", &2u64.to_be_bytes()).expect("insert");
        db.flush().expect("flush");
    }
    let store = open(dir.path());
    assert!(
        summary_bytes(&store) < 80,
        "rewritten by the migration: {} bytes a summary",
        summary_bytes(&store)
    );
    assert_eq!(store.list_orders(&all).expect("list"), listed);
    let sent = store.list_orders(&OrderQuery { status: Some(OrderStatus::Sent), ..all }).expect("list");
    assert_eq!(sent.orders.iter().map(|o| o.order_number.as_str()).collect::<Vec<_>>(), ["A-5"]);
}
