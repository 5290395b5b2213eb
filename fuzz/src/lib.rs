//! The bodies of the fuzzing targets, one function each. cargo-fuzz's targets
//! (`fuzz_targets/*.rs`) call them on nightly; `tests/fuzz_crashers.rs` includes this file on
//! stable and calls them on every input committed under `fuzz/crashers/<target>/`, so a crasher
//! found once stays a test. Each returns normally on any input; a panic or an abort is a crash.

use tillmesh_sync::{DocBody, DocId, DocMsg, Frame, MemoryDocuments, Session};

/// Run once before fuzzing. Panics that tillmesh contains (`catch_unwind` around Automerge) are
/// part of the behaviour under test, not crashes: the default hook, which aborts under
/// libFuzzer, is replaced by one that prints nothing.
pub fn init() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// A frame from a peer: decoding never panics, and a decoded frame encodes back to a frame
/// that decodes to the same.
pub fn frame_decode(data: &[u8]) {
    if let Ok(frame) = tillmesh_sync::decode(data) {
        let again = tillmesh_sync::decode(&tillmesh_sync::encode(&frame));
        assert_eq!(again.as_ref(), Ok(&frame), "a decoded frame round-trips");
    }
}

/// Bytes a peer sends as a document, through the node's receive path: the session loads them
/// (contained), and what loads is checked as every node checks a received document
/// (`Prepared::received`: a tillmesh document of a known schema, under its own id, whose view
/// computes). The same bytes are tried as a whole document and as a sync message.
pub fn document_receive(data: &[u8]) {
    let id = DocId::from_u128(1);
    // Documents held in memory, each checked on the way in as the node checks it.
    let mut docs = MemoryDocuments::with_validator(|id, doc| {
        tillmesh_store::Prepared::received(id, doc.clone(), None, None).map(|_| ())
    });
    let mut session = Session::new();
    let docs_sent = vec![
        DocMsg { id, body: DocBody::Whole(data.to_vec()) },
        DocMsg { id: DocId::from_u128(2), body: DocBody::Sync(data.to_vec()) },
    ];
    let Ok(received) = session.receive(Frame { credentials: None, ranges: None, docs: docs_sent }, &mut docs);
    assert!(received.changed.len() + received.refused.len() <= 2);
}

/// A legacy client's batch body: parsing never panics.
pub fn legacy_batch(data: &[u8]) {
    let _ = serde_json::from_slice::<tillmesh_core::legacy::BatchSyncRequest>(data);
}

/// Money as text: parsing never panics, and what parses prints back to the same amount.
pub fn money_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(amount) = tillmesh_core::Amount::parse(text) {
        assert_eq!(tillmesh_core::Amount::parse(&amount.to_string()).ok(), Some(amount), "{text:?}");
    }
}
