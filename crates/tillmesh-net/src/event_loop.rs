//! The event loop that owns the libp2p swarm.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use libp2p::core::transport::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, Transport, allow_block_list, connection_limits, mdns, noise, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::codec::{
    FrameCodec, PROTOCOL, PROTOCOL_RAW, PROTOCOL_STREAM, PROTOCOL_STREAM_COMPACT, PROTOCOL_STREAM_FIXED,
    Packing,
};
use crate::event::{NetEvent, Reply, ReplyTo};
use crate::streams::{self, Internal, Reports};

/// How a node joins the shop network.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The device's identity.
    pub keypair: Keypair,
    /// The shop's 32-byte pre-shared key: peers without it never get past the first bytes.
    pub shop_key: [u8; 32],
    /// Addresses to listen on (`/ip4/127.0.0.1/tcp/0`).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and re-dial whenever the connection drops.
    pub peers: Vec<Multiaddr>,
    /// Whether to discover peers on the LAN with mDNS.
    pub mdns: bool,
    /// Largest frame sent or received.
    pub frame_bytes_max: usize,
    /// How long a request may wait for its response.
    pub request_timeout_ms: u64,
    /// How long a connection's handshake (shop key, noise, yamux) may take, either way: a wrong
    /// shop key does not fail fast, and a stranger's half-open connection holds a slot until this.
    pub connection_timeout_ms: u64,
    /// Incoming connections still in their handshake at once; more are refused at once, so that
    /// a stranger's flood cannot take every descriptor.
    pub pending_incoming_max: u32,
    /// Established connections to one peer.
    pub established_per_peer_max: u32,
    /// Established connections in all.
    pub established_max: u32,
    /// First re-dial delay after a failed dial or a link that did not hold ([`LINK_HELD`]); it
    /// doubles up to `redial_backoff_max_ms`. A link that had held is dialed again at once.
    pub redial_backoff_ms: u64,
    /// Longest re-dial delay.
    pub redial_backoff_max_ms: u64,
    /// Events that may wait for the node before the loop waits.
    pub events_max: usize,
}

impl NetConfig {
    /// Defaults for a shop LAN: 16 MiB frames, 30 s requests, 3 s handshakes, 32 handshakes
    /// pending, 4 connections per peer and 256 in all, re-dial 50 ms to 30 s (a till back on
    /// the network is back in step within a few dials; one that stays away costs a dial every
    /// 30 s).
    pub fn new(keypair: Keypair, shop_key: [u8; 32]) -> NetConfig {
        NetConfig {
            keypair,
            shop_key,
            listen: Vec::new(),
            peers: Vec::new(),
            mdns: false,
            frame_bytes_max: 16 * 1024 * 1024,
            request_timeout_ms: 30_000,
            connection_timeout_ms: 3_000,
            pending_incoming_max: 32,
            established_per_peer_max: 4,
            established_max: 256,
            redial_backoff_ms: 50,
            redial_backoff_max_ms: 30_000,
            events_max: 1024,
        }
    }
}

/// Why the network could not start or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The transport or a behaviour could not be built.
    #[error("cannot build the network: {0}")]
    Build(String),
    /// A listen address was refused.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The event loop has stopped.
    #[error("the network has stopped")]
    Stopped,
}

/// How long a link must have lasted to count as one that held: when it drops, its peer is
/// dialed again at once (a cable pulled and put back, a peer restarted). A link that closes
/// sooner (a peer that refuses us) waits the re-dial backoff, so it is not dialed in a loop.
/// (A peer that refuses us does so as soon as it has read our credentials, within milliseconds.)
pub const LINK_HELD: Duration = Duration::from_millis(250);

enum Command {
    Send { peer: PeerId, frame: Vec<u8> },
    Respond { channel: ResponseChannel<Vec<u8>>, frame: Vec<u8> },
    Block { peer: PeerId },
    Dial { address: Multiaddr },
    Connected { answer: oneshot::Sender<Vec<PeerId>> },
}

/// Commands to the event loop. Cheap to clone; the loop ends when every clone is dropped.
#[derive(Debug, Clone)]
pub struct NetClient {
    commands: mpsc::Sender<Command>,
    local: PeerId,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Send { .. } => "Send",
            Command::Respond { .. } => "Respond",
            Command::Block { .. } => "Block",
            Command::Dial { .. } => "Dial",
            Command::Connected { .. } => "Connected",
        })
    }
}

