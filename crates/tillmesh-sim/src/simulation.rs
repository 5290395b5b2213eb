//! The simulation loop: one thread, one seed, one clock. Every node runs the real mesh core
//! (`tillmesh-mesh`) against simulated storage; the loop turns what happens — connections
//! opening and closing, frames arriving, requests timing out, local writes, anti-entropy timers,
//! a revocation — into the core's events and carries out its actions (send, answer, block).
//! Each tick applies faults (crashes, restarts, partitions, the revocation), times out requests
//! that can no longer be answered, delivers the frames that are due, lets the tills and HQ write
//! and starts anti-entropy where due. A run is a faulty phase, then a healed phase that must
//! converge, then a quiet phase that must fall silent, then the invariants.

use automerge::ActorId;
use tillmesh_core::{HqPublicKey, HqSigningKey, RosterEntry, TillCode, Timestamp};
use tillmesh_mesh::{Action, Event, LocalWrite};
use tillmesh_sync::{DocId, Documents, decode};

use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::connections::Connections;
use crate::error::SimError;
use crate::invariants;
use crate::ledger::Ledger;
use crate::network::{Kind, Network, Packet, Partition};
use crate::node::{Node, Peer, Reply, Role, till_code_text};
use crate::report::{Digester, Phase, Progress, Report, Stats};
use crate::rng::{SimRng, Stream};
use crate::workload::{Desk, Workload, Write};

/// When HQ revokes a till.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Revocation {
    till: usize,
    at_tick: u64,
}

/// A simulated shop: tills and HQ, the network between them, the clock and the oracle.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    clock: SimClock,
    nodes: Vec<Node>,
    network: Network,
    connections: Connections,
    /// Crash, restart, partition and revocation decisions.
    faults: SimRng,
    /// Storage faults and crashes between a write and its answer.
    storage: SimRng,
    /// Actor ids of restarted nodes.
    setup: SimRng,
    workload: Workload,
    hq_key: HqSigningKey,
    /// HQ's key, for the views, when an HQ node takes part.
    hq_public: Option<HqPublicKey>,
    revocation: Option<Revocation>,
    ledger: Ledger,
    stats: Stats,
    phase: Phase,
}

impl Simulation {
    /// Sets up the shop of `config`: tills `A`, `B`, … then HQ, each with its clock skew, actor
    /// and HQ-signed roster entry (every node knows the whole roster), and which pairs can
    /// connect.
    pub fn new(config: &SimConfig) -> Result<Simulation, SimError> {
        config.validate()?;
        let seed = config.seed;
        let mut setup = SimRng::stream(seed, Stream::Setup);
        let hq_key = HqSigningKey::from_bytes(&setup.bytes32());
        let hq = hq_key.public_key();
        let count = config.tills + usize::from(config.hq);
        let mut identities = Vec::with_capacity(count);
        for index in 0..count {
            let (role, code) = if index < config.tills {
                (Role::Till, till_code_text(index))
            } else {
                (Role::Hq, "HQ".into())
            };
            let till_code = TillCode::parse(&code)
                .map_err(|error| SimError::Config { problem: format!("till code {code}: {error}") })?;
            let entry = hq_key.sign_roster(RosterEntry {
                peer_id: Peer(index).to_string(),
                till_code: till_code.clone(),
                revoked: false,
                version: 1,
                issued_at: Timestamp(0),
            });
            identities.push((role, till_code, entry));
        }
        let roster: Vec<_> = identities.iter().map(|(_, _, entry)| entry.clone()).collect();
        let mut nodes = Vec::with_capacity(count);
        for (index, (role, till_code, entry)) in identities.into_iter().enumerate() {
            let skew_ms = setup.symmetric(config.faults.clock_skew_ms_max);
            let actor = ActorId::from(setup.bytes16());
            nodes.push(Node::new(index, role, till_code, entry, roster.clone(), skew_ms, actor, &hq));
        }
        let mut faults = SimRng::stream(seed, Stream::Faults);
        let revocation = config.faults.revocation.then(|| Revocation {
            till: usize::try_from(faults.below(config.tills as u64)).unwrap_or(0),
            at_tick: faults.between(config.faulty_ticks / 5, config.faulty_ticks * 3 / 5),
        });
        let apart = revocation.map(|revocation| revocation.till);
        let connections = Connections::new(count, config.topology, apart, &mut setup);
        Ok(Simulation {
            clock: SimClock::new(config.tick_ms),
            network: Network::new(count, &config.network, SimRng::stream(seed, Stream::Network)),
            connections,
            faults,
            storage: SimRng::stream(seed, Stream::Storage),
            workload: Workload::new(&config.workload, SimRng::stream(seed, Stream::Workload), hq_key.clone()),
            hq_public: config.hq.then_some(hq),
            hq_key,
            revocation,
            nodes,
            setup,
            ledger: Ledger::default(),
            stats: Stats::default(),
            phase: Phase::Faulty,
            config: config.clone(),
        })
    }

