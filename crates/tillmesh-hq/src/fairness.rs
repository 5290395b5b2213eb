//! Per-device admission of legacy writes: a token bucket of records per second (a device past
//! it gets 429 with `Retry-After`) and one write in flight per device, so that a device sending
//! big batches on several threads takes its turn with the others instead of going ahead of them
//! (record batches are serialised by the record store's lock, which serves waiters in order).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

/// Records a device may write per second, sustained.
pub(crate) const RECORDS_PER_SECOND: f64 = 2_000.0;
/// Records a device may write at once after a quiet spell.
pub(crate) const RECORDS_BURST: f64 = 10_000.0;
/// Devices tracked at once; beyond, those quiet for a minute are forgotten.
const DEVICES_TRACKED_MAX: usize = 100_000;

/// The admission state of every device writing.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    devices: Mutex<HashMap<String, Device>>,
}

#[derive(Debug)]
struct Device {
    tokens: f64,
    refreshed: Instant,
    /// Held by the device's write in flight.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Gate {
    /// Admits a write of `records` records by `device`: waits for the device's earlier write to
    /// finish and returns its turn, or says how long to wait before the rate allows it.
    pub(crate) async fn enter(&self, device: &str, records: usize) -> Result<OwnedMutexGuard<()>, Duration> {
        let turn = {
            let Ok(mut devices) = self.devices.lock() else { return Err(Duration::from_secs(1)) };
            let now = Instant::now();
            if devices.len() >= DEVICES_TRACKED_MAX && !devices.contains_key(device) {
                devices.retain(|_, known| now.duration_since(known.refreshed) < Duration::from_secs(60));
            }
            let known = devices.entry(device.to_string()).or_insert_with(|| Device {
                tokens: RECORDS_BURST,
                refreshed: now,
                turn: Arc::new(tokio::sync::Mutex::new(())),
            });
            let elapsed = now.duration_since(known.refreshed).as_secs_f64();
            known.tokens = (known.tokens + elapsed * RECORDS_PER_SECOND).min(RECORDS_BURST);
            known.refreshed = now;
            let cost = (records.max(1) as f64).min(RECORDS_BURST);
            if cost > known.tokens {
                return Err(Duration::from_secs_f64((cost - known.tokens) / RECORDS_PER_SECOND));
            }
            known.tokens -= cost;
            Arc::clone(&known.turn)
        };
        Ok(turn.lock_owned().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_device_past_its_rate_is_told_when_to_come_back_and_others_are_not() {
        let gate = Gate::default();
        let burst = RECORDS_BURST as usize;
        drop(gate.enter("pos-a", burst).await.expect("the burst"));
        let wait = gate.enter("pos-a", 1_000).await.expect_err("past the rate");
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        drop(gate.enter("pos-b", 1_000).await.expect("another device is not held back"));
    }

    #[tokio::test]
    async fn a_device_has_one_write_in_flight() {
        let gate = Arc::new(Gate::default());
        let first = gate.enter("pos-a", 1).await.expect("first");
        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { drop(gate.enter("pos-a", 1).await.expect("second")) }
        });
        drop(gate.enter("pos-b", 1).await.expect("another device goes ahead"));
        assert!(!waiting.is_finished());
        drop(first);
        waiting.await.expect("the second write's turn");
    }
}
