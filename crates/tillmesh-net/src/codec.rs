//! Frames over request-response: a big-endian u32 length, then the bytes, with a size limit
//! (the default cbor codec would cap requests at 1 MiB).
//!
//! Two protocols carry them. [`PROTOCOL`], which every node offers first, sends each frame
//! packed with the dictionary shipped in the binary (`tillmesh_untrusted::packed`): most of an
//! order document is the same key names, column headers and actor ids as the next one, which a
//! frame of one document alone cannot exploit. [`PROTOCOL_RAW`] sends frames as they are, for
//! the nodes of the first release; the protocol is agreed per stream. A packed frame must
//! declare its unpacked size, and both sizes are held to the limit before anything is
//! allocated.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use tillmesh_untrusted::packed::{pack, unpack};

/// The protocol of packed tillmesh frames (offered first). Both ends must hold the same
/// dictionary: a new dictionary is a new protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/tillmesh/sync/2");

/// The protocol of raw tillmesh frames (the first release's).
pub const PROTOCOL_RAW: StreamProtocol = StreamProtocol::new("/tillmesh/sync/1");

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
        if *protocol == PROTOCOL { unpack(&frame, self.frame_bytes_max) } else { Ok(frame) }
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
        let frame = if *protocol == PROTOCOL { pack(&frame)? } else { frame };
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
