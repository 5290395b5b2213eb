//! What the checks take and what they refuse: every document automerge writes loads as before;
//! inputs that crash or exhaust automerge's own loader come back as errors.

use automerge::sync::SyncDoc;
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc};
use proptest::prelude::*;
use tillmesh_untrusted::{LoadError, decode_sync_message, load_document, merge, receive_sync_message};

/// Edits drawn by proptest: which key, which value, which actor.
#[derive(Debug, Clone)]
enum Edit {
    Put(u8, i64),
    Text(u8, String),
    Counter(u8, i64),
    Push(u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<u8>(), any::<i64>()).prop_map(|(key, value)| Edit::Put(key, value)),
        (any::<u8>(), "[a-zé€ ]{0,40}").prop_map(|(key, text)| Edit::Text(key, text)),
        (any::<u8>(), any::<i64>()).prop_map(|(key, by)| Edit::Counter(key, by)),
        any::<u8>().prop_map(Edit::Push),
    ]
}

fn apply(doc: &mut AutoCommit, edit: &Edit) {
    let result = match edit {
        Edit::Put(key, value) => doc.put(ROOT, format!("k{}", key % 16), *value).map(|_| ()),
        Edit::Text(key, text) => doc
            .put_object(ROOT, format!("t{}", key % 4), ObjType::Text)
            .and_then(|text_obj| doc.splice_text(&text_obj, 0, 0, text)),
        Edit::Counter(key, by) => {
            doc.put(ROOT, format!("c{}", key % 4), automerge::ScalarValue::counter(*by)).map(|_| ())
        }
        Edit::Push(key) => doc
            .put_object(ROOT, format!("l{}", key % 4), ObjType::List)
            .and_then(|list| doc.insert(&list, 0, i64::from(*key))),
    };
    result.expect("edit");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever automerge writes (compressed or not, several actors, many changes) passes the
    /// checks and loads to the same heads; sync messages between two copies are taken too.
    #[test]
    fn every_document_automerge_writes_loads(edits in prop::collection::vec((0u8..3, edit()), 1..60)) {
        let mut doc = AutoCommit::new().with_actor(ActorId::from([1u8; 16]));
        for (actor, edit) in &edits {
            doc.set_actor(ActorId::from([*actor + 1; 16]));
            apply(&mut doc, edit);
            doc.commit();
        }
        let heads = doc.get_heads();
        for bytes in [doc.save(), doc.save_nocompress()] {
            let mut loaded = load_document(&bytes).expect("loads");
            prop_assert_eq!(loaded.get_heads(), heads.clone());
        }

        let mut empty = AutoCommit::new();
        let (mut ours, mut theirs) = (automerge::sync::State::new(), automerge::sync::State::new());
        for _ in 0..8 {
            if let Some(message) = doc.sync().generate_sync_message(&mut ours) {
                let message = decode_sync_message(&message.encode()).expect("decodes");
                receive_sync_message(&mut empty, &mut theirs, message).expect("applies");
            }
            if let Some(message) = empty.sync().generate_sync_message(&mut theirs) {
                let message = decode_sync_message(&message.encode()).expect("decodes");
                receive_sync_message(&mut doc, &mut ours, message).expect("applies");
            }
        }
        prop_assert_eq!(empty.get_heads(), heads);
        let mut copy = load_document(&doc.save()).expect("loads");
        merge(&mut empty, &mut copy).expect("merges");
        prop_assert!(empty.get(ROOT, "k0").is_ok());
    }
}

#[test]
fn a_document_followed_by_changes_it_cannot_apply_yet_loads() {
    let mut base = AutoCommit::new().with_actor(ActorId::from([1u8; 16]));
    base.put(ROOT, "a", 1).expect("put");
    base.commit();
    let mut later = base.fork().with_actor(ActorId::from([2u8; 16]));
    later.put(ROOT, "b", 2).expect("put");
    later.commit();
    let heads = later.get_heads();
    later.put(ROOT, "c", 3).expect("put");
    later.commit();
    // The last change alone, whose dependency the document below lacks: saved as an orphan.
    let orphan = later.save_after(&heads);
    let mut bytes = base.save();
    bytes.extend_from_slice(&orphan);
    let loaded = load_document(&bytes).expect("loads");
    assert_eq!(loaded.get(ROOT, "a").expect("read").map(|(value, _)| value.to_string()), Some("1".into()));
}

#[test]
fn size_and_garbage_are_refused_before_automerge_runs() {
    assert!(matches!(load_document(&[]), Err(LoadError::Malformed { .. })));
    assert!(matches!(load_document(b"not automerge"), Err(LoadError::Malformed { .. })));
    let huge = vec![0u8; tillmesh_untrusted::DOCUMENT_BYTES_MAX + 1];
    assert!(matches!(load_document(&huge), Err(LoadError::TooLarge { .. })));
    let mut saved = AutoCommit::new().save();
    saved.truncate(saved.len() - 1);
    assert!(load_document(&saved).is_err(), "cut short");
}

/// Every input fuzzing ever found that crashed or exhausted automerge's loader
/// (`fuzz/crashers/document_receive`) is refused with an error, as a document and as the
/// changes of a sync message.
#[test]
fn every_crasher_found_is_refused_with_an_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/crashers/document_receive");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("crashers folder") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        let error = load_document(&bytes).expect_err("refused");
        println!("{}: {error}", path.display());
        seen += 1;
    }
    assert!(seen >= 3, "the crashers are committed");
}

/// Automerge's own loader, with the patched column decoder (`vendor/hexane`), returns errors
/// for the crashers that made it panic; the one that exhausts memory does so in automerge's
/// bundle loader, which the checks here keep it from reaching.
#[test]
fn the_patched_decoder_turns_the_panics_into_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/crashers/document_receive");
    for name in ["document-load-panic-eof.bin", "document-load-panic-none.bin"] {
        let bytes = std::fs::read(dir.join(name)).expect("crasher");
        let outcome = std::panic::catch_unwind(|| AutoCommit::load(&bytes).map(|_| ()));
        assert!(matches!(outcome, Ok(Err(_))), "{name}: {outcome:?}");
    }
}
