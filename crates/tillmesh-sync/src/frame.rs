//! The wire format: one versioned binary frame per message, with hard limits.
//!
//! ```text
//! frame      = "TM" version:u8 flags:u8 [credentials] [ranges] docs
//! flags      = bit 0: ranges present, bit 1: credentials present (other bits must be 0)
//! credentials= len:varint bytes                      (opaque to this crate, ≤ 64 KiB)
//! ranges     = count:varint range*                   (bounds strictly increasing, last = MAX)
//! range      = bound kind:u8 body
//! bound      = 0xFF (MAX) | len:u8 (0..=16) prefix-bytes
//! kind 0     = skip
//! kind 1     = fingerprint: xor:8 count:varint
//! kind 2 / 3 = items (2: reply wanted, 3: final): count:varint (id:16 heads:u8 (hash:32)*)*
//! docs       = count:varint (id:16 kind:u8 len:varint bytes)*   kind 0: sync message, 1: whole doc
//! ```
//! A compact frame ([`COMPACT_VERSION`], [`compact`]) is the same but for its documents, where a
//! whole document comes without its id — its own header names it, and the 16 random bytes cost
//! as much again once the frame is packed:
//! ```text
//! docs       = count:varint (kind:u8 [id:16, kind 0 only] len:varint bytes)*
//! ```
//! Decoding any byte string gives a frame or a [`FrameError`]; it never panics and never
//! allocates more than the limits allow.

use automerge::ChangeHash;
use uuid::Uuid;

use crate::index::{Bound, DocId, Fingerprint};

/// The frame version every release speaks, the one [`encode`] writes.
pub const PROTOCOL_VERSION: u8 = 1;
/// The version of compact frames ([`compact`]): whole documents without their ids. Only sent to
/// a peer whose transport says it reads them; this build reads both.
pub const COMPACT_VERSION: u8 = 2;
const MAGIC: &[u8; 2] = b"TM";

/// Largest frame accepted.
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Size a sender aims to stay under when packing documents into a frame. A receiver holds a
/// frame's documents, loaded and prepared, until it has stored them all: 256 KiB frames keep a
/// catching-up till's peak memory at 55 MiB (1 MiB frames: 82 MiB) for about the same time
/// and bytes (`cargo bench --bench sync_pair -- --orders 10000`).
pub const FRAME_BYTES_TARGET: usize = 256 * 1024;
/// Most ranges in one frame.
pub const RANGES_MAX: usize = 4_096;
/// Most items listed in one range.
pub const RANGE_ITEMS_MAX: usize = 4_096;
/// Most heads listed for one document.
pub const HEADS_MAX: usize = 64;
/// Most document messages in one frame.
pub const DOCS_MAX: usize = 20_000;
/// Largest document message.
pub const DOC_BYTES_MAX: usize = tillmesh_untrusted::DOCUMENT_BYTES_MAX;
/// Largest credentials payload.
pub const CREDENTIALS_BYTES_MAX: usize = 64 * 1024;

/// What a range says about the sender's documents in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeBody {
    /// Nothing to do here.
    Skip,
    /// The sender's fingerprint of the range.
    Fingerprint(Fingerprint),
    /// The sender's documents in the range, with their heads.
    Items {
        /// The documents and their heads.
        items: Vec<(DocId, Vec<ChangeHash>)>,
        /// Whether the receiver should answer with its own list.
        reply: bool,
    },
}

/// One range of a reconciliation message: from the previous range's upper bound (or the start)
/// to `upper`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeMsg {
    /// Exclusive upper bound.
    pub upper: Bound,
    /// What the sender says about it.
    pub body: RangeBody,
}

/// What a document message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocBody {
    /// An Automerge sync message.
    Sync(Vec<u8>),
    /// The whole saved document, for a peer known not to have it.
    Whole(Vec<u8>),
    /// A whole saved document that came without its id (in a compact frame): its message's id
    /// is nil, and the receiver takes the id from the document's own header
    /// ([`crate::Documents::name_whole`]). Only ever decoded.
    Unnamed(Vec<u8>),
}

/// One document's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocMsg {
    /// The document.
    pub id: DocId,
    /// The payload.
    pub body: DocBody,
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The sender's admission credentials (interpreted by the node, not by this crate).
    pub credentials: Option<Vec<u8>>,
    /// A reconciliation message: contiguous ranges covering the whole id space.
    pub ranges: Option<Vec<RangeMsg>>,
    /// Document messages.
    pub docs: Vec<DocMsg>,
}

