//! What the network tells the node, and where the answer to a peer's request goes: shared by
//! the event loop and the stream tasks.

use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

/// Where the answer to a request that came on a peer's stream goes: the stream writes answers
/// in the order their requests came, and its protocol's no-answer mark for a request the
/// node dropped.
pub(crate) type Answer = oneshot::Sender<Vec<u8>>;

/// Where the answer to a request goes.
#[derive(Debug)]
pub struct Reply(pub(crate) ReplyTo);

/// The two ways an answer goes back.
#[derive(Debug)]
pub(crate) enum ReplyTo {
    /// The peer's stream, which writes answers in the order their requests came.
    Stream(Answer),
    /// A request-response stream of its own.
    Legacy(ResponseChannel<Vec<u8>>),
}

impl Reply {
    pub(crate) fn stream(answer: Answer) -> Reply {
        Reply(ReplyTo::Stream(answer))
    }
}

/// What happens on the network.
#[derive(Debug)]
pub enum NetEvent {
    /// Listening on an address.
    Listening(Multiaddr),
    /// The first connection to a peer is up.
    Connected(PeerId),
    /// The last connection to a peer is gone.
    Disconnected(PeerId),
    /// A peer sent a frame; answer it with [`crate::NetClient::respond`].
    Request {
        /// Who sent it.
        peer: PeerId,
        /// The frame.
        frame: Vec<u8>,
        /// Where the answer goes.
        reply: Reply,
    },
    /// A peer answered a frame we sent.
    Response {
        /// Who answered.
        peer: PeerId,
        /// The answer.
        frame: Vec<u8>,
    },
    /// A frame we sent got no answer (timeout, connection closed, …).
    RequestFailed {
        /// To whom.
        peer: PeerId,
        /// Why.
        error: String,
    },
}
