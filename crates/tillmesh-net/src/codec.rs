//! Frames over request-response: a big-endian u32 length, then the bytes, with a size limit
//! (the default cbor codec would cap requests at 1 MiB).
//!
//! Two protocols carry them. [`PROTOCOL`], which every node offers first, sends each frame as
//! one zstd frame compressed with a dictionary trained on tillmesh frames and shipped in the
//! binary ([`DICTIONARY`]): most of an order document is the same key names, column headers
//! and actor ids as the next one, which a frame of one document alone cannot exploit.
//! [`PROTOCOL_RAW`] sends frames as they are, for the nodes of the first release; the
//! protocol is agreed per stream. A compressed frame must declare its decompressed size, and
//! both sizes are held to the limit before anything is allocated.

use std::cell::RefCell;
use std::io;
use std::sync::LazyLock;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// The protocol of compressed tillmesh frames (offered first).
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/tillmesh/sync/2");

/// The protocol of raw tillmesh frames (the first release's).
pub const PROTOCOL_RAW: StreamProtocol = StreamProtocol::new("/tillmesh/sync/1");

/// The zstd dictionary of [`PROTOCOL`]: trained on frames of order documents by
/// `cargo run --release --example frame_dictionary`. Both ends must hold the same one: a new
/// dictionary is a new protocol name.
pub const DICTIONARY: &[u8] = include_bytes!("frames.dict");

/// zstd's compression level: its default (with the dictionary ≈ 100 MB/s on one core here,
/// `cargo run --release --example frame_dictionary -- --check`).
const LEVEL: i32 = 3;

static ENCODER: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(DICTIONARY, LEVEL));
static DECODER: LazyLock<DecoderDictionary<'static>> = LazyLock::new(|| DecoderDictionary::copy(DICTIONARY));

thread_local! {
    /// One compression and one decompression context per thread, reused frame after frame.
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

/// `frame` compressed for [`PROTOCOL`].
pub fn compress(frame: &[u8]) -> io::Result<Vec<u8>> {
    with_contexts(|compressor, _| compressor.compress(frame))
}

/// A frame of [`PROTOCOL`] decompressed, if it declares a size of at most `bytes_max` and
/// holds exactly that.
pub fn decompress(compressed: &[u8], bytes_max: usize) -> io::Result<Vec<u8>> {
    let invalid = |detail: String| io::Error::new(io::ErrorKind::InvalidData, detail);
    let declared = zstd::zstd_safe::get_frame_content_size(compressed)
        .map_err(|_| invalid("not a zstd frame".into()))?
        .ok_or_else(|| invalid("a compressed frame that does not declare its size".into()))?;
    let size = usize::try_from(declared).ok().filter(|size| *size <= bytes_max).ok_or_else(|| {
        invalid(format!("a frame of {declared} bytes decompressed, over the limit of {bytes_max}"))
    })?;
    let mut frame = Vec::with_capacity(size);
    let written = with_contexts(|_, decompressor| decompressor.decompress_to_buffer(compressed, &mut frame))
        .map_err(|error| invalid(format!("a compressed frame that does not decompress: {error}")))?;
    if written != size {
        return Err(invalid(format!("a compressed frame of {written} bytes that declared {size}")));
    }
    Ok(frame)
}

/// Length-prefixed frames of at most `frame_bytes_max` bytes, compressed or not by protocol.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    /// Largest frame read or written (and largest compressed frame).
    pub frame_bytes_max: usize,
}

impl FrameCodec {
    async fn read<T: AsyncRead + Unpin + Send>(
        &self,
        protocol: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut length = [0u8; 4];
        io.read_exact(&mut length).await?;
        let length = u32::from_be_bytes(length) as usize;
        if length > self.frame_bytes_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {length} bytes over the limit of {}", self.frame_bytes_max),
            ));
        }
        let mut frame = vec![0u8; length];
        io.read_exact(&mut frame).await?;
        if *protocol == PROTOCOL { decompress(&frame, self.frame_bytes_max) } else { Ok(frame) }
    }

    async fn write<T: AsyncWrite + Unpin + Send>(
        &self,
        protocol: &StreamProtocol,
        io: &mut T,
        frame: Vec<u8>,
    ) -> io::Result<()> {
        if frame.len() > self.frame_bytes_max {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame over the limit"));
        }
        let frame = if *protocol == PROTOCOL { compress(&frame)? } else { frame };
        if frame.len() > self.frame_bytes_max {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "compressed frame over the limit"));
        }
        io.write_all(&(frame.len() as u32).to_be_bytes()).await?;
        io.write_all(&frame).await?;
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

    #[test]
    fn a_frame_comes_back_as_it_went() {
        for frame in
            [Vec::new(), b"TM\x01\x00\x00".to_vec(), (0..200_000u32).map(|n| (n % 251) as u8).collect()]
        {
            let compressed = compress(&frame).expect("compress");
            assert_eq!(decompress(&compressed, LIMIT).expect("decompress"), frame);
        }
    }

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
    fn a_frame_over_the_limit_once_decompressed_is_refused_before_it_is_made() {
        let zeros = vec![0u8; LIMIT + 1];
        let bomb = compress(&zeros).expect("compress");
        assert!(bomb.len() < 1_000, "a megabyte of zeros compresses to {} bytes", bomb.len());
        let error = decompress(&bomb, LIMIT).expect_err("over the limit");
        assert!(error.to_string().contains("over the limit"), "{error}");
    }

    #[test]
    fn damaged_compressed_frames_never_pass_for_more_than_they_declare() {
        let frame: Vec<u8> = (0..20_000u32).map(|n| (n * 31 % 97) as u8).collect();
        let compressed = compress(&frame).expect("compress");
        let mut state = 0x5eed_u64;
        let mut next = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for _ in 0..5_000 {
            let mut damaged = compressed.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() % damaged.len();
                damaged[at] ^= 1 << (next() % 8);
            }
            // Refused, or bytes of at most the limit (the sync layer decodes, and refuses,
            // them like any frame): never a panic, never more.
            if let Ok(back) = decompress(&damaged, frame.len()) {
                assert!(back.len() <= frame.len());
            }
        }
    }

    #[test]
    fn bytes_that_are_no_compressed_frame_are_refused() {
        for garbage in [&b""[..], b"TM\x01\x00", &[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff]] {
            assert!(decompress(garbage, LIMIT).is_err(), "{garbage:?}");
        }
        // A frame cut short.
        let frame: Vec<u8> = (0..5_000u32).map(|n| (n * 7 % 253) as u8).collect();
        let compressed = compress(&frame).expect("compress");
        assert!(decompress(&compressed[..compressed.len() - 1], LIMIT).is_err());
    }
}
