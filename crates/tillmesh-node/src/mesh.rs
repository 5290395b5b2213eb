//! The sync driver: joins a till to its shop's mesh. It admits only peers that present an
//! HQ-signed, unrevoked roster entry for their own peer id, runs one sync [`Session`] per admitted
//! peer over the network, pushes local writes at once, relays what peers send to the other
//! peers, and reconciles with everyone every `sync_interval_ms`.
//!
//! Every session step runs as a writer job, so what a peer sends is durable before it is
//! answered, and sync never races a local edit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tillmesh_core::{HqPublicKey, Roster, SignedRosterEntry};
use tillmesh_net::{Multiaddr, NetClient, NetConfig, NetEvent, PeerId, Reply};
use tillmesh_sync::{Bound, Frame, Session, decode, encode};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sync_control::{LocalChange, SyncControl, SyncStats};
use crate::sync_docs::StoreDocuments;
use crate::writer::WriteContext;
use crate::{Till, TillError};

/// The setting under which the known roster entries are kept.
const ROSTER_SETTING: &str = "roster";

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

/// What a peer presents to be admitted, and how roster news travels: its own entry first,
/// then the revocations it knows.
#[derive(Debug, Serialize, Deserialize)]
struct Credentials {
    entries: Vec<SignedRosterEntry>,
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
        let mut roster = Roster::new();
        let stored: Vec<SignedRosterEntry> = till
            .store()
            .setting(ROSTER_SETTING)
            .map_err(TillError::from)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        for entry in stored.into_iter().chain(config.roster.iter().cloned()).chain([config.own_entry.clone()])
        {
            if let Err(error) = roster.merge(entry, &config.hq) {
                tracing::warn!(%error, "ignoring a roster entry");
            }
        }
        let (request, requests) = mpsc::channel(16);
        let (roster_sender, roster_entries) = mpsc::channel(16);
        let (peers_sender, peers) = watch::channel(Vec::new());
        let (listening_sender, listening) = watch::channel(Vec::new());
        let stats = Arc::new(SyncStats::default());
        till.attach_sync(SyncControl { request, roster: roster_sender, peers, stats: Arc::clone(&stats) });
        let driver = Driver {
            stats: Arc::clone(&stats),
            changes: till.subscribe_changes(),
            till,
            net,
            events,
            requests,
            roster_entries,
            roster,
            hq: config.hq,
            own: config.own_entry,
            peers: BTreeMap::new(),
            peers_watch: peers_sender,
            listening: listening_sender,
            interval: Duration::from_millis(config.sync_interval_ms),
            held_max: config.held_frames_max,
        };
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
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

/// One connected peer.
#[derive(Debug, Default)]
struct Peer {
    /// The remote's name once admitted (`till-B`, `hq`).
    remote: Option<String>,
    session: Session,
    /// Whether a request of ours awaits its response.
    in_flight: bool,
    /// Requests that arrived before the peer was admitted.
    held: Vec<(Reply, Frame)>,
    /// Whether our next request should carry the roster (it changed).
    send_roster: bool,
}

struct Driver {
    stats: Arc<SyncStats>,
    till: Till,
    net: NetClient,
    events: mpsc::Receiver<NetEvent>,
    changes: broadcast::Receiver<LocalChange>,
    requests: mpsc::Receiver<()>,
    roster_entries: mpsc::Receiver<SignedRosterEntry>,
    roster: Roster,
    hq: HqPublicKey,
    own: SignedRosterEntry,
    peers: BTreeMap<PeerId, Peer>,
    peers_watch: watch::Sender<Vec<String>>,
    listening: watch::Sender<Vec<Multiaddr>>,
    interval: Duration,
    held_max: usize,
}

impl Driver {
    async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let result = tokio::select! {
                () = cancel.cancelled() => {
                    self.save_all_states().await;
                    return;
                }
                event = self.events.recv() => match event {
                    Some(event) => self.on_net(event).await,
                    None => return,
                },
                change = self.changes.recv() => match change {
                    Ok(change) => self.on_changes(change).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.reconcile_all().await,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(()) = self.requests.recv() => self.reconcile_all().await,
                Some(entry) = self.roster_entries.recv() => {
                    self.merge_roster(std::iter::once(entry)).await;
                    Ok(())
                }
                _ = tick.tick() => self.reconcile_all().await,
            };
            match result {
                Ok(()) => {}
                Err(TillError::ShuttingDown) => return,
                Err(error) => tracing::error!(%error, "sync step failed"),
            }
        }
    }

