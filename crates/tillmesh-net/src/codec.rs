//! Frames on the wire: a big-endian u32 length, then the bytes, with a size limit (the default
//! cbor codec of request-response would cap requests at 1 MiB).
//!
//! Three protocols carry them. [`PROTOCOL_STREAM`], which every node tries first, keeps one
//! stream open per peer and direction for as long as the connection lasts: the requests go one
//! way, their answers come back the other in the same order, so an exchange costs two frames and
//! nothing else (no new substream and protocol negotiation per request, ≈ 300 bytes each). The
//! two request-response protocols serve nodes that do not offer it: [`PROTOCOL`] with the same
//! packed frames, one stream per request; [`PROTOCOL_RAW`] with frames as they are, for the
//! first release's nodes.
//!
//! [`PROTOCOL`] packs each frame with the dictionary shipped in the binary
//! (`tillmesh_untrusted::packed`): most of an order document is the same key names, column
//! headers and actor ids as the next one, which a frame of one document alone cannot exploit.
//! [`PROTOCOL_STREAM`] packs a frame when that makes it smaller, and sends it as it is otherwise
//! (receipts and range lists: zstd's header alone is about as long), marked in its length. A
//! packed frame must declare its unpacked size, and both sizes are held to the limit before
//! anything is allocated.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use tillmesh_untrusted::packed::{pack, unpack};

/// The protocol of packed frames on one long-lived stream per peer and direction (tried first).
/// Both ends must hold the same dictionary: a new dictionary is a new protocol name.
pub const PROTOCOL_STREAM: StreamProtocol = StreamProtocol::new("/tillmesh/sync/3");

/// The protocol of packed frames over request-response, a stream per request.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/tillmesh/sync/2");

/// The protocol of raw tillmesh frames over request-response (the first release's).
pub const PROTOCOL_RAW: StreamProtocol = StreamProtocol::new("/tillmesh/sync/1");

/// The length [`PROTOCOL_STREAM`] sends instead of an answer when the node dropped a request
/// unanswered (its sender gets a failed request, as a request-response timeout would give it).
const NO_ANSWER: u32 = u32::MAX;

/// The bit of a [`PROTOCOL_STREAM`] length that marks a frame sent as it is: one that packing
/// would not make smaller (a receipt, a range list), which zstd's own header would make larger.
const AS_IT_IS: u32 = 1 << 31;

/// How a protocol's frames go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packing {
    /// Never packed ([`PROTOCOL_RAW`]).
    Never,
    /// Always packed ([`PROTOCOL`]).
    Always,
    /// Packed when that makes them smaller, else sent as they are with [`AS_IT_IS`] set in
    /// their length ([`PROTOCOL_STREAM`]).
    Smaller,
}

impl Packing {
    fn of(protocol: &StreamProtocol) -> Packing {
        if *protocol == PROTOCOL { Packing::Always } else { Packing::Never }
    }
}

/// Length-prefixed frames of at most `frame_bytes_max` bytes, packed or not by protocol.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    /// Largest frame read or written (and largest packed frame).
    pub frame_bytes_max: usize,
}

impl FrameCodec {
    /// The next frame on `io`, `None` for [`NO_ANSWER`]. Packed frames are unpacked.
    pub(crate) async fn read_frame<T: AsyncRead + Unpin + Send>(
        &self,
        packing: Packing,
        io: &mut T,
    ) -> io::Result<Option<Vec<u8>>> {
        let mut length = [0u8; 4];
        io.read_exact(&mut length).await?;
        let length = u32::from_be_bytes(length);
        if length == NO_ANSWER {
            return Ok(None);
        }
        let (packed, length) = match packing {
            Packing::Never => (false, length),
            Packing::Always => (true, length),
            Packing::Smaller => (length & AS_IT_IS == 0, length & !AS_IT_IS),
        };
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
        let packed = match packing {
            Packing::Never => None,
            Packing::Always => Some(pack(frame)?),
            Packing::Smaller => Some(pack(frame)?).filter(|packed| packed.len() < frame.len()),
        };
        if packed.as_ref().is_some_and(|packed| packed.len() > self.frame_bytes_max) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "packed frame over the limit"));
        }
        let (body, length) = match &packed {
            Some(packed) => (packed.as_slice(), packed.len() as u32),
            None if packing == Packing::Smaller => (frame, frame.len() as u32 | AS_IT_IS),
            None => (frame, frame.len() as u32),
        };
        let mut wire = Vec::with_capacity(4 + body.len());
        wire.extend_from_slice(&length.to_be_bytes());
        wire.extend_from_slice(body);
        Ok(wire)
    }

    /// What [`PROTOCOL_STREAM`] sends for a request dropped unanswered.
    pub(crate) fn no_answer() -> [u8; 4] {
        NO_ANSWER.to_be_bytes()
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
