//! The system clock: the one wall clock of the workspace, for real nodes, the CLI and the legacy
//! client (`tillmesh_client::SyncService::open`); the simulator and tests bring their own [`Clock`].

use std::time::{SystemTime, UNIX_EPOCH};

use tillmesh_core::{Clock, Timestamp};

/// Wall-clock time in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis());
        Timestamp(i64::try_from(millis).unwrap_or(i64::MAX))
    }
}
