//! Simulated time: a tick counter that only the simulation loop advances. Nodes read it through
//! their own skew, the way real tills' clocks disagree; nothing here reads the system clock.

use tillmesh_core::Timestamp;

/// Wall-clock time of tick 0: 2024-01-01T00:00:00Z, in milliseconds since the Unix epoch.
pub const EPOCH_MS: i64 = 1_704_067_200_000;

/// The simulation's clock: ticks of [`SimClock::tick_ms`] milliseconds since [`EPOCH_MS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimClock {
    tick: u64,
    tick_ms: i64,
}

impl SimClock {
    /// A clock at tick 0 whose ticks last `tick_ms` simulated milliseconds.
    pub fn new(tick_ms: i64) -> SimClock {
        SimClock { tick: 0, tick_ms }
    }

    /// The current tick.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Simulated milliseconds per tick.
    pub fn tick_ms(&self) -> i64 {
        self.tick_ms
    }

    /// Moves to the next tick.
    pub fn advance(&mut self) {
        self.tick += 1;
    }

    /// The time a node whose clock is off by `skew_ms` reads now.
    pub fn time_with_skew(&self, skew_ms: i64) -> Timestamp {
        let elapsed_ms = i64::try_from(self.tick).unwrap_or(i64::MAX).saturating_mul(self.tick_ms);
        Timestamp(EPOCH_MS.saturating_add(elapsed_ms).saturating_add(skew_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skewed_time_follows_ticks() {
        let mut clock = SimClock::new(1);
        assert_eq!(clock.time_with_skew(0), Timestamp(EPOCH_MS));
        clock.advance();
        clock.advance();
        assert_eq!(clock.tick(), 2);
        assert_eq!(clock.time_with_skew(-5_000), Timestamp(EPOCH_MS + 2 - 5_000));
    }
}
