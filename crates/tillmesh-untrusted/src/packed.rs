//! Bytes packed with zstd and a dictionary shipped in the binary ([`DICTIONARY`], trained on
//! frames of order documents by `cargo run --release --example frame_dictionary`): sync frames on
//! the wire (`tillmesh-net`'s codec) and documents at rest (`tillmesh-store`). Most of an order
//! document is the same key names, column headers and actor ids as the next one, which a
//! document packed alone cannot exploit without the dictionary (1,206 bytes: 868 packed alone,
//! 415 with it).
//!
//! Packed bytes are unpacked only if they declare their size, that size is within the caller's
//! limit (checked before anything is allocated), they were packed with this dictionary, and
//! they hold exactly what they declared.

use std::cell::RefCell;
use std::io;
use std::sync::LazyLock;

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// The dictionary. Sync frames and stored documents are packed with it: a new one needs a new
/// protocol name (both ends of a link must hold the same) and a store migration that packs the
/// stored documents again.
pub const DICTIONARY: &[u8] = include_bytes!("tillmesh.dict");

/// zstd's compression level: its default (with the dictionary ≈ 100 MB/s on one core here,
/// `cargo run --release --example frame_dictionary -- --check`).
const LEVEL: i32 = 3;

static ENCODER: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(DICTIONARY, LEVEL));
static DECODER: LazyLock<DecoderDictionary<'static>> = LazyLock::new(|| DecoderDictionary::copy(DICTIONARY));
/// The id [`DICTIONARY`] writes into every frame it packs.
static DICTIONARY_ID: LazyLock<u32> =
    LazyLock::new(|| zstd::zstd_safe::get_dict_id(DICTIONARY).map_or(0, u32::from));

thread_local! {
    /// One compression and one decompression context per thread, reused call after call.
    static CONTEXTS: RefCell<Option<(Compressor<'static>, Decompressor<'static>)>> = const { RefCell::new(None) };
}

/// Runs `work` with this thread's contexts.
fn with_contexts<T>(
    work: impl FnOnce(&mut Compressor<'static>, &mut Decompressor<'static>) -> io::Result<T>,
) -> io::Result<T> {
    CONTEXTS.with(|contexts| {
        let mut contexts = contexts.borrow_mut();
        let (compressor, decompressor) = match &mut *contexts {
            Some(made) => made,
            None => contexts.insert((
                Compressor::with_prepared_dictionary(&ENCODER)?,
                Decompressor::with_prepared_dictionary(&DECODER)?,
            )),
        };
        work(compressor, decompressor)
    })
}

/// Whether `bytes` start like packed bytes (zstd's frame magic number); Automerge's chunks
/// start with another.
pub fn is_packed(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// `bytes` packed.
pub fn pack(bytes: &[u8]) -> io::Result<Vec<u8>> {
    with_contexts(|compressor, _| compressor.compress(bytes))
}

/// Packed bytes unpacked, if they declare a size of at most `bytes_max`, were packed with
/// [`DICTIONARY`] and hold exactly what they declare.
pub fn unpack(packed: &[u8], bytes_max: usize) -> io::Result<Vec<u8>> {
    let invalid = |detail: String| io::Error::new(io::ErrorKind::InvalidData, detail);
    let declared = zstd::zstd_safe::get_frame_content_size(packed)
        .map_err(|_| invalid("not a zstd frame".into()))?
        .ok_or_else(|| invalid("a packed frame that does not declare its size".into()))?;
    let size = usize::try_from(declared).ok().filter(|size| *size <= bytes_max).ok_or_else(|| {
        invalid(format!("a frame of {declared} bytes unpacked, over the limit of {bytes_max}"))
    })?;
    let dictionary = zstd::zstd_safe::get_dict_id_from_frame(packed).map_or(0, u32::from);
    if dictionary != *DICTIONARY_ID {
        return Err(invalid(format!("a frame packed with dictionary {dictionary}, not this build's")));
    }
    let mut bytes = Vec::with_capacity(size);
    let written = with_contexts(|_, decompressor| decompressor.decompress_to_buffer(packed, &mut bytes))
        .map_err(|error| invalid(format!("a packed frame that does not unpack: {error}")))?;
    if written != size {
        return Err(invalid(format!("a packed frame of {written} bytes that declared {size}")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    #[test]
    fn bytes_come_back_as_they_went() {
        for bytes in
            [Vec::new(), b"TM\x01\x00\x00".to_vec(), (0..200_000u32).map(|n| (n % 251) as u8).collect()]
        {
            let packed = pack(&bytes).expect("pack");
            assert!(is_packed(&packed));
            assert_eq!(unpack(&packed, LIMIT).expect("unpack"), bytes);
        }
    }

    #[test]
    fn bytes_over_the_limit_once_unpacked_are_refused_before_they_are_made() {
        let zeros = vec![0u8; LIMIT + 1];
        let bomb = pack(&zeros).expect("pack");
        assert!(bomb.len() < 1_000, "a megabyte of zeros packs to {} bytes", bomb.len());
        let error = unpack(&bomb, LIMIT).expect_err("over the limit");
        assert!(error.to_string().contains("over the limit"), "{error}");
    }

    #[test]
    fn damaged_packed_bytes_never_pass_for_more_than_they_declare() {
        let bytes: Vec<u8> = (0..20_000u32).map(|n| (n * 31 % 97) as u8).collect();
        let packed = pack(&bytes).expect("pack");
        let mut state = 0x5eed_u64;
        let mut next = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for _ in 0..5_000 {
            let mut damaged = packed.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() % damaged.len();
                damaged[at] ^= 1 << (next() % 8);
            }
            // Refused, or bytes of at most the limit (whoever reads them next checks them like
            // any bytes from outside): never a panic, never more.
            if let Ok(back) = unpack(&damaged, bytes.len()) {
                assert!(back.len() <= bytes.len());
            }
        }
    }

    #[test]
    fn bytes_that_are_not_packed_with_this_dictionary_are_refused() {
        for garbage in [&b""[..], b"TM\x01\x00", &[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff]] {
            assert!(unpack(garbage, LIMIT).is_err(), "{garbage:?}");
        }
        let bytes: Vec<u8> = (0..5_000u32).map(|n| (n * 7 % 253) as u8).collect();
        let packed = pack(&bytes).expect("pack");
        assert!(unpack(&packed[..packed.len() - 1], LIMIT).is_err(), "cut short");
        let plain = zstd::bulk::compress(&bytes, 3).expect("zstd");
        let error = unpack(&plain, LIMIT).expect_err("packed without the dictionary");
        assert!(error.to_string().contains("dictionary"), "{error}");
    }
}
