//! Raw frames over request-response: a big-endian u32 length, then the bytes, with a size limit
//! (the default cbor codec would cap requests at 1 MiB).

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;

/// The protocol name of tillmesh frames.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/tillmesh/sync/1");

/// Length-prefixed raw frames of at most `frame_bytes_max` bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    /// Largest frame read or written.
    pub frame_bytes_max: usize,
}

impl FrameCodec {
    async fn read<T: AsyncRead + Unpin + Send>(&self, io: &mut T) -> io::Result<Vec<u8>> {
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
        Ok(frame)
    }

    async fn write<T: AsyncWrite + Unpin + Send>(&self, io: &mut T, frame: Vec<u8>) -> io::Result<()> {
        if frame.len() > self.frame_bytes_max {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame over the limit"));
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
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        self.read(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        self.read(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()> {
        self.write(io, request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()> {
        self.write(io, response).await
    }
}
