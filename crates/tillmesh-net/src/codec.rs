//! Frames on the wire: a length, then the bytes, with a size limit (the default cbor codec of
//! request-response would cap requests at 1 MiB).
//!
//! Five protocols carry them. [`PROTOCOL_STREAM_COMPACT`], which every node tries first, keeps
//! one stream open per peer and direction for as long as the connection lasts: the requests go
//! one way, their answers come back the other in the same order, so an exchange costs two frames
//! and nothing else (no new substream and protocol negotiation per request, ≈ 300 bytes each).
//! Its lengths are varints (one byte for a receipt or a range list), its name is short (the name
//! crosses the wire twice on every connection, proposed, then confirmed, and both count in an
//! in-sync reconnect of about a kilobyte), and the frames it carries are compact
//! (`tillmesh_sync::compact`: whole documents without their ids, which their headers give).
//! [`PROTOCOL_STREAM`] is the same with the frames as the mesh writes them, for the previous
//! release's nodes; [`PROTOCOL_STREAM_FIXED`] has big-endian u32 lengths, for the release
//! before. The two request-response protocols serve nodes that offer no stream protocol:
//! [`PROTOCOL`] with the same packed frames, one stream per request;
//! [`PROTOCOL_RAW`] with frames as they are, for the first release's nodes.
//!
//! [`PROTOCOL`] packs each frame with the dictionary shipped in the binary
//! (`tillmesh_untrusted::packed`): most of an order document is the same key names, column
//! headers and actor ids as the next one, which a frame of one document alone cannot exploit.
//! The stream protocols pack a frame when that makes it smaller, and send it as it is otherwise
//! (receipts and range lists: zstd's header alone is about as long), marked in its length. A
//! packed frame must declare its unpacked size, and both sizes are held to the limit before
//! anything is allocated.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use tillmesh_untrusted::packed::{pack, unpack};

/// The protocol of packed compact frames with varint lengths on one long-lived stream per peer
/// and direction (tried first). Both ends must hold the same dictionary: a new dictionary is a
/// new protocol name.
pub const PROTOCOL_STREAM_COMPACT: StreamProtocol = StreamProtocol::new("/tm/5");

/// [`PROTOCOL_STREAM_COMPACT`] with frames as the mesh writes them, whole documents named (the
/// previous release's; tried second).
pub const PROTOCOL_STREAM: StreamProtocol = StreamProtocol::new("/tm/4");

/// [`PROTOCOL_STREAM`] with big-endian u32 lengths (the release before; tried third).
pub const PROTOCOL_STREAM_FIXED: StreamProtocol = StreamProtocol::new("/tillmesh/sync/3");

/// The protocol of packed frames over request-response, a stream per request.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/tillmesh/sync/2");

/// The protocol of raw tillmesh frames over request-response (the first release's).
pub const PROTOCOL_RAW: StreamProtocol = StreamProtocol::new("/tillmesh/sync/1");

/// The length [`PROTOCOL_STREAM_FIXED`] sends instead of an answer when the node dropped a
/// request unanswered (its sender gets a failed request, as a request-response timeout would give
/// it). [`PROTOCOL_STREAM`] sends the varint 0 (a packed frame of no bytes, which none is).
const NO_ANSWER: u32 = u32::MAX;

/// The bit of a [`PROTOCOL_STREAM_FIXED`] length that marks a frame sent as it is: one that
/// packing would not make smaller (a receipt, a range list), which zstd's own header would make
/// larger. [`PROTOCOL_STREAM`]'s varint is the length doubled, plus one for such a frame.
const AS_IT_IS: u32 = 1 << 31;

/// Most bytes of a [`PROTOCOL_STREAM`] varint: 28 bits, room for twice the largest frame.
const VARINT_BYTES_MAX: usize = 4;

/// How a protocol's frames go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packing {
    /// Never packed ([`PROTOCOL_RAW`]).
    Never,
    /// Always packed ([`PROTOCOL`]).
    Always,
    /// Packed when that makes them smaller, else sent as they are with [`AS_IT_IS`] set in
    /// their length ([`PROTOCOL_STREAM_FIXED`]).
    Smaller,
    /// As [`Packing::Smaller`], with a varint length ([`PROTOCOL_STREAM`]).
    SmallerVarint,
    /// As [`Packing::SmallerVarint`], each frame compacted first ([`PROTOCOL_STREAM_COMPACT`]).
    CompactVarint,
}

