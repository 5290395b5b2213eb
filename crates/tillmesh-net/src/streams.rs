//! Frames on one long-lived stream per peer and direction ([`PROTOCOL_STREAM_COMPACT`], or
//! [`PROTOCOL_STREAM`] and [`PROTOCOL_STREAM_FIXED`] with peers of earlier releases): our requests
//! go out on the stream we open, their answers come back on it in the same order; the peer's
//! requests come in on the stream it opens, and we answer them there in the order they came.
//!
//! Each stream is a task. Its events go to the event loop, tagged with the connection epoch
//! they belong to, so that nothing of a connection that has closed reaches the node after the
//! peer's next connection has begun.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use libp2p_stream::{Control, OpenStreamError};
use tokio::sync::{mpsc, oneshot};

use crate::codec::{FrameCodec, PROTOCOL_STREAM, PROTOCOL_STREAM_COMPACT, PROTOCOL_STREAM_FIXED, Packing};
use crate::event::{NetEvent, Reply};

/// Requests of a peer read ahead of their answers; the stream waits beyond this.
const ANSWERS_PENDING_MAX: usize = 64;

/// Our requests to a peer waiting for its stream's task; more fail at once. (A node's mesh
/// sends one at a time.)
pub(crate) const REQUESTS_WAITING_MAX: usize = 64;

/// What a stream task tells the event loop.
#[derive(Debug)]
pub(crate) enum Internal {
    /// An event for the node, if the peer's connection `epoch` is still the current one.
    Event { peer: PeerId, epoch: u64, event: NetEvent },
    /// The peer speaks neither stream protocol: these frames, and the peer's later ones, go
    /// by request-response.
    Unsupported { peer: PeerId, frames: Vec<Vec<u8>> },
}

/// Where a stream task's reports go.
#[derive(Debug, Clone)]
pub(crate) struct Reports {
    pub(crate) to_loop: mpsc::Sender<Internal>,
    pub(crate) peer: PeerId,
    pub(crate) epoch: u64,
}

impl Reports {
    /// False once the event loop is gone.
    async fn event(&self, event: NetEvent) -> bool {
        self.to_loop.send(Internal::Event { peer: self.peer, epoch: self.epoch, event }).await.is_ok()
    }

    async fn failed(&self, error: &str) -> bool {
        self.event(NetEvent::RequestFailed { peer: self.peer, error: error.to_owned() }).await
    }

    /// Reports `count` requests failed (until the event loop is gone).
    async fn failed_all(&self, error: &str, count: usize) {
        for _ in 0..count {
            if !self.failed(error).await {
                return;
            }
        }
    }
}

/// Opens our stream to a peer and carries `frames` as requests over it, reporting each answer
/// (or the request's failure) in order. Ends when the stream breaks, an answer is late by
/// `timeout`, or the event loop drops `frames`; every request not answered by then is reported
/// failed.
pub(crate) async fn outbound(
    mut control: Control,
    mut frames: mpsc::Receiver<Vec<u8>>,
    reports: Reports,
    codec: FrameCodec,
    timeout: Duration,
) {
    let Some(first) = frames.recv().await else { return };
    let (stream, packing) = match open(&mut control, reports.peer).await {
        Ok(opened) => opened,
        Err(OpenStreamError::UnsupportedProtocol(_)) => {
            let mut waiting = vec![first];
            waiting.extend(drained(&mut frames));
            let _ = reports.to_loop.send(Internal::Unsupported { peer: reports.peer, frames: waiting }).await;
            return;
        }
        Err(error) => {
            tracing::debug!(peer = %reports.peer, %error, "cannot open a stream");
            let waiting = 1 + drained(&mut frames).len();
            reports.failed_all(&error.to_string(), waiting).await;
            return;
        }
    };
    let (mut reader, mut writer) = stream.split();
    // Requests written and not yet answered (or reported failed).
    let outstanding = AtomicUsize::new(0);
    // A token for each request written, in order: what the reader awaits answers for.
    let (written, mut awaiting) = mpsc::channel::<()>(REQUESTS_WAITING_MAX);
    let write = async {
        let mut frame = first;
        loop {
            match codec.encode(packing, &frame) {
                Ok(wire) => {
                    outstanding.fetch_add(1, Ordering::Relaxed);
                    writer.write_all(&wire).await?;
                    writer.flush().await?;
                    if written.send(()).await.is_err() {
                        return Ok(());
                    }
                }
                Err(error) => {
                    if !reports.failed(&error.to_string()).await {
                        return Ok(());
                    }
                }
            }
            match frames.recv().await {
                Some(next) => frame = next,
                None => return Ok(()),
            }
        }
    };
    let read = async {
        while awaiting.recv().await.is_some() {
            let answer = match tokio::time::timeout(timeout, codec.read_frame(packing, &mut reader)).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(error)) => return Err(error),
                Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time")),
            };
            outstanding.fetch_sub(1, Ordering::Relaxed);
            let event = match answer {
                Some(frame) => NetEvent::Response { peer: reports.peer, frame },
                None => NetEvent::RequestFailed { peer: reports.peer, error: "left unanswered".into() },
            };
            if !reports.event(event).await {
                return Ok(());
            }
        }
        Ok(())
    };
    let ended: std::io::Result<()> = tokio::select! {
        ended = write => ended,
        ended = read => ended,
    };
    let error = match ended {
        Ok(()) => "the stream was closed".to_owned(),
        Err(error) => {
            tracing::debug!(peer = %reports.peer, %error, "stream to the peer broken");
            error.to_string()
        }
    };
    let unanswered = outstanding.load(Ordering::Relaxed) + drained(&mut frames).len();
    reports.failed_all(&error, unanswered).await;
}

