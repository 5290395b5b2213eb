//! What a simulation run is made of: how many tills, how long the faulty phase lasts, how bad
//! the network is, how often nodes crash and how busy the shop is. Every probability is in parts
//! per million (`_ppm`) and every duration in ticks (`_ticks`): integers only, so a run is the same
//! on every platform.

use crate::error::SimError;
use crate::rng::{SimRng, Stream};

/// Most tills a simulation runs (till codes `A` to `Z`, then `T27`…).
pub const TILLS_MAX: usize = 64;

/// One simulation run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// How many tills (at least 1).
    pub tills: usize,
    /// Whether an HQ peer takes part (it settles payments with its signing key).
    pub hq: bool,
    /// Simulated milliseconds per tick.
    pub tick_ms: i64,
    /// Length of the faulty phase (faults and workload on).
    pub faulty_ticks: u64,
    /// The healed phase fails when the nodes have not converged after this many ticks.
    pub heal_ticks_max: u64,
    /// After convergence, traffic must stop within this many ticks (anti-entropy off).
    pub quiesce_ticks_max: u64,
    /// Each node starts a reconciliation with its peers every this many ticks; 0: never (then
    /// only pushes, relays and the reconciliation on connecting carry documents).
    pub anti_entropy_every_ticks: u64,
    /// Which pairs of nodes can connect.
    pub topology: Topology,
    /// A progress report every this many ticks (0: only at phase changes).
    pub progress_every_ticks: u64,
    /// The network's behaviour.
    pub network: NetworkConfig,
    /// Crashes, partitions and clock skew.
    pub faults: FaultConfig,
    /// What the tills and HQ do.
    pub workload: WorkloadConfig,
}

/// Which pairs of nodes can connect (a shop's LAN may not let every till reach every other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Every node can reach every other.
    Full,
    /// A random connected graph: a spanning tree plus some other pairs (drawn from the seed);
    /// it stays connected without a revoked till.
    Sparse,
    /// A chain: each node reaches only the one before and the one after it.
    Line,
}

/// How each directed link behaves during the faulty phase. Each link draws its own delay range
/// and loss rate within these bounds at the start of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Shortest one-way delay.
    pub delay_ticks_min: u64,
    /// Longest one-way delay (frames within a link overtake each other within this window).
    pub delay_ticks_max: u64,
    /// Highest per-link chance of losing a frame.
    pub loss_ppm_max: u32,
    /// Chance of delivering a frame twice.
    pub duplicate_ppm: u32,
    /// Chance of holding a frame back (reordering beyond the delay window).
    pub reorder_ppm: u32,
    /// Longest extra hold of a reordered frame.
    pub reorder_ticks_max: u64,
}

/// Node and network faults of the faulty phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultConfig {
    /// Per node and tick: chance of crashing (losing sessions and frames in flight, keeping its
    /// durable documents).
    pub crash_ppm: u32,
    /// Shortest time a crashed node stays down.
    pub down_ticks_min: u64,
    /// Longest time a crashed node stays down.
    pub down_ticks_max: u64,
    /// Per tick: chance of cutting a random set of nodes off from the others.
    pub partition_ppm: u32,
    /// Shortest partition.
    pub partition_ticks_min: u64,
    /// Longest partition.
    pub partition_ticks_max: u64,
    /// Most partitions in force at once.
    pub partitions_max: usize,
    /// Each node's clock is off by up to this much, either way.
    pub clock_skew_ms_max: i64,
    /// Per step of a node that writes what a peer sent: chance that the write fails (the disk
    /// refuses it; nothing of it is kept).
    pub storage_fault_ppm: u32,
    /// Per step of a node that wrote what a peer sent: chance that the node crashes after the
    /// write and before it answers or sends anything.
    pub crash_before_ack_ppm: u32,
    /// Whether HQ revokes one till during the faulty phase (the till is unplugged then, comes
    /// back later and keeps taking orders that must reach no other node).
    pub revocation: bool,
}

