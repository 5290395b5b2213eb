//! The simulation loop: one thread, one seed, one clock. Each tick applies faults (crashes,
//! restarts, partitions), delivers the frames that are due, lets the tills and HQ write, and
//! starts anti-entropy where due; every node's outboxes are drained into the network right after
//! it acts. A run is a faulty phase, then a healed phase that must converge, then a quiet phase
//! that must fall silent, then the invariants.

use automerge::ActorId;
use tillmesh_core::{HqPublicKey, HqSigningKey, TillCode};
use tillmesh_sync::{Documents, decode, encode};

use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::error::SimError;
use crate::invariants;
use crate::ledger::Ledger;
use crate::network::{Network, Packet, Partition};
use crate::node::{Node, Role, till_code_text};
use crate::report::{Digester, Phase, Progress, Report, Stats};
use crate::rng::{SimRng, Stream};
use crate::workload::{Desk, Workload, Write};

/// A simulated shop: tills and HQ, the network between them, the clock and the oracle.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    clock: SimClock,
    nodes: Vec<Node>,
    network: Network,
    /// Crash, restart and partition decisions.
    faults: SimRng,
    /// Actor ids of restarted nodes.
    setup: SimRng,
    workload: Workload,
    hq_public: Option<HqPublicKey>,
    ledger: Ledger,
    stats: Stats,
    phase: Phase,
}

