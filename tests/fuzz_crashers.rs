//! Every input committed under `fuzz/crashers/<target>/` (found crashing a target, or a process
//! like it, at some point) and every seed under `fuzz/corpus/<target>/`, replayed through the
//! targets' own bodies on stable: each must return normally now.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code, unreachable_pub)]
mod fuzz_targets;

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let mut replayed = 0;
    for kind in ["crashers", "corpus"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            let outcome = std::panic::catch_unwind(|| body(&bytes));
            assert!(outcome.is_ok(), "{} crashes {target}", path.display());
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn every_crasher_and_seed_of_every_target_passes() {
    let document = replay("document_receive", fuzz_targets::document_receive);
    assert!(document >= 3, "the document crashers are committed");
    let others = replay("frame_decode", fuzz_targets::frame_decode)
        + replay("legacy_batch", fuzz_targets::legacy_batch)
        + replay("money_parse", fuzz_targets::money_parse);
    println!("replayed {} inputs", document + others);
}