impl Frame {
    /// Whether the frame carries nothing.
    pub fn is_empty(&self) -> bool {
        self.credentials.is_none() && self.ranges.is_none() && self.docs.is_empty()
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Does not start with the protocol's magic bytes.
    #[error("not a tillmesh frame")]
    BadMagic,
    /// A version this build does not speak.
    #[error("frame version {found}, this build speaks {PROTOCOL_VERSION} and {COMPACT_VERSION}")]
    Version {
        /// The frame's version.
        found: u8,
    },
    /// Ends in the middle of a field.
    #[error("frame truncated")]
    Truncated,
    /// Bytes after the last field.
    #[error("{count} bytes after the end of the frame")]
    Trailing {
        /// How many.
        count: usize,
    },
    /// A count or length over its limit.
    #[error("{what} over the limit of {max}")]
    Limit {
        /// Which field.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// An unknown flag, kind or bound.
    #[error("invalid {what} {value}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// Range bounds that do not increase, or do not end at MAX.
    #[error("range bounds must increase strictly and end at MAX")]
    Bounds,
}

/// Encodes a frame (version [`PROTOCOL_VERSION`]; an unnamed document goes under its message's
/// nil id).
pub fn encode(frame: &Frame) -> Vec<u8> {
    encode_as(frame, PROTOCOL_VERSION)
}

/// A frame encoded by [`encode`] as a compact frame ([`COMPACT_VERSION`]): the same, but whole
/// documents without their ids. A frame with no whole document comes back as it is (every
/// release reads it); bytes that are not a frame are an error.
pub fn compact(bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
    let frame = decode(bytes)?;
    if !frame.docs.iter().any(|doc| matches!(doc.body, DocBody::Whole(_) | DocBody::Unnamed(_))) {
        return Ok(bytes.to_vec());
    }
    Ok(encode_as(&frame, COMPACT_VERSION))
}

fn encode_as(frame: &Frame, version: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(version);
    let flags = u8::from(frame.ranges.is_some()) | (u8::from(frame.credentials.is_some()) << 1);
    out.push(flags);
    if let Some(credentials) = &frame.credentials {
        put_bytes(&mut out, credentials);
    }
    if let Some(ranges) = &frame.ranges {
        put_varint(&mut out, ranges.len() as u64);
        for range in ranges {
            match &range.upper {
                Bound::Max => out.push(0xFF),
                Bound::Prefix(prefix) => {
                    out.push(prefix.len() as u8);
                    out.extend_from_slice(prefix);
                }
            }
            match &range.body {
                RangeBody::Skip => out.push(0),
                RangeBody::Fingerprint(fingerprint) => {
                    out.push(1);
                    out.extend_from_slice(&fingerprint.xor);
                    put_varint(&mut out, fingerprint.count);
                }
                RangeBody::Items { items, reply } => {
                    out.push(if *reply { 2 } else { 3 });
                    put_varint(&mut out, items.len() as u64);
                    for (id, heads) in items {
                        out.extend_from_slice(id.as_bytes());
                        out.push(heads.len().min(HEADS_MAX) as u8);
                        for head in heads.iter().take(HEADS_MAX) {
                            out.extend_from_slice(&head.0);
                        }
                    }
                }
            }
        }
    }
    put_varint(&mut out, frame.docs.len() as u64);
    for doc in &frame.docs {
        let (kind, bytes) = match &doc.body {
            DocBody::Sync(bytes) => (0, bytes),
            DocBody::Whole(bytes) | DocBody::Unnamed(bytes) => (1, bytes),
        };
        if version == COMPACT_VERSION {
            out.push(kind);
            if kind == 0 {
                out.extend_from_slice(doc.id.as_bytes());
            }
        } else {
            out.extend_from_slice(doc.id.as_bytes());
            out.push(kind);
        }
        put_bytes(&mut out, bytes);
    }
    out
}

/// The encoded size of a document message.
pub fn doc_msg_len(doc: &DocMsg) -> usize {
    let bytes = match &doc.body {
        DocBody::Sync(bytes) | DocBody::Whole(bytes) | DocBody::Unnamed(bytes) => bytes.len(),
    };
    16 + 1 + 10 + bytes
}

/// Decodes a frame of either version, checking every limit.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(FrameError::Limit { what: "frame bytes", max: FRAME_BYTES_MAX });
    }
    let mut reader = Reader { bytes, at: 0 };
    if reader.take(2)? != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let version = reader.byte()?;
    if version != PROTOCOL_VERSION && version != COMPACT_VERSION {
        return Err(FrameError::Version { found: version });
    }
    let flags = reader.byte()?;
    if flags & !0b11 != 0 {
        return Err(FrameError::Invalid { what: "flags", value: u64::from(flags) });
    }
    let credentials = if flags & 0b10 != 0 {
        Some(reader.bytes("credentials", CREDENTIALS_BYTES_MAX)?.to_vec())
    } else {
        None
    };
    let ranges = if flags & 0b01 != 0 { Some(decode_ranges(&mut reader)?) } else { None };
    let doc_count = reader.count("documents", DOCS_MAX)?;
    let mut docs = Vec::with_capacity(doc_count.min(1024));
    for _ in 0..doc_count {
        let (id, kind) = if version == COMPACT_VERSION {
            let kind = reader.byte()?;
            (if kind == 0 { reader.uuid()? } else { Uuid::nil() }, kind)
        } else {
            (reader.uuid()?, reader.byte()?)
        };
        if kind > 1 {
            return Err(FrameError::Invalid { what: "document message kind", value: u64::from(kind) });
        }
        let payload = reader.bytes("document message", DOC_BYTES_MAX)?.to_vec();
        let body = match (kind, version) {
            (0, _) => DocBody::Sync(payload),
            (_, COMPACT_VERSION) => DocBody::Unnamed(payload),
            _ => DocBody::Whole(payload),
        };
        docs.push(DocMsg { id, body });
    }
    if reader.at != bytes.len() {
        return Err(FrameError::Trailing { count: bytes.len() - reader.at });
    }
    Ok(Frame { credentials, ranges, docs })
}