    /// Runs all phases and checks the invariants. `observer` sees a [`Progress`] every
    /// `progress_every_ticks` and at each phase change.
    pub fn run(mut self, observer: &mut dyn FnMut(&Progress)) -> Result<Report, SimError> {
        let every = self.config.progress_every_ticks;
        let report_due = |tick: u64| every > 0 && tick > 0 && tick.is_multiple_of(every);
        observer(&self.progress());
        for index in 0..self.nodes.len() {
            self.connect(index)?;
        }
        for _ in 0..self.config.faulty_ticks {
            self.tick()?;
            if report_due(self.clock.tick()) {
                observer(&self.progress());
            }
        }
        self.stats.faulty_ticks = self.config.faulty_ticks;
        self.heal()?;
        observer(&self.progress());

        let healed_at = self.clock.tick();
        while !self.converged() {
            let ticks = self.clock.tick() - healed_at;
            if ticks >= self.config.heal_ticks_max {
                return Err(SimError::NotConverged {
                    seed: self.config.seed,
                    ticks,
                    detail: self.divergence(),
                });
            }
            self.tick()?;
            if report_due(self.clock.tick()) {
                observer(&self.progress());
            }
        }
        self.stats.ticks_to_converge = self.clock.tick() - healed_at;

        self.phase = Phase::Quiescing;
        observer(&self.progress());
        let converged_at = self.clock.tick();
        while self.network.in_flight() > 0 || self.nodes.iter().any(Node::has_outgoing) {
            let ticks = self.clock.tick() - converged_at;
            if ticks >= self.config.quiesce_ticks_max {
                return Err(SimError::Chatter {
                    seed: self.config.seed,
                    ticks,
                    in_flight: self.network.in_flight(),
                });
            }
            self.tick()?;
        }
        self.stats.ticks_to_quiesce = self.clock.tick() - converged_at;

        invariants::check(self.config.seed, &mut self.nodes, &self.ledger, self.hq_public.as_ref())?;
        self.phase = Phase::Done;
        observer(&self.progress());
        Ok(self.report())
    }

    /// A snapshot for progress output.
    pub fn progress(&self) -> Progress {
        let documents = self.nodes.iter().map(|node| node.docs.index().len());
        Progress {
            seed: self.config.seed,
            phase: self.phase,
            tick: self.clock.tick(),
            down: self.nodes.iter().filter(|node| !node.up()).count(),
            partitions: self.network.partitions(),
            in_flight: self.network.in_flight(),
            documents_max: documents.clone().max().unwrap_or(0),
            documents_min: documents.min().unwrap_or(0),
            stats: self.stats,
        }
    }