impl NetClient {
    /// This device's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// Sends a frame to a connected peer; its answer arrives as [`NetEvent::Response`].
    pub async fn send(&self, peer: PeerId, frame: Vec<u8>) -> Result<(), NetError> {
        self.command(Command::Send { peer, frame }).await
    }

    /// Answers a [`NetEvent::Request`] (dropping the reply answers it with a failure).
    pub async fn respond(&self, reply: Reply, frame: Vec<u8>) -> Result<(), NetError> {
        match reply.0 {
            // Fails only if the stream is gone: nothing to do then.
            ReplyTo::Stream(answer) => {
                let _ = answer.send(frame);
                Ok(())
            }
            ReplyTo::Legacy(channel) => self.command(Command::Respond { channel, frame }).await,
        }
    }

    /// Disconnects a peer and refuses it from now on (not on the roster, or revoked).
    pub async fn block(&self, peer: PeerId) -> Result<(), NetError> {
        self.command(Command::Block { peer }).await
    }

    /// Dials an address now (and keeps re-dialing it).
    pub async fn dial(&self, address: Multiaddr) -> Result<(), NetError> {
        self.command(Command::Dial { address }).await
    }

    /// The peers connected now.
    pub async fn connected(&self) -> Result<Vec<PeerId>, NetError> {
        let (answer, receive) = oneshot::channel();
        self.command(Command::Connected { answer }).await?;
        receive.await.map_err(|_| NetError::Stopped)
    }

    async fn command(&self, command: Command) -> Result<(), NetError> {
        self.commands.send(command).await.map_err(|_| NetError::Stopped)
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    streams: libp2p_stream::Behaviour,
    frames: request_response::Behaviour<FrameCodec>,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

/// A dial target: a static address or a discovered peer, with its backoff.
#[derive(Debug)]
struct Target {
    address: Multiaddr,
    /// The peer behind the address, once known.
    peer: Option<PeerId>,
    next_attempt: Instant,
    backoff: Duration,
    /// Static addresses are always re-dialed; discovered ones only by the lower peer id.
    is_static: bool,
}

/// Starts the event loop; returns its client, its events, and the loop's task.
pub fn spawn(
    config: NetConfig,
) -> Result<(NetClient, mpsc::Receiver<NetEvent>, tokio::task::JoinHandle<()>), NetError> {
    let local = config.keypair.public().to_peer_id();
    let psk = PreSharedKey::new(config.shop_key);
    let connection_timeout = Duration::from_millis(config.connection_timeout_ms);
    let codec = FrameCodec { frame_bytes_max: config.frame_bytes_max };
    let mdns_enabled = config.mdns;
    let request_timeout = Duration::from_millis(config.request_timeout_ms);
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_pending_incoming(Some(config.pending_incoming_max))
        .with_max_established_per_peer(Some(config.established_per_peer_max))
        .with_max_established(Some(config.established_max));
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_other_transport(|keypair| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
            let noise = noise::Config::new(keypair)?;
            Ok(tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .timeout(connection_timeout))
        })
        .map_err(|error| NetError::Build(error.to_string()))?
        .with_behaviour(|keypair| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
            let mdns = if mdns_enabled {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), keypair.public().to_peer_id())?)
            } else {
                None
            };
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                blocked: allow_block_list::Behaviour::default(),
                streams: libp2p_stream::Behaviour::new(),
                frames: request_response::Behaviour::with_codec(
                    codec,
                    [(PROTOCOL, ProtocolSupport::Full), (PROTOCOL_RAW, ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(request_timeout),
                ),
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|error| NetError::Build(error.to_string()))?
        // Tills are quiet for long stretches: a connection stays up until a side goes away.
        .with_swarm_config(|swarm| swarm.with_idle_connection_timeout(Duration::from_secs(24 * 60 * 60)))
        .build();
    for address in &config.listen {
        swarm
            .listen_on(address.clone())
            .map_err(|error| NetError::Listen { address: address.clone(), reason: error.to_string() })?;
    }
    let mut control = swarm.behaviour().streams.new_control();
    let mut incoming = futures::stream::SelectAll::new();
    for protocol in [PROTOCOL_STREAM_COMPACT, PROTOCOL_STREAM, PROTOCOL_STREAM_FIXED] {
        let packing = Packing::of_stream(&protocol);
        let streams = control.accept(protocol).map_err(|error| NetError::Build(error.to_string()))?;
        incoming.push(streams.map(move |(peer, stream)| (peer, stream, packing)).boxed());
    }
    let (commands, receive_commands) = mpsc::channel(config.events_max);
    let (events, receive_events) = mpsc::channel(config.events_max);
    let (internal, receive_internal) = mpsc::channel(config.events_max);
    let backoff = Duration::from_millis(config.redial_backoff_ms);
    let targets = config
        .peers
        .iter()
        .map(|address| Target {
            address: address.clone(),
            peer: peer_of(address),
            next_attempt: Instant::now(),
            backoff,
            is_static: true,
        })
        .collect();
    let event_loop = EventLoop {
        swarm,
        local,
        commands: receive_commands,
        events,
        control,
        incoming,
        internal,
        receive_internal,
        routes: HashMap::new(),
        inbound: HashMap::new(),
        codec,
        request_timeout,
        streams_per_peer_max: config.established_per_peer_max as usize,
        targets,
        connected: HashMap::new(),
        epochs: 0,
        dialing: HashMap::new(),
        backoff,
        backoff_max: Duration::from_millis(config.redial_backoff_max_ms),
    };
    let task = tokio::spawn(event_loop.run());
    Ok((NetClient { commands, local }, receive_events, task))
}