fn decode_ranges(reader: &mut Reader<'_>) -> Result<Vec<RangeMsg>, FrameError> {
    let count = reader.count("ranges", RANGES_MAX)?;
    let mut ranges: Vec<RangeMsg> = Vec::with_capacity(count);
    for _ in 0..count {
        let upper = match reader.byte()? {
            0xFF => Bound::Max,
            len @ 0..=16 => Bound::Prefix(reader.take(usize::from(len))?.to_vec()),
            other => return Err(FrameError::Invalid { what: "bound length", value: u64::from(other) }),
        };
        let lower = ranges.last().map_or(Bound::min(), |previous| previous.upper.clone());
        if upper <= lower {
            return Err(FrameError::Bounds);
        }
        let body = match reader.byte()? {
            0 => RangeBody::Skip,
            1 => {
                let mut xor = [0u8; 8];
                xor.copy_from_slice(reader.take(8)?);
                RangeBody::Fingerprint(Fingerprint { xor, count: reader.varint()? })
            }
            kind @ (2 | 3) => {
                let n = reader.count("range items", RANGE_ITEMS_MAX)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = reader.uuid()?;
                    let count = usize::from(reader.byte()?);
                    if count > HEADS_MAX {
                        return Err(FrameError::Limit { what: "heads", max: HEADS_MAX });
                    }
                    let mut heads = Vec::with_capacity(count);
                    for _ in 0..count {
                        let mut hash = [0u8; 32];
                        hash.copy_from_slice(reader.take(32)?);
                        heads.push(ChangeHash(hash));
                    }
                    items.push((id, heads));
                }
                RangeBody::Items { items, reply: kind == 2 }
            }
            other => return Err(FrameError::Invalid { what: "range kind", value: u64::from(other) }),
        };
        ranges.push(RangeMsg { upper, body });
    }
    if ranges.last().is_some_and(|last| last.upper != Bound::Max) {
        return Err(FrameError::Bounds);
    }
    Ok(ranges)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.at.checked_add(n).ok_or(FrameError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(FrameError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn uuid(&mut self) -> Result<Uuid, FrameError> {
        let mut id = [0u8; 16];
        id.copy_from_slice(self.take(16)?);
        Ok(Uuid::from_bytes(id))
    }

    fn varint(&mut self) -> Result<u64, FrameError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7F);
            if shift == 63 && bits > 1 {
                return Err(FrameError::Invalid { what: "varint", value: bits });
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(FrameError::Invalid { what: "varint", value })
    }

    fn count(&mut self, what: &'static str, max: usize) -> Result<usize, FrameError> {
        let count = self.varint()?;
        if count > max as u64 {
            return Err(FrameError::Limit { what, max });
        }
        Ok(count as usize)
    }

    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], FrameError> {
        let len = self.count(what, max)?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> Frame {
        Frame {
            credentials: Some(b"entry".to_vec()),
            ranges: Some(vec![
                RangeMsg { upper: Bound::Prefix(vec![0x40]), body: RangeBody::Skip },
                RangeMsg {
                    upper: Bound::Prefix(vec![0x80, 1]),
                    body: RangeBody::Fingerprint(Fingerprint { xor: [7; 8], count: 300 }),
                },
                RangeMsg {
                    upper: Bound::Max,
                    body: RangeBody::Items {
                        items: vec![(Uuid::from_u128(9), vec![ChangeHash([1; 32]), ChangeHash([2; 32])])],
                        reply: true,
                    },
                },
            ]),
            docs: vec![
                DocMsg { id: Uuid::from_u128(1), body: DocBody::Sync(vec![1, 2, 3]) },
                DocMsg { id: Uuid::from_u128(2), body: DocBody::Whole(vec![4; 300]) },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let frame = sample();
        assert_eq!(decode(&encode(&frame)), Ok(frame));
        assert_eq!(decode(&encode(&Frame::default())), Ok(Frame::default()));
    }

    #[test]
    fn compact_frames_carry_whole_documents_without_their_ids() {
        let frame = sample();
        let full = encode(&frame);
        let compacted = compact(&full).expect("a frame");
        assert_eq!(compacted[2], COMPACT_VERSION);
        assert_eq!(compacted.len(), full.len() - 16, "one whole document: its id alone is gone");
        let decoded = decode(&compacted).expect("decodes");
        assert_eq!(decoded.credentials, frame.credentials);
        assert_eq!(decoded.ranges, frame.ranges);
        assert_eq!(
            decoded.docs,
            vec![
                DocMsg { id: Uuid::from_u128(1), body: DocBody::Sync(vec![1, 2, 3]) },
                DocMsg { id: Uuid::nil(), body: DocBody::Unnamed(vec![4; 300]) },
            ]
        );
        // Compacting again changes nothing; a frame without a whole document stays as it is.
        assert_eq!(compact(&compacted), Ok(compacted));
        let ranges_only = encode(&Frame { docs: Vec::new(), ..sample() });
        assert_eq!(compact(&ranges_only), Ok(ranges_only));
        assert_eq!(compact(b"TM\x07"), Err(FrameError::Version { found: 7 }));
        // A compact frame's document of an unknown kind is refused like any other.
        assert!(matches!(
            decode(b"TM\x02\x00\x01\x02\x00"),
            Err(FrameError::Invalid { what: "document message kind", value: 2 })
        ));
    }

    #[test]
    fn rejects_malformed_frames_with_typed_errors() {
        let good = encode(&sample());
        assert_eq!(decode(b""), Err(FrameError::Truncated));
        assert_eq!(decode(b"XX\x01\x00\x00"), Err(FrameError::BadMagic));
        assert_eq!(decode(b"TM\x03\x00\x00"), Err(FrameError::Version { found: 3 }));
        assert!(matches!(decode(b"TM\x01\x04\x00"), Err(FrameError::Invalid { what: "flags", .. })));
        assert_eq!(decode(&good[..good.len() - 1]), Err(FrameError::Truncated));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(FrameError::Trailing { count: 1 }));
        // Two ranges whose bounds go down.
        let descending = Frame {
            ranges: Some(vec![
                RangeMsg { upper: Bound::Prefix(vec![0x80]), body: RangeBody::Skip },
                RangeMsg { upper: Bound::Prefix(vec![0x40]), body: RangeBody::Skip },
            ]),
            ..Frame::default()
        };
        assert_eq!(decode(&encode(&descending)), Err(FrameError::Bounds));
        let not_to_max = Frame {
            ranges: Some(vec![RangeMsg { upper: Bound::Prefix(vec![0x80]), body: RangeBody::Skip }]),
            ..Frame::default()
        };
        assert_eq!(decode(&encode(&not_to_max)), Err(FrameError::Bounds));
        // A document count far over the limit is refused before any allocation.
        assert!(matches!(
            decode(b"TM\x01\x00\xff\xff\xff\xff\x0f"),
            Err(FrameError::Limit { what: "documents", .. })
        ));
        assert!(matches!(
            decode(b"TM\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
            Err(FrameError::Invalid { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

        /// Random bytes never panic the decoder.
        #[test]
        fn random_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        /// Mutations of a valid frame, compact or not (flipped, cut, inserted bytes), decode or
        /// fail cleanly, and whatever decodes re-encodes, in its version, to an equal frame.
        #[test]
        fn mutated_frames_decode_or_fail_cleanly(
            compacted in any::<bool>(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
            insert in proptest::option::of((any::<usize>(), any::<u8>())),
        ) {
            let full = encode(&sample());
            let mut bytes = if compacted { compact(&full).expect("a frame") } else { full };
            for (at, value) in flips {
                let len = bytes.len();
                bytes[at % len] ^= value;
            }
            if let Some((at, value)) = insert {
                let at = at % (bytes.len() + 1);
                bytes.insert(at, value);
            }
            bytes.truncate(bytes.len() - cut % 4);
            if let Ok(frame) = decode(&bytes) {
                let again = encode(&frame);
                let again = if bytes[2] == COMPACT_VERSION { compact(&again).expect("a frame") } else { again };
                prop_assert_eq!(decode(&again), Ok(frame));
            }
        }
    }
}