    fn tick(&mut self) -> Result<(), SimError> {
        let now = self.clock.tick();
        if self.phase == Phase::Faulty {
            self.apply_faults(now)?;
        }
        for (requester, responder) in self.connections.timed_out(now) {
            self.stats.requests_failed += 1;
            self.step(requester, Event::RequestFailed(Peer(responder)))?;
        }
        self.deliver(now)?;
        if self.phase == Phase::Faulty {
            self.write()?;
        }
        if matches!(self.phase, Phase::Faulty | Phase::Healing) {
            self.anti_entropy(now)?;
        }
        self.clock.advance();
        Ok(())
    }

    /// Restarts nodes whose downtime is over, crashes others, revokes the till when its time
    /// comes, starts and heals partitions.
    fn apply_faults(&mut self, now: u64) -> Result<(), SimError> {
        for index in 0..self.nodes.len() {
            if !self.nodes[index].up() && self.nodes[index].restart_tick <= now {
                self.restart(index)?;
            }
        }
        let faults = self.config.faults.clone();
        for index in 0..self.nodes.len() {
            if self.nodes[index].up() && self.faults.chance_ppm(faults.crash_ppm) {
                let down_ticks = self.faults.between(faults.down_ticks_min, faults.down_ticks_max);
                self.crash(index, now + down_ticks)?;
            }
        }
        if let Some(revocation) = self.revocation
            && revocation.at_tick == now
        {
            self.revoke(revocation.till, now)?;
        }
        self.network.expire_partitions(now);
        if self.network.partitions() < faults.partitions_max && self.faults.chance_ppm(faults.partition_ppm) {
            let count = self.nodes.len();
            let mut members: Vec<usize> = (0..count).collect();
            self.faults.shuffle(&mut members);
            let cut =
                usize::try_from(self.faults.between(1, (count as u64).saturating_sub(1).max(1))).unwrap_or(1);
            let ticks = self.faults.between(faults.partition_ticks_min, faults.partition_ticks_max);
            self.network.add_partition(Partition {
                side: members.into_iter().take(cut).collect(),
                until_tick: now + ticks,
            });
            self.stats.partitions += 1;
        }
        Ok(())
    }

    /// HQ revokes a till: the till is unplugged (it comes back later and keeps taking orders),
    /// and every other node gets the signed revocation — a running one through its core (as
    /// from the operator), a stopped one in the roster it keeps on disk.
    fn revoke(&mut self, till: usize, now: u64) -> Result<(), SimError> {
        let mut entry = self.nodes[till].own_entry.entry.clone();
        entry.revoked = true;
        entry.version += 1;
        entry.issued_at = self.nodes[till].now(&self.clock);
        let revoked = self.hq_key.sign_roster(entry);
        if self.nodes[till].up() {
            let down_ticks =
                self.faults.between(self.config.faults.down_ticks_min, self.config.faults.down_ticks_max);
            self.crash(till, now + down_ticks)?;
        }
        self.ledger.revoked = Some(till);
        for index in 0..self.nodes.len() {
            if index == till {
                continue;
            }
            if self.nodes[index].up() {
                self.step(index, Event::RosterEntry(revoked.clone()))?;
            } else {
                self.nodes[index].roster.push(revoked.clone());
            }
        }
        Ok(())
    }

    /// Kills a node's process: its connections close (its peers see them go), frames in flight
    /// on them are lost.
    fn crash(&mut self, index: usize, restart_tick: u64) -> Result<(), SimError> {
        self.nodes[index].crash(restart_tick);
        self.stats.crashes += 1;
        for peer in self.connections.peers_of(index) {
            self.connections.close(index, peer);
            self.step(peer, Event::Disconnected(Peer(index)))?;
        }
        Ok(())
    }

    /// Brings a crashed node back with a fresh actor and a new core, and connects it to every
    /// running node it can reach.
    fn restart(&mut self, index: usize) -> Result<(), SimError> {
        let actor = ActorId::from(self.setup.bytes16());
        if self.ledger.revoked == Some(index) {
            self.ledger.revoked_actors.insert(actor.clone());
        }
        let hq = self.hq_key.public_key();
        self.nodes[index].restart(index, actor, &hq);
        self.connections.forget_blocks(index);
        self.connect(index)
    }