/// The shop's activity during the faulty phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Per till and tick: chance of one write (creating or editing an order).
    pub till_write_ppm: u32,
    /// Per tick: chance that HQ settles one paid order or transaction.
    pub hq_settle_ppm: u32,
    /// Per till and tick: chance that the till forges a settlement (signed with a key of its
    /// own) on a paid order or transaction; every view must ignore it and report it.
    pub forge_ppm: u32,
    /// Edits go to one of a till's this many most recent orders (more concurrent edits).
    pub hot_orders: usize,
    /// A till adds no item beyond this many in one order.
    pub items_per_order_max: usize,
    /// Relative weight of creating an order among a till's writes.
    pub create_weight: u32,
    /// Relative weights of the edits of an existing order.
    pub edit_weights: EditWeights,
}

/// Relative weights of the edits a till makes to an order it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditWeights {
    /// Adding an item.
    pub add_item: u32,
    /// Changing an item's quantity.
    pub set_quantity: u32,
    /// Voiding an item.
    pub void_item: u32,
    /// Moving the status forward (sometimes to VOIDED).
    pub advance: u32,
    /// Claiming the payment (a card payment also records a transaction document).
    pub claim_payment: u32,
    /// Replacing the notes.
    pub set_notes: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            delay_ticks_min: 1,
            delay_ticks_max: 30,
            loss_ppm_max: 100_000,
            duplicate_ppm: 30_000,
            reorder_ppm: 30_000,
            reorder_ticks_max: 200,
        }
    }
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            crash_ppm: 150,
            down_ticks_min: 50,
            down_ticks_max: 600,
            partition_ppm: 800,
            partition_ticks_min: 100,
            partition_ticks_max: 1_000,
            partitions_max: 2,
            clock_skew_ms_max: 5_000,
            storage_fault_ppm: 5_000,
            crash_before_ack_ppm: 1_000,
            revocation: false,
        }
    }
}

impl Default for EditWeights {
    fn default() -> Self {
        EditWeights {
            add_item: 15,
            set_quantity: 15,
            void_item: 6,
            advance: 20,
            claim_payment: 15,
            set_notes: 5,
        }
    }
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            till_write_ppm: 12_000,
            hq_settle_ppm: 8_000,
            forge_ppm: 500,
            hot_orders: 8,
            items_per_order_max: 8,
            create_weight: 25,
            edit_weights: EditWeights::default(),
        }
    }
}

impl SimConfig {
    /// A run of `tills` tills and an HQ with the default faults and workload.
    pub fn new(seed: u64, tills: usize) -> SimConfig {
        SimConfig {
            seed,
            tills,
            hq: true,
            tick_ms: 1,
            faulty_ticks: 3_000,
            heal_ticks_max: 50_000,
            quiesce_ticks_max: 10_000,
            anti_entropy_every_ticks: 250,
            topology: Topology::Full,
            progress_every_ticks: 1_000,
            network: NetworkConfig::default(),
            faults: FaultConfig::default(),
            workload: WorkloadConfig::default(),
        }
    }

    /// Like [`SimConfig::new`] with frequent crashes and partitions: every run sees several of
    /// each.
    pub fn stormy(seed: u64, tills: usize) -> SimConfig {
        let mut config = SimConfig::new(seed, tills);
        config.faults.crash_ppm = 1_000;
        config.faults.down_ticks_max = 400;
        config.faults.partition_ppm = 2_000;
        config.faults.partition_ticks_max = 600;
        config.faults.partitions_max = 3;
        config
    }

