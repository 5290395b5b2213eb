//! Frames between two nodes on 127.0.0.1: over the long-lived streams, and by request-response
//! with a node that offers only that (an earlier release's), or only the previous stream protocol.

use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::upgrade::Version;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Transport, noise, tcp, yamux};
use tillmesh_net::codec::{FrameCodec, PROTOCOL};
use tillmesh_net::{Keypair, NetClient, NetConfig, NetEvent};
use tokio::sync::mpsc;

const SHOP_KEY: [u8; 32] = [7; 32];
const WAIT: Duration = Duration::from_secs(20);

fn config() -> NetConfig {
    let mut config = NetConfig::new(Keypair::generate_ed25519(), SHOP_KEY);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("address")];
    config
}

/// The next event that is not about listening.
async fn next(events: &mut mpsc::Receiver<NetEvent>) -> NetEvent {
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await.expect("an event in time").expect("events") {
            NetEvent::Listening(_) => {}
            event => return event,
        }
    }
}

/// A node listening on 127.0.0.1, and its address.
async fn node(config: NetConfig) -> (NetClient, mpsc::Receiver<NetEvent>, Multiaddr) {
    let local = config.keypair.public().to_peer_id();
    let (net, mut events, _) = tillmesh_net::spawn(config).expect("network");
    let address = match tokio::time::timeout(WAIT, events.recv()).await.expect("in time") {
        Some(NetEvent::Listening(address)) => address,
        other => panic!("expected an address, got {other:?}"),
    };
    (net, events, address.with(libp2p::multiaddr::Protocol::P2p(local)))
}

/// A node's client and its events.
type Running = (NetClient, mpsc::Receiver<NetEvent>);

/// A and B, B dialing A, once each has seen the other connect.
async fn connected_pair() -> (Running, Running) {
    let (a, mut a_events, a_address) = node(config()).await;
    let mut b_config = config();
    b_config.peers = vec![a_address];
    let (b, mut b_events, _) = node(b_config).await;
    assert!(matches!(next(&mut a_events).await, NetEvent::Connected(peer) if peer == b.local_peer_id()));
    assert!(matches!(next(&mut b_events).await, NetEvent::Connected(peer) if peer == a.local_peer_id()));
    ((a, a_events), (b, b_events))
}

#[tokio::test]
async fn answers_come_back_in_the_order_of_their_requests_and_a_dropped_one_fails_at_once() {
    let ((a, mut a_events), (b, mut b_events)) = connected_pair().await;

    for n in 0..4u8 {
        b.send(a.local_peer_id(), vec![n; 100 + usize::from(n)]).await.expect("send");
    }
    let mut replies = Vec::new();
    for n in 0..4u8 {
        match next(&mut a_events).await {
            NetEvent::Request { peer, frame, reply } => {
                assert_eq!(peer, b.local_peer_id());
                assert_eq!(frame, vec![n; 100 + usize::from(n)], "requests arrive in the order sent");
                replies.push(Some(reply));
            }
            other => panic!("expected a request, got {other:?}"),
        }
    }
    // Answered last first; the second one never.
    for n in [3, 0, 2] {
        let reply = replies[n].take().expect("reply");
        a.respond(reply, format!("answer {n}").into_bytes()).await.expect("respond");
    }
    drop(replies);
    for n in 0..4 {
        match (n, next(&mut b_events).await) {
            (1, NetEvent::RequestFailed { peer, .. }) => assert_eq!(peer, a.local_peer_id()),
            (_, NetEvent::Response { peer, frame }) if n != 1 => {
                assert_eq!(peer, a.local_peer_id());
                assert_eq!(frame, format!("answer {n}").into_bytes());
            }
            (n, other) => panic!("answer {n}: got {other:?}"),
        }
    }

    // The other way, on the other stream.
    a.send(b.local_peer_id(), b"from A".to_vec()).await.expect("send");
    match next(&mut b_events).await {
        NetEvent::Request { frame, reply, .. } => {
            assert_eq!(frame, b"from A");
            b.respond(reply, b"from B".to_vec()).await.expect("respond");
        }
        other => panic!("expected a request, got {other:?}"),
    }
    assert!(matches!(next(&mut a_events).await, NetEvent::Response { frame, .. } if frame == b"from B"));
}

