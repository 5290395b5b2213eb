//! The mesh driver: the I/O shell of [`tillmesh_mesh::MeshCore`], which decides everything a
//! peer does (admission, roster, relays, flow control, anti-entropy, marking synced). The driver
//! turns libp2p events, local writes (the writer keeps them for the core, which takes them in
//! its next step), the operator's roster entries and its `sync_interval_ms` timer into the
//! core's events, runs each step as a writer job against the store, and carries
//! out the step's actions (send, answer, block, publish the peers) once the job is durable: what
//! a peer sends is on disk before it is answered, and sync never races a local edit.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tillmesh_core::{HqPublicKey, SignedRosterEntry};
use tillmesh_mesh::{Action, CoreConfig, Event, Introductions, MeshCore};
use tillmesh_net::{Multiaddr, NetClient, NetConfig, NetEvent, PeerId, Reply};
use tillmesh_store::Store;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sync_control::{SyncControl, SyncStats};
use crate::sync_docs::{INTRODUCTIONS_SETTING, NodeStorage, Predecoded, ROSTER_SETTING, stored_setting};
use crate::writer::LocalWritesFollower;
use crate::{Till, TillError};

/// How a till joins its shop's mesh.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Network settings (identity, shop key, listen addresses, static peers, mDNS).
    pub net: NetConfig,
    /// HQ's public key: it signs the roster and settlements.
    pub hq: HqPublicKey,
    /// This device's own signed roster entry, presented to every peer.
    pub own_entry: SignedRosterEntry,
    /// Roster entries known at start (from the credentials file).
    pub roster: Vec<SignedRosterEntry>,
    /// How often to reconcile with every peer (anti-entropy).
    pub sync_interval_ms: u64,
    /// Frames a peer may send before it is admitted (held until it is).
    pub held_frames_max: usize,
}