    /// Our own entry, then every revocation we know: each peer presents its own entry, so only
    /// revocations need passing on (to peers that were away when they were issued).
    fn credentials(&self) -> Vec<u8> {
        let mut entries = vec![self.own.clone()];
        entries.extend(
            self.roster
                .entries()
                .filter(|entry| entry.entry.revoked && entry.entry.peer_id != self.own.entry.peer_id)
                .cloned(),
        );
        serde_json::to_vec(&Credentials { entries }).unwrap_or_default()
    }

    fn publish_peers(&self) {
        let names = self.peers.values().filter_map(|peer| peer.remote.clone()).collect();
        self.peers_watch.send_replace(names);
    }

    async fn on_net(&mut self, event: NetEvent) -> Result<(), TillError> {
        match event {
            NetEvent::Listening(address) => {
                self.listening.send_modify(|addresses| addresses.push(address));
            }
            NetEvent::Connected(peer) => {
                self.peers.insert(peer, Peer::default());
                let hello = Frame { credentials: Some(self.credentials()), ..Frame::default() };
                self.send(peer, hello).await;
            }
            NetEvent::Disconnected(peer) => {
                if let Some(state) = self.peers.remove(&peer)
                    && let Some(remote) = state.remote
                {
                    self.save_states(remote, state.session).await?;
                }
                self.publish_peers();
            }
            NetEvent::Request { peer, frame, reply } => {
                self.stats.count_received(frame.len());
                self.on_request(peer, frame, reply).await?;
            }
            NetEvent::Response { peer, frame } => {
                self.stats.count_received(frame.len());
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.in_flight = false;
                }
                if let Some(frame) = self.decoded(peer, &frame) {
                    self.on_frame(peer, frame).await?;
                }
                self.pump_all().await;
            }
            NetEvent::RequestFailed { peer, error } => {
                tracing::debug!(%peer, %error, "request failed");
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.in_flight = false;
                }
            }
        }
        Ok(())
    }

    fn decoded(&self, peer: PeerId, bytes: &[u8]) -> Option<Frame> {
        match decode(bytes) {
            Ok(frame) => Some(frame),
            Err(error) => {
                tracing::warn!(%peer, %error, "malformed frame ignored");
                None
            }
        }
    }

    async fn on_request(&mut self, peer: PeerId, bytes: Vec<u8>, reply: Reply) -> Result<(), TillError> {
        let admitted = self.peers.get(&peer).is_some_and(|state| state.remote.is_some());
        let Some(frame) = self.decoded(peer, &bytes) else {
            self.respond(reply, Frame::default()).await;
            return Ok(());
        };
        if !admitted {
            match &frame.credentials {
                Some(credentials) => {
                    if !self.admit(peer, credentials).await {
                        return Ok(());
                    }
                }
                None => {
                    let held_max = self.held_max;
                    let state = self.peers.entry(peer).or_default();
                    if state.held.len() >= held_max {
                        tracing::warn!(%peer, "too many frames before admission: blocked");
                        self.block(peer).await;
                    } else {
                        state.held.push((reply, frame));
                    }
                    return Ok(());
                }
            }
        }
        self.on_frame(peer, frame).await?;
        let answer =
            self.peers.get_mut(&peer).and_then(|state| state.session.next_frame()).unwrap_or_default();
        self.respond(reply, answer).await;
        if !admitted {
            self.release_held(peer).await?;
        }
        self.pump_all().await;
        Ok(())
    }

    /// Checks a peer's credentials; admits it (and starts a reconciliation) or blocks it.
    async fn admit(&mut self, peer: PeerId, credentials: &[u8]) -> bool {
        let entries =
            serde_json::from_slice::<Credentials>(credentials).map(|c| c.entries).unwrap_or_default();
        let own = entries.first().cloned();
        self.merge_roster(entries.into_iter().skip(1)).await;
        let remote = match own {
            Some(own) if own.entry.peer_id == peer.to_string() => {
                if let Err(error) = self.roster.merge(own, &self.hq) {
                    tracing::warn!(%peer, %error, "peer refused");
                }
                self.roster.active(&peer.to_string()).map(|entry| remote_name(&entry.till_code.to_string()))
            }
            _ => None,
        };
        let Some(remote) = remote else {
            tracing::warn!(%peer, "peer is not on the roster: blocked");
            self.block(peer).await;
            return false;
        };
        if let Err(error) = self.till.store().register_remote(&remote) {
            tracing::error!(%error, "cannot register the remote");
        }
        tracing::info!(%peer, %remote, "peer admitted");
        let state = self.peers.entry(peer).or_default();
        state.remote = Some(remote);
        self.publish_peers();
        self.save_roster();
        true
    }

    async fn release_held(&mut self, peer: PeerId) -> Result<(), TillError> {
        let held = self.peers.get_mut(&peer).map(|state| std::mem::take(&mut state.held)).unwrap_or_default();
        for (reply, frame) in held {
            self.on_frame(peer, frame).await?;
            let answer =
                self.peers.get_mut(&peer).and_then(|state| state.session.next_frame()).unwrap_or_default();
            self.respond(reply, answer).await;
        }
        // One side of a pair starts the first reconciliation (the lower peer id): both would
        // only do the same work twice.
        if self.net.local_peer_id() < peer { self.reconcile(peer).await } else { Ok(()) }
    }

    /// Merges roster entries; revoked peers are disconnected and the news is passed on.
    async fn merge_roster(&mut self, entries: impl Iterator<Item = SignedRosterEntry>) {
        let mut changed = false;
        for entry in entries {
            match self.roster.merge(entry, &self.hq) {
                Ok(merged) => changed |= merged,
                Err(error) => tracing::warn!(%error, "roster entry ignored"),
            }
        }
        if !changed {
            return;
        }
        self.save_roster();
        let revoked: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(peer, state)| state.remote.is_some() && self.roster.active(&peer.to_string()).is_none())
            .map(|(peer, _)| *peer)
            .collect();
        for peer in revoked {
            tracing::warn!(%peer, "peer revoked: disconnected");
            self.block(peer).await;
        }
        self.forget_revoked().await;
        for state in self.peers.values_mut() {
            state.send_roster = true;
        }
        self.pump_all().await;
    }

    /// Drops the sync bookkeeping of every revoked till whose code no active device holds: it
    /// is no remote any more, and nothing is pending for it.
    async fn forget_revoked(&self) {
        let remotes: Vec<String> = self
            .roster
            .entries()
            .map(|signed| &signed.entry)
            .filter(|entry| entry.revoked && self.roster.holder_of(&entry.till_code).is_none())
            .map(|entry| remote_name(entry.till_code.as_str()))
            .collect();
        if remotes.is_empty() {
            return;
        }
        let forgotten = self
            .till
            .writer()
            .submit(move |context| {
                let mut forgotten = Vec::new();
                for remote in remotes {
                    if context.store.forget_remote(&remote)? {
                        forgotten.push(remote);
                    }
                }
                Ok(forgotten)
            })
            .await;
        match forgotten {
            Ok(forgotten) if !forgotten.is_empty() => {
                tracing::info!(?forgotten, "revoked tills forgotten as remotes")
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "cannot forget revoked tills"),
        }
    }

    fn save_roster(&self) {
        let entries: Vec<&SignedRosterEntry> = self.roster.entries().collect();
        let saved = serde_json::to_vec(&entries).map_err(|error| error.to_string()).and_then(|bytes| {
            self.till.store().set_setting(ROSTER_SETTING, &bytes).map_err(|e| e.to_string())
        });
        if let Err(error) = saved {
            tracing::error!(%error, "cannot save the roster");
        }
    }

    async fn block(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
        self.publish_peers();
        if let Err(error) = self.net.block(peer).await {
            tracing::error!(%error, "cannot block a peer");
        }
    }

    /// Applies a frame from an admitted peer: roster news, documents, ranges.
    async fn on_frame(&mut self, peer: PeerId, mut frame: Frame) -> Result<(), TillError> {
        if let Some(credentials) = frame.credentials.take() {
            let entries =
                serde_json::from_slice::<Credentials>(&credentials).map(|c| c.entries).unwrap_or_default();
            self.merge_roster(entries.into_iter()).await;
        }
        if frame.is_empty() || self.peers.get(&peer).is_none_or(|state| state.remote.is_none()) {
            return Ok(());
        }
        let now = self.till.clock().now();
        let stats = Arc::clone(&self.stats);
        let sessions = self
            .step(move |context, sessions| {
                let Some(at) = sessions.iter().position(|(id, _, _)| *id == peer) else {
                    return Ok(());
                };
                let (_, remote, session) = &mut sessions[at];
                let mut docs = StoreDocuments::new(&mut *context, remote);
                let received = session.receive(frame, &mut docs)?;
                let changed = docs.write()?;
                tracing::debug!(%peer, documents = changed.len(), "documents received");
                quarantine(context.store, &stats, &peer, received.refused, received.repeated.len(), now)?;
                if let Some(agreed) = received.agreed
                    && context.index.fingerprint(&Bound::min(), &Bound::Max) == agreed
                {
                    context.store.mark_all_synced(remote)?;
                    context.store.record_sync(remote, now)?;
                }
                // Relay what this peer brought to every other peer.
                for (other, remote, session) in sessions.iter_mut() {
                    if *other == peer {
                        continue;
                    }
                    let mut docs = StoreDocuments::new(&mut *context, remote);
                    for id in &changed {
                        session.push_change(*id, &mut docs)?;
                    }
                }
                Ok(())
            })
            .await?;
        self.restore(sessions);
        Ok(())
    }

    /// Pushes local writes (and any others queued meanwhile) to every admitted peer.
    async fn on_changes(&mut self, first: LocalChange) -> Result<(), TillError> {
        let mut changes = vec![first];
        while let Ok(change) = self.changes.try_recv() {
            changes.push(change);
        }
        let sessions = self
            .step(move |context, sessions| {
                for (_, remote, session) in sessions.iter_mut() {
                    let mut docs = StoreDocuments::new(&mut *context, remote);
                    for change in &changes {
                        if change.created {
                            session.push_new(change.id, &mut docs)?;
                        } else {
                            session.push_change(change.id, &mut docs)?;
                        }
                    }
                }
                Ok(())
            })
            .await?;
        self.restore(sessions);
        self.pump_all().await;
        Ok(())
    }

    async fn reconcile_all(&mut self) -> Result<(), TillError> {
        self.reconcile_with(None).await
    }

    async fn reconcile(&mut self, peer: PeerId) -> Result<(), TillError> {
        self.reconcile_with(Some(peer)).await
    }

    /// Starts a reconciliation with one peer, or with every admitted peer.
    async fn reconcile_with(&mut self, only: Option<PeerId>) -> Result<(), TillError> {
        let sessions = self
            .step(move |context, sessions| {
                for (peer, _, session) in sessions.iter_mut() {
                    if only.is_none_or(|only| only == *peer) {
                        session.start_reconcile(context.index);
                    }
                }
                Ok(())
            })
            .await?;
        self.restore(sessions);
        self.pump_all().await;
        Ok(())
    }

    /// Runs `work` on the writer thread with every admitted peer's session.
    async fn step(
        &mut self,
        work: impl FnOnce(&mut WriteContext<'_>, &mut Vec<(PeerId, String, Session)>) -> Result<(), TillError>
        + Send
        + 'static,
    ) -> Result<Vec<(PeerId, String, Session)>, TillError> {
        let mut sessions: Vec<(PeerId, String, Session)> = self
            .peers
            .iter_mut()
            .filter_map(|(peer, state)| {
                state.remote.clone().map(|remote| (*peer, remote, std::mem::take(&mut state.session)))
            })
            .collect();
        let result = self
            .till
            .writer()
            .submit(move |context| {
                let outcome = work(context, &mut sessions);
                Ok((sessions, outcome))
            })
            .await;
        match result {
            Ok((sessions, Ok(()))) => Ok(sessions),
            Ok((sessions, Err(error))) => {
                self.restore(sessions);
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    /// Puts the sessions a job used back with their peers.
    fn restore(&mut self, sessions: Vec<(PeerId, String, Session)>) {
        for (peer, _, session) in sessions {
            if let Some(state) = self.peers.get_mut(&peer) {
                state.session = session;
            }
        }
    }

    /// Sends the next frame to every admitted peer with nothing in flight.
    async fn pump_all(&mut self) {
        let ready: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, state)| {
                state.remote.is_some()
                    && !state.in_flight
                    && (state.session.has_outgoing() || state.send_roster)
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in ready {
            let credentials = self.credentials();
            let Some(state) = self.peers.get_mut(&peer) else { continue };
            let mut frame = state.session.next_frame().unwrap_or_default();
            if std::mem::take(&mut state.send_roster) {
                frame.credentials = Some(credentials);
            }
            self.send(peer, frame).await;
        }
    }

    async fn send(&mut self, peer: PeerId, frame: Frame) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.in_flight = true;
        }
        let bytes = encode(&frame);
        trace_frame("request", peer, &frame, bytes.len());
        self.stats.count_sent(bytes.len());
        self.stats.requests_sent.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.net.send(peer, bytes).await {
            tracing::error!(%error, "cannot send a frame");
        }
    }

    async fn respond(&mut self, reply: Reply, frame: Frame) {
        let bytes = encode(&frame);
        tracing::debug!(
            bytes = bytes.len(),
            ranges = frame.ranges.as_ref().map_or(0, Vec::len),
            docs = frame.docs.len(),
            "response"
        );
        self.stats.count_sent(bytes.len());
        if let Err(error) = self.net.respond(reply, bytes).await {
            tracing::error!(%error, "cannot answer a frame");
        }
    }

    /// Keeps every admitted peer's session states, as when each disconnects (the mesh stops).
    async fn save_all_states(&mut self) {
        for (_, peer) in std::mem::take(&mut self.peers) {
            if let Some(remote) = peer.remote
                && let Err(error) = self.save_states(remote.clone(), peer.session).await
            {
                tracing::warn!(%remote, %error, "cannot keep a session's sync states");
            }
        }
        self.publish_peers();
    }

    /// Keeps a finished session's Automerge sync states for the next session with that remote.
    async fn save_states(&mut self, remote: String, session: Session) -> Result<(), TillError> {
        self.till
            .writer()
            .submit(move |context| {
                for (id, state) in session.encoded_states() {
                    context.store.put_sync_state(&remote, id, &state)?;
                }
                Ok(())
            })
            .await
    }
}

/// Logs a frame at debug level: what it carries and its size.
fn trace_frame(kind: &str, peer: PeerId, frame: &Frame, bytes: usize) {
    tracing::debug!(
        kind,
        %peer,
        bytes,
        ranges = frame.ranges.as_ref().map_or(0, Vec::len),
        docs = frame.docs.len(),
        credentials = frame.credentials.as_ref().map_or(0, Vec::len),
        "frame"
    );
}

/// The remote name of a roster till code: `till-B`, or `hq` for HQ.
fn remote_name(code: &str) -> String {
    if code == tillmesh_core::roster::HQ_CODE { "hq".to_string() } else { format!("till-{code}") }
}

/// Reports document messages a peer sent that were refused, and keeps each aside (once: the same
/// bytes sent again are dropped unread, see [`tillmesh_sync::Documents::refused_before`]).
fn quarantine(
    store: &tillmesh_store::Store,
    stats: &SyncStats,
    peer: &PeerId,
    refused: Vec<tillmesh_sync::Refusal>,
    repeated: usize,
    now: tillmesh_core::Timestamp,
) -> Result<(), TillError> {
    let count = refused.len() + repeated;
    stats.documents_refused.fetch_add(count as u64, Ordering::Relaxed);
    if repeated > 0 {
        tracing::debug!(%peer, repeated, "documents refused before sent again: dropped unread");
    }
    for refusal in refused {
        let tillmesh_sync::Refusal { id, reason, bytes } = refusal;
        tracing::warn!(%peer, %id, %reason, bytes = bytes.len(), "document refused and kept aside");
        let entry = tillmesh_store::Quarantined { id, from: peer.to_string(), reason, at_ms: now.0, bytes };
        store.quarantine(&entry)?;
    }
    Ok(())
}
