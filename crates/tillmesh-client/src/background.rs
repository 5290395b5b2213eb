//! The background sync loop: sync, then wait the interval (after a success) or an exponential
//! backoff with jitter (after a failure), until stopped. Every wait is at least
//! [`crate::config::DELAY_MIN`], so the loop never spins.

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::service::SyncService;

/// The running background sync. [`SyncHandle::stop`] ends it; dropping the handle ends it too
/// (without waiting).
#[derive(Debug)]
pub struct SyncHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SyncHandle {
    /// Stops the loop and waits for it: a sync in flight is abandoned (what it had sent is
    /// queued again by the next sync; HQ deduplicates).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(error) = (&mut self.task).await
            && error.is_panic()
        {
            tracing::error!(%error, "the background sync panicked");
        }
    }

    /// Whether the loop has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl SyncService {
    /// Starts the background sync: one sync now, then one every
    /// [`crate::ClientConfig::interval`], or after an exponential backoff with jitter when a
    /// sync failed. Stop it with [`SyncHandle::stop`] (or by dropping the handle).
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(&self) -> SyncHandle {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(self.clone(), stopped));
        SyncHandle { stop: Some(stop), task }
    }
}

async fn run(service: SyncService, mut stopped: oneshot::Receiver<()>) {
    let config = service.config();
    let backoff = Backoff { base: config.backoff_base, max: config.backoff_max };
    let interval = config.interval.max(crate::config::DELAY_MIN);
    let mut failures: u32 = 0;
    tracing::info!(device_id = %service.device_id(), ?interval, "background sync started");
    loop {
        let outcome = tokio::select! {
            _ = &mut stopped => break,
            outcome = service.sync_now() => outcome,
        };
        let wait = match outcome {
            Ok(report) if report.more_updates => {
                failures = 0;
                // More updates wait on HQ: continue soon rather than after a whole interval.
                backoff.base.min(interval)
            }
            Ok(_) => {
                failures = 0;
                interval
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let wait = backoff.delay_now(failures);
                if error.is_auth() {
                    tracing::error!(%error, failures, ?wait, "HQ refuses this device's credentials");
                } else {
                    tracing::warn!(%error, failures, ?wait, "sync failed; retrying after a backoff");
                }
                wait
            }
        };
        tokio::select! {
            _ = &mut stopped => break,
            () = tokio::time::sleep(wait.max(crate::config::DELAY_MIN)) => {}
        }
    }
    tracing::info!(device_id = %service.device_id(), "background sync stopped");
}
