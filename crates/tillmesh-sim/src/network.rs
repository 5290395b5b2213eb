//! The simulated network: encoded frames (requests and responses) in flight between nodes, with
//! per-link delay, loss, duplication and reordering, and partitions that cut sets of nodes off. Frames in flight are
//! kept in a `BTreeMap` keyed by (delivery tick, send order), so delivery order depends only on
//! the seed.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::NetworkConfig;
use crate::report::Stats;
use crate::rng::SimRng;

/// Whether a packet asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A request, numbered by its sender.
    Request(u64),
    /// The answer to the receiver's request of that number.
    Response(u64),
}

/// An encoded frame on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet {
    /// Sending node.
    pub(crate) from: usize,
    /// Receiving node.
    pub(crate) to: usize,
    /// Request or response.
    pub(crate) kind: Kind,
    /// The connection it travels on: a packet of a closed connection is never delivered.
    pub(crate) connection: u64,
    /// The encoded frame.
    pub(crate) bytes: Vec<u8>,
}

/// How one directed link behaves in the faulty phase (drawn once per run).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    delay_ticks_min: u64,
    delay_ticks_max: u64,
    loss_ppm: u32,
}

/// A set of nodes cut off from all the others until a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partition {
    /// The nodes on one side; every link between them and the rest is cut.
    pub(crate) side: BTreeSet<usize>,
    /// The tick the partition heals.
    pub(crate) until_tick: u64,
}

impl Partition {
    fn cuts(&self, from: usize, to: usize) -> bool {
        self.side.contains(&from) != self.side.contains(&to)
    }
}

/// Every frame in flight and the faults that apply to them.
#[derive(Debug)]
pub(crate) struct Network {
    nodes: usize,
    links: Vec<Link>,
    config: NetworkConfig,
    in_flight: BTreeMap<(u64, u64), Packet>,
    sent: u64,
    partitions: Vec<Partition>,
    faults_on: bool,
    rng: SimRng,
}

impl Network {
    /// A network between `nodes` nodes; each link draws its delay window and loss rate.
    pub(crate) fn new(nodes: usize, config: &NetworkConfig, mut rng: SimRng) -> Network {
        let mut links = Vec::with_capacity(nodes * nodes);
        for _ in 0..nodes * nodes {
            let low = rng.between(config.delay_ticks_min, config.delay_ticks_max);
            let high = rng.between(low, config.delay_ticks_max);
            let loss_ppm = u32::try_from(rng.between(0, u64::from(config.loss_ppm_max))).unwrap_or(0);
            links.push(Link { delay_ticks_min: low, delay_ticks_max: high, loss_ppm });
        }
        Network {
            nodes,
            links,
            config: config.clone(),
            in_flight: BTreeMap::new(),
            sent: 0,
            partitions: Vec::new(),
            faults_on: true,
            rng,
        }
    }

    /// Turns faults off for good: no loss, duplication, reordering or partitions, and every
    /// link delivers in order after its shortest delay.
    pub(crate) fn heal(&mut self) {
        self.faults_on = false;
        self.partitions.clear();
    }

    /// Whether a partition cuts the link between two nodes now.
    pub(crate) fn is_cut(&self, from: usize, to: usize) -> bool {
        self.partitions.iter().any(|partition| partition.cuts(from, to))
    }

    /// Partitions in force.
    pub(crate) fn partitions(&self) -> usize {
        self.partitions.len()
    }

    /// Starts a partition.
    pub(crate) fn add_partition(&mut self, partition: Partition) {
        self.partitions.push(partition);
    }

    /// Heals the partitions whose time is up.
    pub(crate) fn expire_partitions(&mut self, now: u64) {
        self.partitions.retain(|partition| partition.until_tick > now);
    }

    /// The longest a request and its answer can take on any link: a request unanswered after
    /// this long never will be.
    pub(crate) fn round_trip_max(&self) -> u64 {
        2 * (self.config.delay_ticks_max + self.config.reorder_ticks_max) + 1
    }

    /// Frames in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Hands a frame to the network at tick `now`.
    pub(crate) fn send(&mut self, now: u64, packet: Packet, stats: &mut Stats) {
        stats.frames += 1;
        stats.bytes += packet.bytes.len() as u64;
        let link = self.links.get(packet.from * self.nodes + packet.to).cloned();
        let Some(link) = link else { return };
        if !self.faults_on {
            self.enqueue(now + link.delay_ticks_min, packet);
            return;
        }
        if self.is_cut(packet.from, packet.to) {
            stats.dropped_partition += 1;
            return;
        }
        if self.rng.chance_ppm(link.loss_ppm) {
            stats.dropped_loss += 1;
            return;
        }
        if self.rng.chance_ppm(self.config.duplicate_ppm) {
            stats.duplicates += 1;
            let delay = self.faulty_delay(&link, stats);
            self.enqueue(now + delay, packet.clone());
        }
        let delay = self.faulty_delay(&link, stats);
        self.enqueue(now + delay, packet);
    }

    /// Takes out every frame due at or before `now`, in delivery order. Frames whose link a
    /// partition cuts at delivery time are dropped here.
    pub(crate) fn due(&mut self, now: u64, stats: &mut Stats) -> Vec<Packet> {
        let later = self.in_flight.split_off(&(now + 1, 0));
        let due = std::mem::replace(&mut self.in_flight, later);
        let mut packets = Vec::with_capacity(due.len());
        for packet in due.into_values() {
            if self.is_cut(packet.from, packet.to) {
                stats.dropped_partition += 1;
            } else {
                packets.push(packet);
            }
        }
        packets
    }

    fn faulty_delay(&mut self, link: &Link, stats: &mut Stats) -> u64 {
        let mut delay = self.rng.between(link.delay_ticks_min, link.delay_ticks_max);
        if self.rng.chance_ppm(self.config.reorder_ppm) {
            stats.reordered += 1;
            delay += self.rng.between(1, self.config.reorder_ticks_max.max(1));
        }
        delay
    }

    fn enqueue(&mut self, at: u64, packet: Packet) {
        self.sent += 1;
        self.in_flight.insert((at, self.sent), packet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(from: usize, to: usize, byte: u8) -> Packet {
        Packet { from, to, kind: Kind::Request(u64::from(byte)), connection: 1, bytes: vec![byte] }
    }

    #[test]
    fn healed_links_deliver_in_order_after_their_delay() {
        let mut stats = Stats::default();
        let mut network = Network::new(2, &NetworkConfig::default(), SimRng::new(3));
        network.heal();
        for byte in 0..5 {
            network.send(10, packet(0, 1, byte), &mut stats);
        }
        let mut delivered = Vec::new();
        for now in 10..100 {
            delivered.extend(network.due(now, &mut stats).into_iter().map(|p| p.bytes[0]));
        }
        assert_eq!(delivered, vec![0, 1, 2, 3, 4]);
        assert_eq!(stats.frames, 5);
        assert_eq!(network.in_flight(), 0);
    }

    #[test]
    fn partitions_cut_both_ways_and_expire() {
        let mut stats = Stats::default();
        let config = NetworkConfig { loss_ppm_max: 0, duplicate_ppm: 0, ..NetworkConfig::default() };
        let mut network = Network::new(3, &config, SimRng::new(4));
        network.add_partition(Partition { side: BTreeSet::from([2]), until_tick: 50 });
        assert!(network.is_cut(0, 2) && network.is_cut(2, 1) && !network.is_cut(0, 1));
        network.send(0, packet(0, 2, 1), &mut stats);
        assert_eq!(stats.dropped_partition, 1);
        network.expire_partitions(50);
        assert!(!network.is_cut(0, 2));
    }
}