fn peer_of(address: &Multiaddr) -> Option<PeerId> {
    address.iter().find_map(|protocol| match protocol {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// How our requests reach a peer.
#[derive(Debug)]
enum Route {
    /// Over our stream to it, through the task that owns the stream.
    Stream(mpsc::Sender<Vec<u8>>),
    /// By request-response: the peer speaks neither stream protocol.
    Legacy,
}

/// A connected peer.
#[derive(Debug, Clone, Copy)]
struct Connection {
    since: Instant,
    /// Which of the peer's connections this is: what a stream task of an earlier one reports
    /// is dropped.
    epoch: u64,
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    local: PeerId,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    control: libp2p_stream::Control,
    /// The peers' incoming streams of either stream protocol, with the packing of each.
    incoming: futures::stream::SelectAll<BoxStream<'static, (PeerId, libp2p::Stream, Packing)>>,
    internal: mpsc::Sender<Internal>,
    receive_internal: mpsc::Receiver<Internal>,
    /// How our requests reach each connected peer.
    routes: HashMap<PeerId, Route>,
    /// A token per peer held by each task of the peer's incoming streams (their count is the
    /// token's count less one).
    inbound: HashMap<PeerId, Arc<()>>,
    codec: FrameCodec,
    request_timeout: Duration,
    /// Incoming streams of one peer at once (one per connection is all a peer needs).
    streams_per_peer_max: usize,
    /// The address book: what to dial and when.
    targets: Vec<Target>,
    /// Peers with at least one connection.
    connected: HashMap<PeerId, Connection>,
    /// Connections counted so far, for their epochs.
    epochs: u64,
    /// Addresses being dialed now, with the dial's connection and start, so a slow dial is not
    /// started twice.
    dialing: HashMap<Multiaddr, (ConnectionId, Instant)>,
    backoff: Duration,
    backoff_max: Duration,
}

impl EventLoop {
    async fn run(mut self) {
        loop {
            let next_dial = self.next_dial();
            // The swarm first: a peer's connection is known here before any stream of it is.
            tokio::select! {
                biased;
                event = self.swarm.select_next_some() => {
                    if !self.handle_swarm(event).await {
                        return;
                    }
                }
                Some(internal) = self.receive_internal.recv() => {
                    if !self.handle_internal(internal).await {
                        return;
                    }
                }
                Some((peer, stream, packing)) = self.incoming.next() => self.accept(peer, stream, packing),
                command = self.commands.recv() => match command {
                    Some(command) => {
                        if !self.handle_command(command).await {
                            return;
                        }
                    }
                    None => return,
                },
                () = tokio::time::sleep_until(next_dial) => self.redial(),
            }
        }
    }

    /// Forwards an event to the node; false once the node is gone.
    async fn emit(&mut self, event: NetEvent) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Carries out a command; false once the node is gone.
    async fn handle_command(&mut self, command: Command) -> bool {
        match command {
            Command::Send { peer, frame } => return self.send(peer, frame).await,
            Command::Respond { channel, frame } => {
                // Fails only if the requester went away: nothing to do then.
                let _ = self.swarm.behaviour_mut().frames.send_response(channel, frame);
            }
            Command::Block { peer } => {
                self.swarm.behaviour_mut().blocked.block_peer(peer);
                self.targets.retain(|target| target.peer != Some(peer));
            }
            Command::Dial { address } => {
                let peer = peer_of(&address);
                self.targets.push(Target {
                    address,
                    peer,
                    next_attempt: Instant::now(),
                    backoff: self.backoff,
                    is_static: true,
                });
                self.redial();
            }
            Command::Connected { answer } => {
                let _ = answer.send(self.connected.keys().copied().collect());
            }
        }
        true
    }

    /// Sends a request by the peer's route, opening our stream to it first if there is none;
    /// false once the node is gone.
    async fn send(&mut self, peer: PeerId, frame: Vec<u8>) -> bool {
        let Some(connection) = self.connected.get(&peer).copied() else {
            return self
                .emit(NetEvent::RequestFailed { peer, error: "not connected to the peer".into() })
                .await;
        };
        let frame = match self.routes.get(&peer) {
            Some(Route::Legacy) => {
                self.swarm.behaviour_mut().frames.send_request(&peer, frame);
                return true;
            }
            Some(Route::Stream(frames)) => match frames.try_send(frame) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return self
                        .emit(NetEvent::RequestFailed { peer, error: "too many requests waiting".into() })
                        .await;
                }
                // The stream's task has ended: a new stream.
                Err(mpsc::error::TrySendError::Closed(frame)) => frame,
            },
            None => frame,
        };
        let (frames, receive_frames) = mpsc::channel(streams::REQUESTS_WAITING_MAX);
        let _ = frames.try_send(frame);
        self.routes.insert(peer, Route::Stream(frames));
        let reports = Reports { to_loop: self.internal.clone(), peer, epoch: connection.epoch };
        tokio::spawn(streams::outbound(
            self.control.clone(),
            receive_frames,
            reports,
            self.codec,
            self.request_timeout,
        ));
        true
    }

    /// Takes what a stream task reports; false once the node is gone.
    async fn handle_internal(&mut self, internal: Internal) -> bool {
        match internal {
            Internal::Event { peer, epoch, event } => {
                if self.connected.get(&peer).is_some_and(|connection| connection.epoch == epoch) {
                    return self.emit(event).await;
                }
            }
            Internal::Unsupported { peer, frames } => {
                tracing::debug!(%peer, "peer without the stream protocol: requests by request-response");
                if self.connected.contains_key(&peer) {
                    self.routes.insert(peer, Route::Legacy);
                }
                for frame in frames {
                    if !self.send(peer, frame).await {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Serves a peer's incoming stream, unless the peer is not connected (anymore) or already
    /// has as many as it may.
    fn accept(&mut self, peer: PeerId, stream: libp2p::Stream, packing: Packing) {
        let Some(connection) = self.connected.get(&peer).copied() else {
            tracing::debug!(%peer, "a stream of a peer not connected: dropped");
            return;
        };
        let token = self.inbound.entry(peer).or_default();
        if Arc::strong_count(token) > self.streams_per_peer_max {
            tracing::debug!(%peer, "a stream over the peer's limit: dropped");
            return;
        }
        let token = Arc::clone(token);
        let reports = Reports { to_loop: self.internal.clone(), peer, epoch: connection.epoch };
        let codec = self.codec;
        tokio::spawn(async move {
            streams::inbound(stream, packing, reports, codec).await;
            drop(token);
        });
    }

    /// When the next target is due to be dialed (at the latest a tenth of a second from now).
    fn next_dial(&self) -> Instant {
        let now = Instant::now();
        self.targets
            .iter()
            .filter(|target| self.to_dial(target))
            .map(|target| target.next_attempt.max(now))
            .fold(now + Duration::from_millis(100), Instant::min)
    }

    /// Whether a target is ours to dial now or when its time comes: not connected, not being
    /// dialed, and static or a discovered peer with a higher id.
    fn to_dial(&self, target: &Target) -> bool {
        let connected = target.peer.is_some_and(|peer| self.connected.contains_key(&peer));
        let our_turn = target.is_static || target.peer.is_some_and(|peer| self.local < peer);
        !connected && our_turn && !self.dialing.contains_key(&target.address)
    }

    /// Dials every target that is due and not connected.
    fn redial(&mut self) {
        let now = Instant::now();
        self.dialing.retain(|_, (_, started)| now.duration_since(*started) < Duration::from_secs(30));
        let due: Vec<usize> = (0..self.targets.len())
            .filter(|&n| self.targets[n].next_attempt <= now && self.to_dial(&self.targets[n]))
            .collect();
        for n in due {
            if self.dialing.contains_key(&self.targets[n].address) {
                // Another target with the same address went first.
                continue;
            }
            let target = &mut self.targets[n];
            target.next_attempt = now + target.backoff;
            target.backoff = (target.backoff * 2).min(self.backoff_max);
            // A fresh local port for every dial: binding the listen port (libp2p's default, for NAT
            // traversal a shop LAN does not need) fails with "address in use" whenever that port
            // is also taken on another local address.
            let dial =
                DialOpts::unknown_peer_id().address(target.address.clone()).allocate_new_port().build();
            let connection = dial.connection_id();
            match self.swarm.dial(dial) {
                Ok(()) => {
                    self.dialing.insert(target.address.clone(), (connection, now));
                }
                Err(error) => tracing::debug!(address = %target.address, %error, "dial refused"),
            }
        }
    }

    async fn handle_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) -> bool {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                return self.emit(NetEvent::Listening(address)).await;
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, num_established, connection_id, ..
            } => {
                if endpoint.is_dialer() {
                    let address = endpoint.get_remote_address().clone();
                    self.dialing.retain(|_, (dial, _)| *dial != connection_id);
                    for target in &mut self.targets {
                        if target.address == address || target.peer == Some(peer_id) {
                            target.peer = Some(peer_id);
                            target.backoff = self.backoff;
                        }
                    }
                }
                if num_established.get() == 1 {
                    self.epochs += 1;
                    self.connected.insert(peer_id, Connection { since: Instant::now(), epoch: self.epochs });
                    tracing::info!(peer = %peer_id, "connected");
                    return self.emit(NetEvent::Connected(peer_id)).await;
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } => {
                // A link that had held is dialed again at once (a cable pulled and put back, a
                // peer restarted): the peers are back in step as soon as the network allows. A
                // link that closed sooner (a peer that refuses us) waits its backoff.
                let held = self
                    .connected
                    .remove(&peer_id)
                    .is_some_and(|connection| connection.since.elapsed() >= LINK_HELD);
                // Our stream's task ends with the connection; the peer may speak the stream
                // protocol when it comes back.
                self.routes.remove(&peer_id);
                self.inbound.retain(|_, token| Arc::strong_count(token) > 1);
                tracing::info!(peer = %peer_id, cause = ?cause, "disconnected");
                let now = Instant::now();
                for target in &mut self.targets {
                    if target.peer == Some(peer_id) {
                        target.next_attempt = if held { now } else { now + target.backoff };
                    }
                }
                if held {
                    self.redial();
                }
                return self.emit(NetEvent::Disconnected(peer_id)).await;
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, connection_id } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
                self.dialing.retain(|_, (dial, _)| *dial != connection_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, address) in found {
                    let known = self.targets.iter().any(|target| target.address == address);
                    if !known && peer != self.local {
                        tracing::info!(%peer, %address, "discovered on the LAN");
                        self.targets.push(Target {
                            address,
                            peer: Some(peer),
                            next_attempt: Instant::now(),
                            backoff: self.backoff,
                            is_static: false,
                        });
                    }
                }
                self.redial();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Frames(event)) => return self.handle_frames(event).await,
            _ => {}
        }
        true
    }

    async fn handle_frames(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) -> bool {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.emit(NetEvent::Request {
                        peer,
                        frame: request,
                        reply: Reply(ReplyTo::Legacy(channel)),
                    })
                    .await
                }
                request_response::Message::Response { response, .. } => {
                    self.emit(NetEvent::Response { peer, frame: response }).await
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                self.emit(NetEvent::RequestFailed { peer, error: error.to_string() }).await
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound request failed");
                true
            }
            request_response::Event::ResponseSent { .. } => true,
        }
    }
}
