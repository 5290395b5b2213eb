//! sled 0.34 made durable. On Linux sled makes its log stable with `sync_file_range` alone, which
//! neither commits the file's metadata (its length, as the log grows) nor flushes the device's
//! write cache: what it acknowledged could still be lost with the power. [`DurableLog::flush`]
//! follows sled's flush with an `fdatasync` of the log.

use std::fs::File;
use std::path::Path;

/// sled 0.34's log in a database's directory: the file that holds every write.
const LOG_FILE: &str = "db";

/// The log of one open sled database.
#[derive(Debug)]
pub(crate) struct DurableLog(File);

impl DurableLog {
    /// The log of the sled database open in `dir`.
    pub(crate) fn of(dir: &Path) -> sled::Result<DurableLog> {
        Ok(DurableLog(File::open(dir.join(LOG_FILE))?))
    }

    /// Flushes `db` and makes everything it wrote durable.
    pub(crate) fn flush(&self, db: &sled::Db) -> sled::Result<()> {
        db.flush()?;
        Ok(self.0.sync_data()?)
    }
}