#[tokio::test]
async fn nothing_of_a_closed_connection_comes_after_the_peer_is_gone() {
    let ((a, mut a_events), (b, mut b_events)) = connected_pair().await;
    b.send(a.local_peer_id(), b"hello".to_vec()).await.expect("send");
    let NetEvent::Request { reply, .. } = next(&mut a_events).await else { panic!("expected a request") };
    // A blocks B before answering: B sees A gone (the request in flight may fail before).
    a.block(b.local_peer_id()).await.expect("block");
    loop {
        match next(&mut b_events).await {
            NetEvent::RequestFailed { .. } => {}
            NetEvent::Disconnected(peer) => {
                assert_eq!(peer, a.local_peer_id());
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // A's answer now goes nowhere; B's next request fails at once, and it is the only event.
    a.respond(reply, b"too late".to_vec()).await.expect("respond");
    b.send(a.local_peer_id(), b"again".to_vec()).await.expect("send");
    assert!(
        matches!(next(&mut b_events).await, NetEvent::RequestFailed { peer, .. } if peer == a.local_peer_id())
    );
    assert!(b_events.try_recv().is_err(), "nothing else came");
}

#[derive(libp2p::swarm::NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Legacy {
    frames: request_response::Behaviour<FrameCodec>,
}

/// A node of an earlier release with `behaviour`, on the transport every release has had.
fn older_swarm<B: libp2p::swarm::NetworkBehaviour>(behaviour: B) -> libp2p::Swarm<B> {
    let psk = PreSharedKey::new(SHOP_KEY);
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|keypair| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
            Ok(tcp::tokio::Transport::new(tcp::Config::default())
                .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
                .upgrade(Version::V1Lazy)
                .authenticate(noise::Config::new(keypair)?)
                .multiplex(yamux::Config::default()))
        })
        .expect("transport")
        .with_behaviour(|_| behaviour)
        .expect("behaviour")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// An older node listening on 127.0.0.1, and the config of a node that dials it.
async fn dialing<B: libp2p::swarm::NetworkBehaviour>(older: &mut libp2p::Swarm<B>) -> NetConfig {
    older.listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("address")).expect("listen");
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = older.select_next_some().await {
            break address;
        }
    };
    let mut config = config();
    config.peers = vec![address.with(libp2p::multiaddr::Protocol::P2p(*older.local_peer_id()))];
    config
}

