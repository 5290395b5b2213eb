//! The one thread that writes to a till's store, with group commit.
//!
//! Jobs arrive on a bounded queue. The thread takes every job waiting (up to
//! [`BATCH_JOBS_MAX`]), runs each against the store (a job reads documents, edits them and
//! returns the ones to write; they are written as one atomic batch), then flushes once and only
//! then answers every job of the batch. So an acknowledged edit is always on disk, and many
//! concurrent edits share one fsync.

use std::sync::Mutex;
use std::thread::JoinHandle;

use tillmesh_core::Document;
use tillmesh_store::Store;
use tokio::sync::{mpsc, oneshot};

use crate::TillError;

/// Most jobs flushed together.
pub const BATCH_JOBS_MAX: usize = 64;

/// Work for the writer: read and edit documents, return those to write.
pub type Job = Box<dyn FnOnce(&Store) -> Result<Vec<Document>, TillError> + Send>;

struct Command {
    job: Job,
    reply: oneshot::Sender<Result<Vec<Document>, TillError>>,
}

/// Handle to the writer thread.
#[derive(Debug)]
pub struct Writer {
    /// `None` once closed: no new jobs are taken.
    sender: Mutex<Option<mpsc::Sender<Command>>>,
    /// Joined by [`Writer::close`].
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer thread over `store`, with room for `queue_max` waiting jobs.
    pub fn spawn(store: Store, queue_max: usize) -> std::io::Result<Writer> {
        let (sender, receiver) = mpsc::channel(queue_max);
        let thread =
            std::thread::Builder::new().name("tillmesh-writer".into()).spawn(move || run(store, receiver))?;
        Ok(Writer { sender: Mutex::new(Some(sender)), thread: Mutex::new(Some(thread)) })
    }

    /// Runs `job` on the writer thread; resolves once its documents are durable.
    pub async fn submit(&self, job: Job) -> Result<Vec<Document>, TillError> {
        let sender = self
            .sender
            .lock()
            .map_err(|_| TillError::ShuttingDown)?
            .clone()
            .ok_or(TillError::ShuttingDown)?;
        let (reply, answer) = oneshot::channel();
        sender.send(Command { job, reply }).await.map_err(|_| TillError::ShuttingDown)?;
        answer.await.map_err(|_| TillError::ShuttingDown)?
    }

    /// Stops taking jobs, lets the thread finish the queued ones (flushed), and waits for it.
    pub fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the writer thread panicked");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.close();
    }
}

fn run(store: Store, mut receiver: mpsc::Receiver<Command>) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_JOBS_MAX {
            match receiver.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let mut answers = Vec::with_capacity(batch.len());
        for Command { job, reply } in batch {
            let result = job(&store).and_then(|mut documents| {
                store.put(&mut documents)?;
                Ok(documents)
            });
            answers.push((reply, result));
        }
        let flushed = store.flush();
        if let Err(error) = &flushed {
            tracing::error!(%error, "flush failed: the batch is not acknowledged");
        }
        for (reply, result) in answers {
            let answer = match (&flushed, result) {
                (Err(error), Ok(_)) => Err(TillError::NotDurable { detail: error.to_string() }),
                (_, result) => result,
            };
            // The requester may have gone (client disconnected): nothing to tell then.
            let _ = reply.send(answer);
        }
    }
    if let Err(error) = store.flush() {
        tracing::error!(%error, "final flush failed");
    }
}