    /// A swarm run: the seed draws its own fault mix as well as the run. Each fault class —
    /// loss, duplication, reordering, long delays, crashes, partitions, clock skew, storage
    /// faults, crashes between a write and its answer, HQ settlements, forged settlements,
    /// contention on few orders
    /// — is on or off (off one time in three) and, when on, at an intensity between a tenth of
    /// the default and the stormy level; a till is revoked in a third of the runs; one run in
    /// three has a sparse topology (relays carry what some pairs cannot send each other); one
    /// in ten runs without anti-entropy (and then without the faults only it repairs: loss,
    /// duplicates, reordering, partitions, storage faults). Across seeds every fault meets every other and each is also
    /// seen alone (swarm testing: one fault can hide another).
    pub fn swarm(seed: u64, tills: usize) -> SimConfig {
        let mut config = SimConfig::new(seed, tills);
        let mut mix = SimRng::stream(seed, Stream::Mix);
        let mut draw = |most: u64| if mix.below(3) == 0 { 0 } else { mix.between(most / 10, most) };
        let ppm = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
        config.network.loss_ppm_max = ppm(draw(200_000));
        config.network.duplicate_ppm = ppm(draw(60_000));
        config.network.reorder_ppm = ppm(draw(60_000));
        config.network.delay_ticks_max = draw(120).max(config.network.delay_ticks_min);
        config.faults.crash_ppm = ppm(draw(1_000));
        config.faults.partition_ppm = ppm(draw(2_000));
        config.faults.clock_skew_ms_max = i64::try_from(draw(60_000)).unwrap_or(0);
        config.workload.hq_settle_ppm = ppm(draw(16_000));
        config.workload.forge_ppm = ppm(draw(2_000));
        config.workload.hot_orders = usize::try_from(draw(16)).unwrap_or(0).max(1);
        config.faults.storage_fault_ppm = ppm(draw(20_000));
        config.faults.crash_before_ack_ppm = ppm(draw(5_000));
        config.faults.revocation = tills >= 2 && mix.below(3) == 0;
        config.topology = if mix.below(3) == 0 { Topology::Sparse } else { Topology::Full };
        if mix.below(10) == 0 {
            config.without_anti_entropy();
        }
        config
    }

    /// Turns anti-entropy off, and with it the faults only anti-entropy repairs: Automerge's
    /// sync assumes frames arrive once and in order, as they do on a connection, and a lost
    /// frame or write is found again only by a reconciliation. What is left — relays, pushes,
    /// the reconciliation on (re)connecting — must carry everything: loss, duplicates,
    /// reordering, partitions and storage faults go; crashes stay.
    pub fn without_anti_entropy(&mut self) {
        self.anti_entropy_every_ticks = 0;
        self.network.loss_ppm_max = 0;
        self.network.duplicate_ppm = 0;
        self.network.reorder_ppm = 0;
        self.faults.partition_ppm = 0;
        self.faults.storage_fault_ppm = 0;
    }

    /// The fault mix in a few words (for the progress lines of a swarm).
    pub fn mix(&self) -> String {
        let ppm = |value: u32| format!("{:.1} %", f64::from(value) / 10_000.0);
        let anti_entropy = match self.anti_entropy_every_ticks {
            0 => "no anti-entropy".to_string(),
            every => format!("anti-entropy every {every} ticks"),
        };
        format!(
            "loss ≤ {}, duplicates {}, reorders {}, delay ≤ {} ticks, crashes {} ppm/tick, partitions {} ppm/tick, \
             clock skew ≤ {} ms, storage faults {}, crashes before an answer {}, {}, {:?} topology, {}, \
             settlements {} ppm/tick, forgeries {} ppm/tick, {} hot orders",
            ppm(self.network.loss_ppm_max),
            ppm(self.network.duplicate_ppm),
            ppm(self.network.reorder_ppm),
            self.network.delay_ticks_max,
            self.faults.crash_ppm,
            self.faults.partition_ppm,
            self.faults.clock_skew_ms_max,
            ppm(self.faults.storage_fault_ppm),
            ppm(self.faults.crash_before_ack_ppm),
            if self.faults.revocation { "a till revoked" } else { "no revocation" },
            self.topology,
            anti_entropy,
            self.workload.hq_settle_ppm,
            self.workload.forge_ppm,
            self.workload.hot_orders,
        )
    }

    /// The same run with another seed.
    pub fn with_seed(&self, seed: u64) -> SimConfig {
        SimConfig { seed, ..self.clone() }
    }

