//! Who is connected to whom, as libp2p connections: a pair of running nodes that the topology
//! lets reach each other and that neither blocks is connected; each connection has a number, so
//! that frames sent on a connection that has closed are never delivered. Requests in flight are
//! tracked per requester: answered, or failed once no answer can come (libp2p's request
//! timeout), or gone with their connection.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Topology;
use crate::rng::SimRng;

/// A request awaiting its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outstanding {
    responder: usize,
    connection: u64,
    deadline_tick: u64,
}

/// The connections between nodes and the requests in flight on them.
#[derive(Debug)]
pub(crate) struct Connections {
    /// Pairs (lower index first) that may connect.
    allowed: BTreeSet<(usize, usize)>,
    /// Open connections by pair, with their number.
    open: BTreeMap<(usize, usize), u64>,
    /// Per node: the peers it blocks (volatile: a restart forgets them).
    blocked: Vec<BTreeSet<usize>>,
    /// Requests in flight, by (requester, request number).
    outstanding: BTreeMap<(usize, u64), Outstanding>,
    numbers: u64,
}

impl Connections {
    /// No connections yet; which pairs may connect follows `topology` (drawn from `rng`). A sparse
    /// topology stays connected without `apart` (a till that will be revoked).
    pub(crate) fn new(
        nodes: usize,
        topology: Topology,
        apart: Option<usize>,
        rng: &mut SimRng,
    ) -> Connections {
        let pair = |a: usize, b: usize| (a.min(b), a.max(b));
        let mut allowed = BTreeSet::new();
        match topology {
            Topology::Full => {
                for low in 0..nodes {
                    for high in low + 1..nodes {
                        allowed.insert((low, high));
                    }
                }
            }
            Topology::Line => {
                for node in 1..nodes {
                    allowed.insert((node - 1, node));
                }
            }
            Topology::Sparse => {
                let mut order: Vec<usize> = (0..nodes).filter(|node| Some(*node) != apart).collect();
                rng.shuffle(&mut order);
                // A random spanning tree keeps every node reachable (the one apart hangs off it
                // as a leaf); a third of the other pairs can connect too.
                order.extend(apart);
                for (position, node) in order.iter().enumerate().skip(1) {
                    let parent = order[usize::try_from(rng.below(position as u64)).unwrap_or(0)];
                    allowed.insert(pair(*node, parent));
                }
                for low in 0..nodes {
                    for high in low + 1..nodes {
                        if rng.below(3) == 0 {
                            allowed.insert((low, high));
                        }
                    }
                }
            }
        }
        Connections {
            allowed,
            open: BTreeMap::new(),
            blocked: vec![BTreeSet::new(); nodes],
            outstanding: BTreeMap::new(),
            numbers: 0,
        }
    }

    /// Whether `a` and `b` could connect if both ran (topology and blocks).
    pub(crate) fn may_connect(&self, a: usize, b: usize) -> bool {
        self.allowed.contains(&(a.min(b), a.max(b)))
            && !self.blocked[a].contains(&b)
            && !self.blocked[b].contains(&a)
    }

    /// Opens a connection between two nodes; `false` if one was open.
    pub(crate) fn open(&mut self, a: usize, b: usize) -> bool {
        if self.open.contains_key(&(a.min(b), a.max(b))) {
            return false;
        }
        self.numbers += 1;
        self.open.insert((a.min(b), a.max(b)), self.numbers);
        true
    }

    /// The number of the open connection between two nodes.
    pub(crate) fn connection(&self, a: usize, b: usize) -> Option<u64> {
        self.open.get(&(a.min(b), a.max(b))).copied()
    }

    /// Closes the connection between two nodes, and with it the requests in flight on it;
    /// `false` if none was open.
    pub(crate) fn close(&mut self, a: usize, b: usize) -> bool {
        let Some(number) = self.open.remove(&(a.min(b), a.max(b))) else { return false };
        self.outstanding.retain(|_, request| request.connection != number);
        true
    }

    /// The nodes `node` is connected to.
    pub(crate) fn peers_of(&self, node: usize) -> Vec<usize> {
        self.open
            .keys()
            .filter_map(|&(low, high)| {
                if low == node {
                    Some(high)
                } else if high == node {
                    Some(low)
                } else {
                    None
                }
            })
            .collect()
    }

    /// `node` blocks `peer` from now until it restarts.
    pub(crate) fn block(&mut self, node: usize, peer: usize) {
        self.blocked[node].insert(peer);
    }

    /// A restarted node has forgotten whom it blocked.
    pub(crate) fn forget_blocks(&mut self, node: usize) {
        self.blocked[node].clear();
    }

    /// Records a request `requester` sends on its connection to `responder`; returns its number.
    pub(crate) fn request(
        &mut self,
        requester: usize,
        responder: usize,
        connection: u64,
        deadline_tick: u64,
    ) -> u64 {
        self.numbers += 1;
        self.outstanding
            .insert((requester, self.numbers), Outstanding { responder, connection, deadline_tick });
        self.numbers
    }

    /// Takes an answered request out; `false` if it was no longer awaited (failed already, its
    /// connection closed, or this is a duplicate of the answer).
    pub(crate) fn answered(&mut self, requester: usize, number: u64) -> bool {
        self.outstanding.remove(&(requester, number)).is_some()
    }

    /// Takes out the requests whose answer can no longer come: (requester, responder).
    pub(crate) fn timed_out(&mut self, now: u64) -> Vec<(usize, usize)> {
        let expired: Vec<(usize, u64)> = self
            .outstanding
            .iter()
            .filter(|(_, request)| request.deadline_tick <= now)
            .map(|(key, _)| *key)
            .collect();
        expired
            .into_iter()
            .filter_map(|key| self.outstanding.remove(&key).map(|request| (key.0, request.responder)))
            .collect()
    }
}