    /// Opens a connection between `index` and every running node it may reach and is not
    /// connected to; both ends see it open (the lower index first).
    fn connect(&mut self, index: usize) -> Result<(), SimError> {
        for peer in 0..self.nodes.len() {
            if peer == index
                || !self.nodes[peer].up()
                || !self.nodes[index].up()
                || !self.connections.may_connect(index, peer)
                || !self.connections.open(index, peer)
            {
                continue;
            }
            let (first, second) = (index.min(peer), index.max(peer));
            self.step(first, Event::Connected(Peer(second)))?;
            self.step(second, Event::Connected(Peer(first)))?;
        }
        Ok(())
    }

    /// The start of the healed phase: every node up, no partitions, no faults from now on.
    fn heal(&mut self) -> Result<(), SimError> {
        for index in 0..self.nodes.len() {
            if !self.nodes[index].up() {
                self.restart(index)?;
            }
        }
        self.network.heal();
        self.phase = Phase::Healing;
        Ok(())
    }

    /// Delivers the frames due now, on connections still open.
    fn deliver(&mut self, now: u64) -> Result<(), SimError> {
        for packet in self.network.due(now, &mut self.stats) {
            let Packet { from, to, kind, connection, bytes } = packet;
            if self.connections.connection(from, to) != Some(connection) {
                self.stats.dropped_crash += 1;
                continue;
            }
            if let Err(source) = decode(&bytes) {
                return Err(SimError::Wire {
                    seed: self.config.seed,
                    from: self.nodes[from].device_id.clone(),
                    to: self.nodes[to].device_id.clone(),
                    source,
                });
            }
            self.stats.delivered += 1;
            match kind {
                Kind::Request(number) => {
                    let reply = Reply { requester: from, number, connection };
                    self.step(to, Event::Request { peer: Peer(from), frame: bytes, reply })?;
                }
                // An answer nobody awaits any more (timed out, or a duplicate) is dropped, as
                // libp2p does.
                Kind::Response(number) if self.connections.answered(to, number) => {
                    self.step(to, Event::Response { peer: Peer(from), frame: bytes })?;
                }
                Kind::Response(_) => {}
            }
        }
        Ok(())
    }

    /// Lets each running till (and HQ) write, then tells its core.
    fn write(&mut self) -> Result<(), SimError> {
        for index in 0..self.nodes.len() {
            if !self.nodes[index].up() {
                continue;
            }
            let role = self.nodes[index].role;
            let acts = match role {
                Role::Till => self.workload.till_writes_now(),
                Role::Hq => self.workload.hq_settles_now(),
            };
            if !acts {
                continue;
            }
            let mut desk = Desk {
                seed: self.config.seed,
                index,
                node: &mut self.nodes[index],
                clock: &self.clock,
                ledger: &mut self.ledger,
                stats: &mut self.stats,
            };
            let writes = match role {
                Role::Till if self.workload.till_forges_now() => self.workload.forge_settlement(&mut desk)?,
                Role::Till => self.workload.till_write(&mut desk)?,
                Role::Hq => self.workload.hq_settle(&mut desk)?,
            };
            if writes.is_empty() {
                continue;
            }
            let writes: Vec<LocalWrite> = writes
                .into_iter()
                .map(|write| match write {
                    Write::New(id) => LocalWrite { id, created: true },
                    Write::Changed(id) => LocalWrite { id, created: false },
                })
                .collect();
            if self.ledger.revoked == Some(index) {
                self.ledger.revoked_writes.extend(writes.iter().map(|write| write.id));
            }
            self.step(index, Event::LocalWrites(writes))?;
        }
        Ok(())
    }