/// Starts a node on `config`, which dials the older node `older`, and carries one exchange each
/// way: the node's request, which the older node answers with `their_answer`, and the older
/// node's `their_request`, which the node answers; the older node reports the answer it got on
/// `answers`.
async fn exchange_with(
    older: PeerId,
    config: NetConfig,
    mut answers: mpsc::Receiver<Vec<u8>>,
    (our_request, their_answer, their_request): (&[u8], &[u8], &[u8]),
) {
    let (node, mut events, _) = node(config).await;
    assert!(matches!(next(&mut events).await, NetEvent::Connected(peer) if peer == older));
    node.send(older, our_request.to_vec()).await.expect("send");
    let mut answered = false;
    let mut heard = false;
    while !(answered && heard) {
        match next(&mut events).await {
            NetEvent::Response { peer, frame } => {
                assert_eq!((peer, frame.as_slice()), (older, their_answer));
                answered = true;
            }
            NetEvent::Request { peer, frame, reply } => {
                assert_eq!((peer, frame.as_slice()), (older, their_request));
                node.respond(reply, b"new answer".to_vec()).await.expect("respond");
                heard = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let answer = tokio::time::timeout(WAIT, answers.recv()).await.expect("in time").expect("answer");
    assert_eq!(answer, b"new answer");
}

#[tokio::test]
async fn a_peer_without_the_stream_protocol_is_served_by_request_response_both_ways() {
    // A node of an earlier release: packed frames by request-response only.
    let mut legacy = older_swarm(Legacy {
        frames: request_response::Behaviour::with_codec(
            FrameCodec { frame_bytes_max: 1 << 20 },
            [(PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default(),
        ),
    });
    let legacy_peer: PeerId = *legacy.local_peer_id();
    let config = dialing(&mut legacy).await;
    // The old node answers what it gets and sends a request of its own; it runs on its own
    // (its swarm does its work only while polled) and reports the answer it gets.
    let node_peer = config.keypair.public().to_peer_id();
    let (answer_heard, answers) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let SwarmEvent::Behaviour(LegacyEvent::Frames(request_response::Event::Message {
                message, ..
            })) = legacy.select_next_some().await
            else {
                continue;
            };
            match message {
                request_response::Message::Request { request, channel, .. } => {
                    assert_eq!(request, b"to the old node");
                    legacy
                        .behaviour_mut()
                        .frames
                        .send_response(channel, b"old answer".to_vec())
                        .expect("answer");
                    legacy.behaviour_mut().frames.send_request(&node_peer, b"old request".to_vec());
                }
                request_response::Message::Response { response, .. } => {
                    let _ = answer_heard.send(response).await;
                }
            }
        }
    });
    exchange_with(legacy_peer, config, answers, (b"to the old node", b"old answer", b"old request")).await;
}

#[derive(libp2p::swarm::NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Previous {
    streams: libp2p_stream::Behaviour,
}

/// A frame as the previous release writes it on its stream: a big-endian u32 length with the
/// top bit set for a frame sent as it is (as short frames are), then the frame.
fn previous_wire(frame: &[u8]) -> Vec<u8> {
    let mut wire = ((frame.len() as u32) | 1 << 31).to_be_bytes().to_vec();
    wire.extend_from_slice(frame);
    wire
}

/// A frame the previous release reads from its stream (short, so sent as it is).
async fn previous_read(stream: &mut libp2p::Stream) -> Vec<u8> {
    use futures::AsyncReadExt;
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await.expect("length");
    let length = u32::from_be_bytes(length);
    assert_ne!(length & 1 << 31, 0, "a short frame goes as it is");
    let mut frame = vec![0u8; (length & !(1 << 31)) as usize];
    stream.read_exact(&mut frame).await.expect("frame");
    frame
}

#[tokio::test]
async fn a_peer_of_the_previous_release_is_served_on_its_stream_protocol_both_ways() {
    use futures::AsyncWriteExt;
    use tillmesh_net::codec::PROTOCOL_STREAM_FIXED;

    let mut previous = older_swarm(Previous { streams: libp2p_stream::Behaviour::new() });
    let previous_peer: PeerId = *previous.local_peer_id();
    let mut control = previous.behaviour().streams.new_control();
    let mut incoming = control.accept(PROTOCOL_STREAM_FIXED).expect("accept");
    let config = dialing(&mut previous).await;
    tokio::spawn(async move {
        loop {
            previous.select_next_some().await;
        }
    });
    let node_peer = config.keypair.public().to_peer_id();
    // The previous release's node answers the request on the stream the node opens (after the
    // node's first choice of protocol was refused), and sends one of its own on its stream.
    let (answer_heard, answers) = mpsc::channel(1);
    tokio::spawn(async move {
        let (peer, mut theirs) = incoming.next().await.expect("the node's stream");
        assert_eq!(peer, node_peer);
        assert_eq!(previous_read(&mut theirs).await, b"to the previous node");
        theirs.write_all(&previous_wire(b"previous answer")).await.expect("answer");
        theirs.flush().await.expect("flush");
        let mut ours = control.open_stream(node_peer, PROTOCOL_STREAM_FIXED).await.expect("open");
        ours.write_all(&previous_wire(b"previous request")).await.expect("request");
        ours.flush().await.expect("flush");
        let _ = answer_heard.send(previous_read(&mut ours).await).await;
    });
    exchange_with(
        previous_peer,
        config,
        answers,
        (b"to the previous node", b"previous answer", b"previous request"),
    )
    .await;
}

/// A frame carrying a whole document, as the mesh writes it.
fn with_a_whole_document() -> Vec<u8> {
    use tillmesh_sync::{DocBody, DocId, DocMsg, Frame};
    tillmesh_sync::encode(&Frame {
        credentials: None,
        ranges: None,
        docs: vec![DocMsg { id: DocId::from_u128(7), body: DocBody::Whole(b"a saved document ".repeat(20)) }],
    })
}

#[tokio::test]
async fn whole_documents_go_without_their_ids_to_this_release_and_with_them_to_the_previous_one() {
    use futures::AsyncReadExt;
    use tillmesh_net::codec::PROTOCOL_STREAM;

    let frame = with_a_whole_document();
    let compacted = tillmesh_sync::compact(&frame).expect("a frame");
    assert!(compacted.len() < frame.len());

    // A node of this release gets the compact frame.
    let ((a, _a_events), (b, mut b_events)) = connected_pair().await;
    a.send(b.local_peer_id(), frame.clone()).await.expect("send");
    match next(&mut b_events).await {
        NetEvent::Request { peer, frame: received, .. } => {
            assert_eq!((peer, received), (a.local_peer_id(), compacted));
        }
        other => panic!("unexpected {other:?}"),
    }

    // A node of the previous release (`/tm/4` only) gets it as the mesh wrote it.
    let mut previous = older_swarm(Previous { streams: libp2p_stream::Behaviour::new() });
    let previous_peer: PeerId = *previous.local_peer_id();
    let mut incoming = previous.behaviour().streams.new_control().accept(PROTOCOL_STREAM).expect("accept");
    let config = dialing(&mut previous).await;
    tokio::spawn(async move {
        loop {
            previous.select_next_some().await;
        }
    });
    let (node, mut events, _) = node(config).await;
    assert!(matches!(next(&mut events).await, NetEvent::Connected(peer) if peer == previous_peer));
    node.send(previous_peer, frame.clone()).await.expect("send");
    let (_, mut stream) =
        tokio::time::timeout(WAIT, incoming.next()).await.expect("in time").expect("a stream");
    // `/tm/4`: a LEB128 length, twice the frame's, plus one for a frame sent as it is.
    let mut length = 0u32;
    for shift in (0..28).step_by(7) {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.expect("length");
        length |= u32::from(byte[0] & 0x7F) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; (length >> 1) as usize];
    stream.read_exact(&mut body).await.expect("frame");
    let received = if length & 1 == 1 {
        body
    } else {
        tillmesh_untrusted::packed::unpack(&body, 1 << 20).expect("unpack")
    };
    assert_eq!(received, frame);
}