impl Packing {
    /// The packing of a request-response protocol.
    fn of(protocol: &StreamProtocol) -> Packing {
        if *protocol == PROTOCOL { Packing::Always } else { Packing::Never }
    }

    /// The packing of a stream protocol ([`PROTOCOL_STREAM_COMPACT`], [`PROTOCOL_STREAM`] or
    /// [`PROTOCOL_STREAM_FIXED`]).
    pub(crate) fn of_stream(protocol: &StreamProtocol) -> Packing {
        if *protocol == PROTOCOL_STREAM_COMPACT {
            Packing::CompactVarint
        } else if *protocol == PROTOCOL_STREAM {
            Packing::SmallerVarint
        } else {
            Packing::Smaller
        }
    }
}

/// Length-prefixed frames of at most `frame_bytes_max` bytes, packed or not by protocol.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    /// Largest frame read or written (and largest packed frame).
    pub frame_bytes_max: usize,
}

impl FrameCodec {
    /// The next frame on `io`, `None` for the no-answer mark. Packed frames are unpacked.
    pub(crate) async fn read_frame<T: AsyncRead + Unpin + Send>(
        &self,
        packing: Packing,
        io: &mut T,
    ) -> io::Result<Option<Vec<u8>>> {
        let Some((packed, length)) = read_length(packing, io).await? else { return Ok(None) };
        let length = length as usize;
        if length > self.frame_bytes_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {length} bytes over the limit of {}", self.frame_bytes_max),
            ));
        }
        let mut frame = vec![0u8; length];
        io.read_exact(&mut frame).await?;
        if packed { unpack(&frame, self.frame_bytes_max).map(Some) } else { Ok(Some(frame)) }
    }

    /// `frame` as it goes on the wire, its length first (in one buffer: one write, one
    /// multiplexer frame).
    pub(crate) fn encode(&self, packing: Packing, frame: &[u8]) -> io::Result<Vec<u8>> {
        if frame.len() > self.frame_bytes_max {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame over the limit"));
        }
        // Bytes that are not a frame go as they are: the peer reports them.
        let compacted =
            (packing == Packing::CompactVarint).then(|| tillmesh_sync::compact(frame).ok()).flatten();
        let frame = compacted.as_deref().unwrap_or(frame);
        let packed = match packing {
            Packing::Never => None,
            Packing::Always => Some(pack(frame)?),
            Packing::Smaller | Packing::SmallerVarint | Packing::CompactVarint => {
                Some(pack(frame)?).filter(|packed| packed.len() < frame.len())
            }
        };
        if packed.as_ref().is_some_and(|packed| packed.len() > self.frame_bytes_max) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "packed frame over the limit"));
        }
        let body = packed.as_deref().unwrap_or(frame);
        let length = u32::try_from(body.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over the limit"))?;
        let mut wire = Vec::with_capacity(VARINT_BYTES_MAX + body.len());
        match packing {
            Packing::Never | Packing::Always => wire.extend_from_slice(&length.to_be_bytes()),
            Packing::Smaller => {
                let mark = if packed.is_some() { 0 } else { AS_IT_IS };
                wire.extend_from_slice(&(length | mark).to_be_bytes());
            }
            Packing::SmallerVarint | Packing::CompactVarint => {
                let value = length
                    .checked_mul(2)
                    .map(|doubled| doubled | u32::from(packed.is_none()))
                    .filter(|value| *value < 1 << (7 * VARINT_BYTES_MAX))
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame over the limit"))?;
                put_varint(&mut wire, value);
            }
        }
        wire.extend_from_slice(body);
        Ok(wire)
    }

    /// What a stream protocol of `packing` sends for a request dropped unanswered.
    pub(crate) fn no_answer(packing: Packing) -> Vec<u8> {
        match packing {
            Packing::SmallerVarint | Packing::CompactVarint => vec![0],
            Packing::Never | Packing::Always | Packing::Smaller => NO_ANSWER.to_be_bytes().to_vec(),
        }
    }

    /// A request-response frame: one per stream, the marker has no place there.
    async fn read<T: AsyncRead + Unpin + Send>(
        &self,
        protocol: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        self.read_frame(Packing::of(protocol), io).await?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "a request-response frame of reserved length")
        })
    }

    async fn write<T: AsyncWrite + Unpin + Send>(
        &self,
        protocol: &StreamProtocol,
        io: &mut T,
        frame: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&self.encode(Packing::of(protocol), &frame)?).await?;
        io.close().await
    }
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        self.read(protocol, io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        self.read(protocol, io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()> {
        self.write(protocol, io, request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()> {
        self.write(protocol, io, response).await
    }
}

/// A frame's length and whether it is packed, `None` for the no-answer mark.
async fn read_length<T: AsyncRead + Unpin + Send>(
    packing: Packing,
    io: &mut T,
) -> io::Result<Option<(bool, u32)>> {
    if matches!(packing, Packing::SmallerVarint | Packing::CompactVarint) {
        let value = read_varint(io).await?;
        return Ok((value != 0).then_some((value & 1 == 0, value >> 1)));
    }
    let mut length = [0u8; 4];
    io.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length);
    let read = match packing {
        Packing::Smaller => (length & AS_IT_IS == 0, length & !AS_IT_IS),
        Packing::Always => (true, length),
        Packing::Never | Packing::SmallerVarint | Packing::CompactVarint => (false, length),
    };
    Ok((length != NO_ANSWER).then_some(read))
}

/// An unsigned LEB128 varint of at most [`VARINT_BYTES_MAX`] bytes, in its shortest form.
async fn read_varint<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<u32> {
    let mut value = 0u32;
    for position in 0..VARINT_BYTES_MAX {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        if position > 0 && byte[0] == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a length longer than it needs to be"));
        }
        value |= u32::from(byte[0] & 0x7f) << (7 * position);
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, format!("a length of more than {VARINT_BYTES_MAX} bytes")))
}

fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    /// `frame` written as a request of `protocol`, the bytes on the stream, and read back.
    fn over_the_wire(protocol: &StreamProtocol, frame: &[u8]) -> (Vec<u8>, io::Result<Vec<u8>>) {
        use request_response::Codec as _;
        let mut codec = FrameCodec { frame_bytes_max: LIMIT };
        let mut wire = futures::io::Cursor::new(Vec::new());
        futures::executor::block_on(codec.write_request(protocol, &mut wire, frame.to_vec())).expect("write");
        let wire = wire.into_inner();
        let read =
            futures::executor::block_on(codec.read_request(protocol, &mut futures::io::Cursor::new(&wire)));
        (wire, read)
    }

    #[test]
    fn each_protocol_reads_what_it_writes_and_only_the_new_one_compresses() {
        // A frame shaped like a sync frame: repeated structure, as documents are.
        let frame: Vec<u8> = b"TM\x01\x00"
            .iter()
            .copied()
            .chain((0..300).flat_map(|n: u32| {
                let mut doc = b"orderNumber items unitPrice lineTotal till-A ".to_vec();
                doc.extend_from_slice(&n.to_be_bytes());
                doc
            }))
            .collect();
        let (raw, read) = over_the_wire(&PROTOCOL_RAW, &frame);
        assert_eq!(raw[4..], frame[..], "the first release's protocol carries frames as they are");
        assert_eq!(read.expect("read"), frame);
        let (compressed, read) = over_the_wire(&PROTOCOL, &frame);
        assert!(compressed.len() * 4 < raw.len(), "{} bytes compressed, {} raw", compressed.len(), raw.len());
        assert_eq!(read.expect("read"), frame);
    }

    #[test]
    fn the_stream_protocol_packs_a_frame_only_when_that_makes_it_smaller() {
        let codec = FrameCodec { frame_bytes_max: LIMIT };
        let receipt = b"TM\x01\x00\x01\xff\x8a\x11\x03\x9c\x55\x02\x77\xe1\x10\x00\x00".to_vec();
        let document: Vec<u8> = (0..50).flat_map(|_| b"orderNumber items unitPrice ".to_vec()).collect();
        for frame in [receipt, document, Vec::new()] {
            let wire = codec.encode(Packing::Smaller, &frame).expect("encode");
            let length = u32::from_be_bytes(wire[..4].try_into().expect("length"));
            let as_it_is = length & AS_IT_IS != 0;
            assert_eq!(as_it_is, wire.len() - 4 == frame.len() && wire[4..] == frame[..], "{frame:?}");
            assert!(wire.len() <= frame.len() + 4, "never longer than the frame and its length");
            let read = futures::executor::block_on(
                codec.read_frame(Packing::Smaller, &mut futures::io::Cursor::new(&wire)),
            );
            assert_eq!(read.expect("read"), Some(frame));
        }
        // A frame sent as it is is held to the limit like any other.
        let mut wire = ((LIMIT as u32 + 1) | AS_IT_IS).to_be_bytes().to_vec();
        wire.extend(std::iter::repeat_n(0u8, 16));
        let read = futures::executor::block_on(
            codec.read_frame(Packing::Smaller, &mut futures::io::Cursor::new(&wire)),
        );
        assert!(read.expect_err("over the limit").to_string().contains("over the limit"));
    }

    fn read_varint_framed(codec: FrameCodec, wire: &[u8]) -> io::Result<Option<Vec<u8>>> {
        futures::executor::block_on(
            codec.read_frame(Packing::SmallerVarint, &mut futures::io::Cursor::new(wire)),
        )
    }

    #[test]
    fn the_varint_stream_protocol_reads_what_it_writes_in_fewer_bytes() {
        let codec = FrameCodec { frame_bytes_max: LIMIT };
        let receipt = b"TM\x01\x00\x01\xff\x8a\x11\x03\x9c\x55\x02\x77\xe1\x10\x00\x00".to_vec();
        let document: Vec<u8> = (0..50).flat_map(|_| b"orderNumber items unitPrice ".to_vec()).collect();
        // Lengths around each varint byte boundary (63/64 B as it is: 1 or 2 bytes), and large.
        let random = |len: usize| (0..len).map(|n| (n * 7919 % 251) as u8).collect::<Vec<u8>>();
        for frame in [
            receipt.clone(),
            document.clone(),
            Vec::new(),
            random(63),
            random(64),
            random(8_191),
            random(LIMIT),
        ] {
            let fixed = codec.encode(Packing::Smaller, &frame).expect("encode");
            let varint = codec.encode(Packing::SmallerVarint, &frame).expect("encode");
            assert_eq!(varint[varint.len() - (fixed.len() - 4)..], fixed[4..], "the same body");
            assert!(varint.len() < fixed.len(), "a shorter length");
            assert_eq!(read_varint_framed(codec, &varint).expect("read"), Some(frame));
        }
        assert_eq!(codec.encode(Packing::SmallerVarint, &receipt).expect("encode").len(), receipt.len() + 1);
        // The no-answer mark; lengths not in their shortest form, too long, or over the limit.
        assert_eq!(
            read_varint_framed(codec, &FrameCodec::no_answer(Packing::SmallerVarint)).expect("read"),
            None
        );
        for (wire, error) in [
            (vec![0x83, 0x00], "longer than it needs"),
            (vec![0xff, 0xff, 0xff, 0xff, 0x01], "more than 4 bytes"),
            (vec![0x83], "end of file"),
        ] {
            let read = read_varint_framed(codec, &wire);
            assert!(read.expect_err(error).to_string().contains(error), "{wire:?}");
        }
        let mut over = Vec::new();
        put_varint(&mut over, ((LIMIT as u32) + 1) << 1 | 1);
        over.extend(std::iter::repeat_n(0u8, 16));
        assert!(read_varint_framed(codec, &over).expect_err("over").to_string().contains("over the limit"));
    }

    #[test]
    fn a_packed_frame_over_the_limit_is_refused() {
        let bomb = pack(&vec![0u8; LIMIT + 1]).expect("pack");
        let mut wire = (bomb.len() as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&bomb);
        let mut codec = FrameCodec { frame_bytes_max: LIMIT };
        let read = futures::executor::block_on(request_response::Codec::read_request(
            &mut codec,
            &PROTOCOL,
            &mut futures::io::Cursor::new(&wire),
        ));
        assert!(read.expect_err("over the limit").to_string().contains("over the limit"));
    }
}