    /// Starts the anti-entropy rounds due now: each node every `anti_entropy_every_ticks`, the
    /// nodes spread over the interval.
    fn anti_entropy(&mut self, now: u64) -> Result<(), SimError> {
        let every = self.config.anti_entropy_every_ticks;
        if every == 0 {
            return Ok(());
        }
        for index in 0..self.nodes.len() {
            let offset = (index as u64 * 7_919) % every;
            if self.nodes[index].up() && (now + offset).is_multiple_of(every) {
                self.stats.reconciles += 1;
                self.step(index, Event::Reconcile)?;
            }
        }
        Ok(())
    }

    /// Runs one event through a node's core (with a storage fault drawn for it in the faulty
    /// phase), checks what it did, and carries out its actions — unless the node crashes
    /// between its write and its answers.
    fn step(&mut self, index: usize, event: Event<Peer, Reply>) -> Result<(), SimError> {
        let faulty = self.phase == Phase::Faulty;
        let failing = faulty && self.storage.chance_ppm(self.config.faults.storage_fault_ppm);
        let now = self.nodes[index].now(&self.clock);
        let Some(stepped) = self.nodes[index].step(now, event, failing) else { return Ok(()) };
        let effects = stepped.effects;
        self.stats.synced_docs += effects.kept;
        self.stats.storage_faults += u64::from(effects.faulted);
        if let Some((from, refusal)) = effects.refused.into_iter().next() {
            return Err(SimError::Refused {
                seed: self.config.seed,
                node: self.nodes[index].device_id.clone(),
                from,
                doc_id: refusal.id,
                reason: refusal.reason,
            });
        }
        for remote in &effects.marked {
            self.check_synced(index, remote)?;
        }
        if effects.kept > 0 && faulty && self.storage.chance_ppm(self.config.faults.crash_before_ack_ppm) {
            self.stats.crashes_before_ack += 1;
            let down_ticks =
                self.storage.between(self.config.faults.down_ticks_min, self.config.faults.down_ticks_max);
            return self.crash(index, self.clock.tick() + down_ticks);
        }
        for action in stepped.actions {
            self.carry_out(index, action)?;
        }
        Ok(())
    }

    /// Does what a core asked: frames onto their connection, blocks.
    fn carry_out(&mut self, index: usize, action: Action<Peer, Reply>) -> Result<(), SimError> {
        let now = self.clock.tick();
        match action {
            Action::Send { peer: Peer(to), frame } => {
                // A frame for a peer whose connection just closed goes nowhere (the core learns
                // of the close as an event of its own).
                let Some(connection) = self.connections.connection(index, to) else { return Ok(()) };
                let deadline = now + self.network.round_trip_max();
                let number = self.connections.request(index, to, connection, deadline);
                let packet = Packet {
                    from: index,
                    to,
                    kind: Kind::Request(number),
                    connection,
                    bytes: on_the_wire(frame),
                };
                self.network.send(now, packet, &mut self.stats);
            }
            Action::Respond { reply, frame } => {
                if self.connections.connection(index, reply.requester) == Some(reply.connection) {
                    let packet = Packet {
                        from: index,
                        to: reply.requester,
                        kind: Kind::Response(reply.number),
                        connection: reply.connection,
                        bytes: on_the_wire(frame),
                    };
                    self.network.send(now, packet, &mut self.stats);
                }
            }
            Action::Block(Peer(peer)) => {
                self.stats.blocks += 1;
                self.connections.block(index, peer);
                if self.connections.close(index, peer) {
                    self.step(peer, Event::Disconnected(Peer(index)))?;
                }
            }
            Action::PeersChanged(_) => {}
        }
        Ok(())
    }