/// Why the mesh could not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The network failed to start.
    #[error(transparent)]
    Net(#[from] tillmesh_net::NetError),
    /// The store failed.
    #[error(transparent)]
    Till(#[from] TillError),
}

/// A running mesh membership.
#[derive(Debug)]
pub struct Mesh {
    /// This device's peer id.
    pub local_peer_id: PeerId,
    /// Traffic counters.
    pub stats: Arc<SyncStats>,
    /// The addresses the node listens on, once known.
    pub listening: watch::Receiver<Vec<Multiaddr>>,
    /// Tells the driver to stop.
    cancel: CancellationToken,
    /// The driver and the network's event loop.
    tasks: TaskTracker,
}

/// How long a stopping mesh may take to save its sessions and close its connections.
const STOP_WITHIN: Duration = Duration::from_secs(5);

impl Mesh {
    /// Starts the network and the sync driver for `till`.
    pub fn start(till: Till, config: MeshConfig) -> Result<Mesh, MeshError> {
        let (net, events, network) = tillmesh_net::spawn(config.net.clone())?;
        let local_peer_id = net.local_peer_id();
        let stored: Vec<SignedRosterEntry> =
            stored_setting(till.store(), ROSTER_SETTING).map_err(TillError::from)?;
        let introduced: Introductions =
            stored_setting(till.store(), INTRODUCTIONS_SETTING).map_err(TillError::from)?;
        let core = MeshCore::new(CoreConfig {
            local: local_peer_id,
            hq: config.hq,
            own_entry: config.own_entry,
            roster: stored.into_iter().chain(config.roster).collect(),
            held_frames_max: config.held_frames_max,
            introduced,
        });
        let (request, requests) = mpsc::channel(16);
        let (roster_sender, roster_entries) = mpsc::channel(16);
        let (peers_sender, peers) = watch::channel(Vec::new());
        let (listening_sender, listening) = watch::channel(Vec::new());
        let stats = Arc::new(SyncStats::default());
        till.attach_sync(SyncControl { request, roster: roster_sender, peers, stats: Arc::clone(&stats) });
        let core = Arc::new(Mutex::new(core));
        let (incoming_sender, incoming) = mpsc::channel(1);
        let prefetch = Prefetch {
            core: Arc::clone(&core),
            stats: Arc::clone(&stats),
            store: till.store().clone(),
            listening: listening_sender,
        };
        let driver = Driver {
            core,
            local_writes: till.writer().follow_local_writes(),
            till,
            net,
            incoming,
            requests,
            roster_entries,
            peers_watch: peers_sender,
            interval: Duration::from_millis(config.sync_interval_ms),
            stats: Arc::clone(&stats),
        };
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(prefetch.run(events, incoming_sender));
        tasks.spawn(driver.run(cancel.clone()));
        // The network's loop ends once the driver, the last holder of its client, is gone.
        tasks.spawn(async move {
            if let Err(error) = network.await
                && error.is_panic()
            {
                tracing::error!(%error, "the network's event loop panicked");
            }
        });
        tasks.close();
        Ok(Mesh { local_peer_id, stats, listening, cancel, tasks })
    }

    /// Stops the mesh before the store closes: the driver saves every live session's sync
    /// states (so the next session with each peer starts from them), then its connections
    /// close. Waits at most a few seconds; the store stays open.
    pub async fn stop(self) {
        self.cancel.cancel();
        if tokio::time::timeout(STOP_WITHIN, self.tasks.wait()).await.is_err() {
            tracing::warn!("the mesh did not stop within {STOP_WITHIN:?}; leaving it");
        }
    }
}

/// A network event for the core, with the loading of its documents under way.
struct Incoming {
    event: Event<PeerId, Reply>,
    predecoded: Option<JoinHandle<Predecoded>>,
}

/// Turns network events into the core's, in order, and starts loading the documents of an
/// admitted peer's frame as soon as it arrives: while the writer stores one frame, the next
/// (a peer sends two frames of documents before their answers) is loaded on the other cores.
/// One event waits for the driver at most, besides the one in hand.
struct Prefetch {
    core: Arc<Mutex<MeshCore<PeerId, Reply>>>,
    stats: Arc<SyncStats>,
    store: Store,
    listening: watch::Sender<Vec<Multiaddr>>,
}

impl Prefetch {
    async fn run(self, mut events: mpsc::Receiver<NetEvent>, incoming: mpsc::Sender<Incoming>) {
        while let Some(event) = events.recv().await {
            let Some(event) = self.core_event(event) else { continue };
            // Nobody else's frames get work done for them before the core has judged their
            // sender.
            let predecoded = match &event {
                Event::Request { peer, frame, .. } | Event::Response { peer, frame }
                    if self.core.lock().unwrap_or_else(PoisonError::into_inner).admits(peer) =>
                {
                    let (store, frame) = (self.store.clone(), frame.clone());
                    Some(tokio::spawn(async move { Predecoded::of(&store, &frame).await }))
                }
                _ => None,
            };
            if incoming.send(Incoming { event, predecoded }).await.is_err() {
                return;
            }
        }
    }

    /// The core's event for a network event (counting the bytes that came in); `None` for what
    /// concerns the driver alone (a new listening address).
    fn core_event(&self, event: NetEvent) -> Option<Event<PeerId, Reply>> {
        Some(match event {
            NetEvent::Listening(address) => {
                self.listening.send_modify(|addresses| addresses.push(address));
                return None;
            }
            NetEvent::Connected(peer) => Event::Connected(peer),
            NetEvent::Disconnected(peer) => Event::Disconnected(peer),
            NetEvent::Request { peer, frame, reply } => {
                self.stats.count_received(frame.len());
                Event::Request { peer, frame, reply }
            }
            NetEvent::Response { peer, frame } => {
                self.stats.count_received(frame.len());
                Event::Response { peer, frame }
            }
            NetEvent::RequestFailed { peer, error } => {
                tracing::debug!(%peer, %error, "request failed");
                Event::RequestFailed(peer)
            }
        })
    }
}

/// The core and what connects it to the world.
struct Driver {
    core: Arc<Mutex<MeshCore<PeerId, Reply>>>,
    stats: Arc<SyncStats>,
    till: Till,
    net: NetClient,
    incoming: mpsc::Receiver<Incoming>,
    /// Woken when the till wrote documents: the next step takes them from the writer.
    local_writes: LocalWritesFollower,
    requests: mpsc::Receiver<()>,
    roster_entries: mpsc::Receiver<SignedRosterEntry>,
    peers_watch: watch::Sender<Vec<String>>,
    interval: Duration,
}

impl Driver {
    async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut loading = None;
            let event = tokio::select! {
                () = cancel.cancelled() => {
                    self.step(Event::Stop, Predecoded::default()).await;
                    return;
                }
                incoming = self.incoming.recv() => match incoming {
                    Some(incoming) => {
                        loading = incoming.predecoded;
                        incoming.event
                    }
                    None => return,
                },
                // The step takes the writes from the writer ([`NodeStorage`]).
                () = self.local_writes.written() => Event::LocalWrites(Vec::new()),
                Some(()) = self.requests.recv() => Event::Reconcile,
                Some(entry) = self.roster_entries.recv() => Event::RosterEntry(entry),
                _ = tick.tick() => Event::Reconcile,
            };
            // A loading task that panicked leaves its documents to the writer, which loads them
            // itself.
            let predecoded = match loading {
                Some(loading) => loading.await.unwrap_or_default(),
                None => Predecoded::default(),
            };
            if !self.step(event, predecoded).await {
                return;
            }
        }
    }

    /// Runs one core step as a writer job (also while the store refuses writes: the core then
    /// keeps its peers in order and answers nothing), with the documents of the event's frame
    /// loaded ahead ([`Prefetch`]), then carries out its actions. `false` once the till is
    /// shutting down.
    async fn step(&mut self, event: Event<PeerId, Reply>, predecoded: Predecoded) -> bool {
        let core = Arc::clone(&self.core);
        let stats = Arc::clone(&self.stats);
        let now = self.till.clock().now();
        let outcome = self
            .till
            .writer()
            .submit_any(move |context| {
                let mut core = core.lock().unwrap_or_else(PoisonError::into_inner);
                match context {
                    Ok(context) => {
                        let step =
                            core.handle(now, event, &mut NodeStorage::new(context, &stats, predecoded));
                        (step.actions, step.failed.map(|error| error.to_string()))
                    }
                    Err(refused) => {
                        let step = core.handle_unavailable(now, event);
                        (step.actions, step.failed.map(|_| refused.to_string()))
                    }
                }
            })
            .await;
        match outcome {
            Ok((actions, failed)) => {
                if let Some(error) = failed {
                    tracing::debug!(%error, "sync step cut short by the store");
                }
                self.carry_out(actions).await;
                true
            }
            Err(TillError::ShuttingDown) => false,
            Err(error) => {
                tracing::error!(%error, "sync step not durable: its answers are dropped");
                self.core.lock().unwrap_or_else(PoisonError::into_inner).storage_failed();
                true
            }
        }
    }

    async fn carry_out(&mut self, actions: Vec<Action<PeerId, Reply>>) {
        for action in actions {
            match action {
                Action::Send { peer, frame } => {
                    self.stats.count_sent(frame.len());
                    self.stats.requests_sent.fetch_add(1, Ordering::Relaxed);
                    if let Err(error) = self.net.send(peer, frame).await {
                        tracing::error!(%error, "cannot send a frame");
                    }
                }
                Action::Respond { reply, frame } => {
                    self.stats.count_sent(frame.len());
                    if let Err(error) = self.net.respond(reply, frame).await {
                        tracing::error!(%error, "cannot answer a frame");
                    }
                }
                Action::Block(peer) => {
                    if let Err(error) = self.net.block(peer).await {
                        tracing::error!(%error, "cannot block a peer");
                    }
                }
                Action::PeersChanged(names) => {
                    self.peers_watch.send_replace(names);
                }
            }
        }
    }
}