/// Opens a stream to `peer` on the newest stream protocol it speaks, with that protocol's
/// packing.
async fn open(control: &mut Control, peer: PeerId) -> Result<(Stream, Packing), OpenStreamError> {
    let mut protocol = PROTOCOL_STREAM_COMPACT;
    for older in [PROTOCOL_STREAM, PROTOCOL_STREAM_FIXED] {
        match control.open_stream(peer, protocol.clone()).await {
            Err(OpenStreamError::UnsupportedProtocol(_)) => protocol = older,
            opened => return opened.map(|stream| (stream, Packing::of_stream(&protocol))),
        }
    }
    let stream = control.open_stream(peer, protocol.clone()).await?;
    Ok((stream, Packing::of_stream(&protocol)))
}

/// Closes `frames` and takes the requests still waiting in it.
fn drained(frames: &mut mpsc::Receiver<Vec<u8>>) -> Vec<Vec<u8>> {
    frames.close();
    std::iter::from_fn(|| frames.try_recv().ok()).collect()
}

/// Reads a peer's requests from the stream it opened and writes their answers back in order,
/// until the peer closes it or it breaks.
pub(crate) async fn inbound(stream: Stream, packing: Packing, reports: Reports, codec: FrameCodec) {
    let (mut reader, mut writer) = stream.split();
    let (pending, mut answers) = mpsc::channel::<oneshot::Receiver<Vec<u8>>>(ANSWERS_PENDING_MAX);
    let read = async move {
        loop {
            let frame = match codec.read_frame(packing, &mut reader).await {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    tracing::debug!(peer = %reports.peer, "a no-answer mark as a request: stream closed");
                    return;
                }
                Err(error) => {
                    if error.kind() != std::io::ErrorKind::UnexpectedEof {
                        tracing::debug!(peer = %reports.peer, %error, "stream from the peer broken");
                    }
                    return;
                }
            };
            let (answer, answered) = oneshot::channel();
            if pending.send(answered).await.is_err() {
                return;
            }
            let reply = Reply::stream(answer);
            if !reports.event(NetEvent::Request { peer: reports.peer, frame, reply }).await {
                return;
            }
        }
    };
    let write = async {
        while let Some(answered) = answers.recv().await {
            let wire = match answered.await.map(|frame| codec.encode(packing, &frame)) {
                Ok(Ok(wire)) => wire,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "an answer that cannot be sent: the peer is told so");
                    FrameCodec::no_answer(packing)
                }
                Err(_) => FrameCodec::no_answer(packing),
            };
            writer.write_all(&wire).await?;
            writer.flush().await?;
        }
        writer.close().await
    };
    // The peer closing its side still lets the answers it awaits go out.
    let ((), written) = tokio::join!(read, write);
    if let Err(error) = written {
        tracing::debug!(%error, "answers to the peer not all written");
    }
}
