//! Time is passed in, never read: the core has no clock of its own.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC), as the legacy API's `createdAt` / `syncedAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }
}

/// A source of the current time: the system clock in drivers, a simulated one in the simulator.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}