    /// Checks that the numbers make sense together.
    pub fn validate(&self) -> Result<(), SimError> {
        let problem = |text: &str| Err(SimError::Config { problem: text.to_string() });
        if self.tills == 0 || self.tills > TILLS_MAX {
            return problem("tills must be between 1 and 64");
        }
        if self.tills + usize::from(self.hq) < 2 {
            return problem("a simulation needs at least two nodes (two tills, or a till and HQ)");
        }
        if self.tick_ms <= 0 {
            return problem("tick_ms must be positive");
        }
        if self.faults.revocation && self.tills < 2 {
            return problem("revoking a till needs at least two tills");
        }
        if self.network.delay_ticks_min == 0 || self.network.delay_ticks_min > self.network.delay_ticks_max {
            return problem("network delays need 1 <= delay_ticks_min <= delay_ticks_max");
        }
        if self.faults.down_ticks_min == 0 || self.faults.down_ticks_min > self.faults.down_ticks_max {
            return problem("crash downtime needs 1 <= down_ticks_min <= down_ticks_max");
        }
        if self.faults.partition_ticks_min == 0
            || self.faults.partition_ticks_min > self.faults.partition_ticks_max
        {
            return problem("partitions need 1 <= partition_ticks_min <= partition_ticks_max");
        }
        if self.faults.clock_skew_ms_max < 0 {
            return problem("clock_skew_ms_max must not be negative");
        }
        let ppm = [
            self.network.loss_ppm_max,
            self.network.duplicate_ppm,
            self.network.reorder_ppm,
            self.faults.crash_ppm,
            self.faults.partition_ppm,
            self.faults.storage_fault_ppm,
            self.faults.crash_before_ack_ppm,
            self.workload.till_write_ppm,
            self.workload.hq_settle_ppm,
            self.workload.forge_ppm,
        ];
        if ppm.iter().any(|value| *value > 1_000_000) {
            return problem("probabilities are parts per million: at most 1000000");
        }
        if self.network.loss_ppm_max >= 1_000_000 {
            return problem("a link that loses every frame can never deliver");
        }
        if self.workload.hot_orders == 0 || self.workload.items_per_order_max == 0 {
            return problem("hot_orders and items_per_order_max must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_nonsense_is_not() {
        assert!(SimConfig::new(1, 3).validate().is_ok());
        assert!(SimConfig::stormy(1, 3).validate().is_ok());
        assert!(SimConfig::new(1, 0).validate().is_err());
        let mut lonely = SimConfig::new(1, 1);
        lonely.hq = false;
        assert!(lonely.validate().is_err());
        let mut backwards = SimConfig::new(1, 2);
        backwards.network.delay_ticks_min = 10;
        backwards.network.delay_ticks_max = 5;
        assert!(backwards.validate().is_err());
    }

    #[test]
    fn swarm_seeds_draw_valid_and_varied_mixes() {
        let mixes: Vec<SimConfig> = (0..200).map(|seed| SimConfig::swarm(seed, 3)).collect();
        assert!(mixes.iter().all(|config| config.validate().is_ok()));
        assert_eq!(SimConfig::swarm(7, 3), SimConfig::swarm(7, 3), "a seed is its mix");
        let classes: [fn(&SimConfig) -> bool; 10] = [
            |c| c.network.loss_ppm_max > 0,
            |c| c.network.duplicate_ppm > 0,
            |c| c.network.reorder_ppm > 0,
            |c| c.faults.crash_ppm > 0,
            |c| c.faults.partition_ppm > 0,
            |c| c.faults.clock_skew_ms_max > 0,
            |c| c.workload.hq_settle_ppm > 0,
            |c| c.workload.forge_ppm > 0,
            |c| c.faults.storage_fault_ppm > 0,
            |c| c.faults.crash_before_ack_ppm > 0,
        ];
        for (n, on) in classes.iter().enumerate() {
            let count = mixes.iter().filter(|config| on(config)).count();
            assert!((100..=170).contains(&count), "fault class {n} on in {count} of 200 mixes");
        }
        // A third of the runs revoke a till, a third are sparse, a tenth have no anti-entropy.
        let revoked = mixes.iter().filter(|config| config.faults.revocation).count();
        let sparse = mixes.iter().filter(|config| config.topology == Topology::Sparse).count();
        let quiet = mixes.iter().filter(|config| config.anti_entropy_every_ticks == 0).count();
        assert!((40..=95).contains(&revoked), "{revoked} of 200 mixes revoke a till");
        assert!((40..=95).contains(&sparse), "{sparse} of 200 mixes are sparse");
        assert!((8..=35).contains(&quiet), "{quiet} of 200 mixes have no anti-entropy");
        assert!(
            mixes.iter().all(|c| c.anti_entropy_every_ticks > 0
                || (c.network.loss_ppm_max == 0
                    && c.network.duplicate_ppm == 0
                    && c.network.reorder_ppm == 0
                    && c.faults.partition_ppm == 0
                    && c.faults.storage_fault_ppm == 0)),
            "only runs without the faults anti-entropy repairs go without it"
        );
    }
}