impl Simulation {
    /// Sets up the shop of `config`: tills `A`, `B`, … then HQ, each with its clock skew and actor.
    pub fn new(config: &SimConfig) -> Result<Simulation, SimError> {
        config.validate()?;
        let seed = config.seed;
        let mut setup = SimRng::stream(seed, Stream::Setup);
        let hq_key = HqSigningKey::from_bytes(&setup.bytes32());
        let count = config.tills + usize::from(config.hq);
        let mut nodes = Vec::with_capacity(count);
        for index in 0..count {
            let (role, code) = if index < config.tills {
                (Role::Till, till_code_text(index))
            } else {
                (Role::Hq, "HQ".into())
            };
            let till_code = TillCode::parse(&code)
                .map_err(|error| SimError::Config { problem: format!("till code {code}: {error}") })?;
            let skew_ms = setup.symmetric(config.faults.clock_skew_ms_max);
            let actor = ActorId::from(setup.bytes16());
            nodes.push(Node::new(index, count, role, till_code, skew_ms, actor));
        }
        Ok(Simulation {
            clock: SimClock::new(config.tick_ms),
            network: Network::new(count, &config.network, SimRng::stream(seed, Stream::Network)),
            faults: SimRng::stream(seed, Stream::Faults),
            workload: Workload::new(&config.workload, SimRng::stream(seed, Stream::Workload), hq_key.clone()),
            hq_public: config.hq.then(|| hq_key.public_key()),
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
        for _ in 0..self.config.faulty_ticks {
            self.tick()?;
            if report_due(self.clock.tick()) {
                observer(&self.progress());
            }
        }
        self.stats.faulty_ticks = self.config.faulty_ticks;
        self.heal();
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
            down: self.nodes.iter().filter(|node| !node.up).count(),
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
            self.apply_faults(now);
        }
        self.deliver(now)?;
        if self.phase == Phase::Faulty {
            self.write(now)?;
        }
        if matches!(self.phase, Phase::Faulty | Phase::Healing) {
            self.anti_entropy(now);
        }
        self.clock.advance();
        Ok(())
    }

    /// Restarts nodes whose downtime is over, crashes others, starts and heals partitions.
    fn apply_faults(&mut self, now: u64) {
        for index in 0..self.nodes.len() {
            if !self.nodes[index].up && self.nodes[index].restart_tick <= now {
                self.restart(index, now);
            }
        }
        let faults = self.config.faults.clone();
        for index in 0..self.nodes.len() {
            if self.nodes[index].up && self.faults.chance_ppm(faults.crash_ppm) {
                let down_ticks = self.faults.between(faults.down_ticks_min, faults.down_ticks_max);
                self.nodes[index].crash(now + down_ticks);
                self.stats.crashes += 1;
                // The peers see the connection close: their sessions end cleanly.
                for peer in 0..self.nodes.len() {
                    if peer != index {
                        self.nodes[peer].reset_session(index);
                    }
                }
            }
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
    }

    /// Brings a crashed node back: fresh actor, new sessions on both ends of each of its links
    /// (the peers' sessions end cleanly and save their sync states; the crashed node's states
    /// are those its earlier clean session ends saved), and a reconciliation with every peer
    /// that is up (as on reconnecting).
    fn restart(&mut self, index: usize, now: u64) {
        let count = self.nodes.len();
        let actor = ActorId::from(self.setup.bytes16());
        self.nodes[index].restart(index, count, actor);
        for peer in 0..count {
            if peer != index {
                self.nodes[peer].reset_session(index);
            }
        }
        for peer in 0..count {
            if peer != index && self.nodes[peer].up {
                self.start_reconcile(index, peer);
            }
        }
        self.flush(index, now);
    }

    /// The start of the healed phase: every node up, no partitions, no faults from now on.
    fn heal(&mut self) {
        let now = self.clock.tick();
        for index in 0..self.nodes.len() {
            if !self.nodes[index].up {
                self.restart(index, now);
            }
        }
        self.network.heal();
        self.phase = Phase::Healing;
    }

    /// Delivers the frames due now, each to the receiver's session for the sender.
    fn deliver(&mut self, now: u64) -> Result<(), SimError> {
        for packet in self.network.due(now, &mut self.stats) {
            let (from, to) = (packet.from, packet.to);
            let sender_alive = self.nodes[from].up && self.nodes[from].incarnation == packet.from_incarnation;
            let receiver_alive = self.nodes[to].up && self.nodes[to].incarnation == packet.to_incarnation;
            if !sender_alive || !receiver_alive {
                self.stats.dropped_crash += 1;
                continue;
            }
            let frame = decode(&packet.bytes).map_err(|source| SimError::Wire {
                seed: self.config.seed,
                from: self.nodes[from].device_id.clone(),
                to: self.nodes[to].device_id.clone(),
                source,
            })?;
            let node = &mut self.nodes[to];
            let device_id = node.device_id.clone();
            let Some((session, mut docs)) = node.session_with(from) else {
                return Err(SimError::Internal {
                    seed: self.config.seed,
                    problem: format!("{device_id} has no session for node {from}"),
                });
            };
            let received = match session.receive(frame, &mut docs) {
                Ok(received) => received,
                Err(never) => match never {},
            };
            self.stats.delivered += 1;
            self.stats.synced_docs += received.changed.len() as u64;
            if let Some(refusal) = received.refused.into_iter().next() {
                return Err(SimError::Refused {
                    seed: self.config.seed,
                    node: self.nodes[to].device_id.clone(),
                    from: self.nodes[from].device_id.clone(),
                    doc_id: refusal.id,
                    reason: refusal.reason,
                });
            }
            self.flush(to, now);
        }
        Ok(())
    }

    /// Lets each running till (and HQ) write, then pushes the writes to its peers.
    fn write(&mut self, now: u64) -> Result<(), SimError> {
        for index in 0..self.nodes.len() {
            if !self.nodes[index].up {
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
                Role::Till => self.workload.till_write(&mut desk)?,
                Role::Hq => self.workload.hq_settle(&mut desk)?,
            };
            let node = &mut self.nodes[index];
            let peers: Vec<usize> = node.sessions.keys().copied().collect();
            for peer in peers {
                let Some((session, mut docs)) = node.session_with(peer) else { continue };
                for write in &writes {
                    let pushed = match *write {
                        Write::New(id) => session.push_new(id, &mut docs),
                        Write::Changed(id) => session.push_change(id, &mut docs),
                    };
                    if let Err(never) = pushed {
                        match never {}
                    }
                }
            }
            self.flush(index, now);
        }
        Ok(())
    }

    /// Starts the reconciliations due now: each pair every `anti_entropy_every_ticks`, pairs
    /// spread over the interval, the initiator alternating.
    fn anti_entropy(&mut self, now: u64) {
        let every = self.config.anti_entropy_every_ticks;
        let count = self.nodes.len();
        for low in 0..count {
            for high in low + 1..count {
                let offset = ((low as u64) * 7_919 + (high as u64) * 104_729) % every;
                let shifted = now + offset;
                if !shifted.is_multiple_of(every) {
                    continue;
                }
                let (from, to) = if (shifted / every).is_multiple_of(2) { (low, high) } else { (high, low) };
                if self.nodes[from].up && self.nodes[to].up {
                    self.start_reconcile(from, to);
                    self.flush(from, now);
                }
            }
        }
    }

    fn start_reconcile(&mut self, from: usize, to: usize) {
        if let Some((session, docs)) = self.nodes[from].session_with(to) {
            session.start_reconcile(docs.index());
            self.stats.reconciles += 1;
        }
    }

    /// Sends everything a node's sessions have queued, as encoded frames.
    fn flush(&mut self, index: usize, now: u64) {
        for (peer, frame) in self.nodes[index].drain_outboxes() {
            let packet = Packet {
                from: index,
                to: peer,
                from_incarnation: self.nodes[index].incarnation,
                to_incarnation: self.nodes[peer].incarnation,
                bytes: encode(&frame),
            };
            self.network.send(now, packet, &mut self.stats);
        }
    }

    /// Whether every node holds the same index (same documents at the same heads).
    fn converged(&self) -> bool {
        let Some((first, rest)) = self.nodes.split_first() else { return true };
        rest.iter().all(|node| node.docs.index() == first.docs.index())
    }

    /// Which nodes differ from the first, and in how many documents.
    fn divergence(&self) -> String {
        let Some((first, rest)) = self.nodes.split_first() else { return String::new() };
        let reference = first.docs.index();
        let mut parts = Vec::new();
        for node in rest {
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
        // The saved bytes too (the same on every node, whose heads are equal by now).
        if let Some(node) = self.nodes.first() {
            for (id, doc) in node.docs.iter() {
                digester.update(id.as_bytes());
                digester.update(&doc.clone().save());
            }
        }
        for value in self.stats.values() {
            digester.update_u64(value);
        }
        Report {
            seed: self.config.seed,
            tills: self.config.tills,
            hq: self.config.hq,
            documents: self.nodes.first().map_or(0, |node| node.docs.index().len()),
            stats: self.stats,
            digest: digester.finish(),
        }
    }
}