    /// A node marked every document synced with `remote`: the peer must durably hold every
    /// document the node holds, at its heads or later.
    fn check_synced(&self, index: usize, remote: &str) -> Result<(), SimError> {
        let node = &self.nodes[index];
        let Some(peer) = self.nodes.iter().find(|peer| peer.device_id == remote) else {
            return Err(SimError::Internal {
                seed: self.config.seed,
                problem: format!("{} marked an unknown remote {remote} synced", node.device_id),
            });
        };
        let theirs = peer.docs.index();
        for (id, hash) in node.docs.index().iter() {
            // The same heads: held (the usual case, as the two sets just agreed).
            if theirs.get(id) == Some(hash) {
                continue;
            }
            let Some(mine) = node.docs.get(id) else { continue };
            let detail = match peer.docs.get(id) {
                None => "nothing".to_string(),
                Some(theirs) => {
                    let mut theirs = theirs.clone();
                    let missing = mine
                        .clone()
                        .get_heads()
                        .iter()
                        .filter(|head| theirs.get_change_by_hash(head).is_none())
                        .count();
                    if missing == 0 {
                        continue;
                    }
                    format!("a version without {missing} of its heads")
                }
            };
            return Err(SimError::SyncedNotHeld {
                seed: self.config.seed,
                node: node.device_id.clone(),
                remote: remote.to_string(),
                doc_id: *id,
                detail,
            });
        }
        Ok(())
    }

    /// The nodes that must converge: every one but a revoked till.
    fn members(&self) -> impl Iterator<Item = &Node> {
        let revoked = self.ledger.revoked;
        self.nodes.iter().enumerate().filter(move |(index, _)| Some(*index) != revoked).map(|(_, node)| node)
    }

    /// Whether every member holds the same index (same documents at the same heads).
    fn converged(&self) -> bool {
        let mut members = self.members();
        let Some(first) = members.next() else { return true };
        members.all(|node| node.docs.index() == first.docs.index())
    }

    /// Which members differ from the first, and in how many documents.
    fn divergence(&self) -> String {
        let mut members = self.members();
        let Some(first) = members.next() else { return String::new() };
        let reference = first.docs.index();
        let mut parts = Vec::new();
        for node in members {
            let index = node.docs.index();
            let differing = reference.iter().filter(|(id, hash)| index.get(id) != Some(*hash)).count()
                + index.iter().filter(|(id, _)| reference.get(id).is_none()).count();
            if differing > 0 {
                parts.push(format!(
                    "{} differs from {} in {differing} of {}/{} documents",
                    node.device_id,
                    first.device_id,
                    index.len(),
                    reference.len()
                ));
            }
        }
        parts.join("; ")
    }

    fn report(&mut self) -> Report {
        let mut digester = Digester::new();
        for node in &mut self.nodes {
            digester.update(node.device_id.as_bytes());
            for (id, heads) in invariants::all_heads(node) {
                digester.update(id.as_bytes());
                for head in heads {
                    digester.update(&head.0);
                }
            }
        }
        // The saved bytes too (the same on every member, whose heads are equal by now).
        let revoked = self.ledger.revoked;
        if let Some((_, node)) = self.nodes.iter_mut().enumerate().find(|(index, _)| Some(*index) != revoked)
        {
            let ids: Vec<DocId> = node.docs.iter().map(|(id, _)| *id).collect();
            for id in ids {
                digester.update(id.as_bytes());
                if let Ok(Some(bytes)) = node.docs.saved(id) {
                    digester.update(&bytes);
                }
            }
        }
        for value in self.stats.values() {
            digester.update_u64(value);
        }
        let documents = self.members().next().map_or(0, |node| node.docs.index().len());
        Report {
            seed: self.config.seed,
            tills: self.config.tills,
            hq: self.config.hq,
            documents,
            stats: self.stats,
            digest: digester.finish(),
        }
    }
}

/// A frame as the network carries it between nodes of this release (`/tm/5`): compact, whole
/// documents without their ids, which the receiver names from their headers.
fn on_the_wire(frame: Vec<u8>) -> Vec<u8> {
    tillmesh_sync::compact(&frame).unwrap_or(frame)
}
