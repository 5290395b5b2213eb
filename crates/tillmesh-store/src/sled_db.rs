//! sled 0.34 made dependable, for the store and for the legacy client's outbox.
//!
//! - Opening waits for the lock of a database that is still closing ([`open_waiting`]): sled lets
//!   go of its file only once its own threads have finished the last writes, a little after the
//!   database is dropped, and a reopening meanwhile fails with "could not acquire lock".
//! - A flush is durable ([`DurableLog`]): on Linux sled makes its log stable with
//!   `sync_file_range` alone, which neither commits the file's metadata (its length, as the log
//!   grows) nor flushes the device's write cache, so what it acknowledged could still be lost
//!   with the power. Its log is `fdatasync`ed after sled's flush.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

/// sled 0.34's log in a database's directory: the file that holds every write.
const LOG_FILE: &str = "db";

/// How often [`open_waiting`] tries again.
const RETRY_EVERY: Duration = Duration::from_millis(10);

/// Opens the database `config` names, waiting up to `lock_wait` for another opening of it (one
/// that is closing) to let go of its lock.
pub fn open_waiting(config: &sled::Config, lock_wait: Duration) -> sled::Result<sled::Db> {
    let started = Instant::now();
    loop {
        match config.open() {
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock") && started.elapsed() < lock_wait =>
            {
                std::thread::sleep(RETRY_EVERY);
            }
            opened => return opened,
        }
    }
}

/// The log of one open sled database.
#[derive(Debug)]
pub struct DurableLog(File);

impl DurableLog {
    /// The log of the sled database open in `dir`.
    pub fn of(dir: &Path) -> sled::Result<DurableLog> {
        Ok(DurableLog(File::open(dir.join(LOG_FILE))?))
    }

    /// Flushes `db` and makes everything it wrote durable.
    pub fn flush(&self, db: &sled::Db) -> sled::Result<()> {
        db.flush()?;
        self.sync()
    }

    /// Makes what sled's own flush wrote durable (for a caller that flushed with
    /// `sled::Db::flush_async`).
    pub fn sync(&self) -> sled::Result<()> {
        Ok(self.0.sync_data()?)
    }
}
