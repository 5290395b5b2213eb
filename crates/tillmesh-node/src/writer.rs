//! The one thread that writes to a till's store, with group commit.
//!
//! Jobs arrive on a bounded queue. The thread takes every job waiting (up to
//! [`BATCH_JOBS_MAX`]), runs each against the store, then flushes once and only then answers
//! every job of the batch. So an acknowledged write is always on disk, and many concurrent
//! writes share one fsync. The thread also owns the sync [`Index`], kept current with every
//! write, so that sync jobs (which run here too) always see the documents as they are. Once a
//! batch is durable, the ids of every document it wrote go out on a broadcast channel
//! ([`Writer::subscribe_written`]) for whoever follows the store (HQ's REST projection). Those
//! who show documents (the change stream) follow [`Writer::subscribe_visible`] instead: a
//! document a peer sent is announced there as soon as it is stored and readable, before the
//! batch's flush — its sender holds it durably already, so a screen need not wait for this
//! node's fsync — and the node's own writes once durable, as on the other channel. The node's
//! own writes are also kept here for the sync core, while a sync driver follows them
//! ([`Writer::follow_local_writes`]): the core takes them in its next step, which runs on this
//! thread too, so it pushes every write its index already counts.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tillmesh_core::{Clock, Document, Timestamp};
use tillmesh_mesh::{KeptWrites, LocalWrite};
use tillmesh_store::{Prepared, Store, StoreError};
use tillmesh_sync::Index;
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use uuid::Uuid;

use crate::TillError;

/// Most jobs flushed together.
pub const BATCH_JOBS_MAX: usize = 64;

/// Written document ids a follower may lag behind before it is told it missed some.
const WRITTEN_QUEUE_MAX: usize = 16_384;

/// This node's own writes kept for the sync driver between its steps: beyond it they are
/// dropped, and the driver's next step reconciles with every peer instead.
const LOCAL_WRITES_MAX: usize = 16_384;

/// What a job works with: the store, and the sync index the writer keeps.
#[derive(Debug)]
pub struct WriteContext<'a> {
    /// The store.
    pub store: &'a Store,
    /// Every document's item hash, current with every write made through [`WriteContext::put`].
    pub index: &'a mut Index,
    /// Ids written by this batch so far, announced once it is durable.
    written: &'a mut Vec<Uuid>,
    /// Ids of this node's own writes in this batch, shown once it is durable.
    own: &'a mut Vec<Uuid>,
    /// Where documents are shown: a peer's at once, once stored.
    visible: &'a broadcast::Sender<Uuid>,
    /// This node's own writes not yet taken by the sync core.
    local_writes: &'a mut KeptWrites,
    /// Whether a sync driver follows them, and how it is woken.
    follow: &'a Follow,
    /// When the batch started.
    now: Timestamp,
}

impl WriteContext<'_> {
    /// Writes documents as one atomic batch (durable once the job's batch is flushed) and keeps
    /// the index current.
    pub fn put(&mut self, documents: &mut [Document]) -> Result<Vec<Uuid>, StoreError> {
        let hashes = self.store.put(documents)?;
        Ok(self.index_own(hashes))
    }

    /// Writes prepared documents, from remote `from` or (`None`) made here (see
    /// [`Store::put_prepared`]), and keeps the index current.
    pub fn put_prepared(
        &mut self,
        prepared: &[Prepared],
        from: Option<&str>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let hashes = self.store.put_prepared(prepared, from)?;
        if from.is_none() {
            return Ok(self.index_own(hashes));
        }
        let ids = self.index_all(hashes);
        for id in &ids {
            // Nobody showing documents is fine.
            let _ = self.visible.send(*id);
        }
        Ok(ids)
    }

    /// This node's own writes since the last call, in the order made, each `created` when the
    /// index did not hold its document before: for the sync core, while a driver follows them
    /// ([`Writer::follow_local_writes`]); beyond [`LOCAL_WRITES_MAX`] of them, none but a mark
    /// that some were dropped. Taken in a job, they are all the node's own writes the index
    /// counts.
    pub fn take_local_writes(&mut self) -> KeptWrites {
        std::mem::take(self.local_writes)
    }

    /// Sets aside a stored document that no longer loads (see [`Store::set_aside`]) and drops
    /// it from the sync index.
    pub fn set_aside(&mut self, id: Uuid, reason: &str) -> Result<(), StoreError> {
        self.store.set_aside(id, reason, self.now.0)?;
        self.index.remove(&id);
        Ok(())
    }

    /// [`WriteContext::index_all`] for this node's own writes: shown once durable, and kept for
    /// the sync driver if one follows them (woken at once: its step runs after this batch's
    /// flush, so what it pushes is durable).
    fn index_own(&mut self, hashes: Vec<(Uuid, tillmesh_sync::ItemHash)>) -> Vec<Uuid> {
        if !self.follow.followed.load(Ordering::Relaxed) {
            *self.local_writes = KeptWrites::default();
        } else if !hashes.is_empty() {
            let kept = &mut *self.local_writes;
            if kept.writes.len() + hashes.len() > LOCAL_WRITES_MAX {
                kept.writes = Vec::new();
                kept.dropped = true;
            } else {
                let index = &*self.index;
                kept.writes.extend(
                    hashes.iter().map(|(id, _)| LocalWrite { id: *id, created: index.get(id).is_none() }),
                );
            }
            self.follow.wake.notify_one();
        }
        let ids = self.index_all(hashes);
        self.own.extend_from_slice(&ids);
        ids
    }

    fn index_all(&mut self, hashes: Vec<(Uuid, tillmesh_sync::ItemHash)>) -> Vec<Uuid> {
        let ids: Vec<Uuid> = hashes.iter().map(|(id, _)| *id).collect();
        self.written.extend_from_slice(&ids);
        for (id, hash) in hashes {
            self.index.insert(id, hash);
        }
        ids
    }
}

/// What a job whose reply was dropped unanswered gets. The thread answers every job it takes,
/// even at shutdown; a dropped reply means the job panicked (and was contained).
const UNANSWERED: TillError =
    TillError::Internal { detail: "the write failed unexpectedly and was not made" };

/// A job's result, held until its batch is flushed.
trait Pending: Send {
    /// The storage error the job met, if it failed on one.
    fn storage_error(&self) -> Option<&StoreError> {
        None
    }

    fn finish(self: Box<Self>, flushed: &Result<(), StoreError>);
}

struct Typed<T> {
    result: Result<T, TillError>,
    reply: oneshot::Sender<Result<T, TillError>>,
}

impl<T: Send> Pending for Typed<T> {
    fn storage_error(&self) -> Option<&StoreError> {
        match &self.result {
            Err(TillError::Store(error)) => Some(error),
            _ => None,
        }
    }

    fn finish(self: Box<Self>, flushed: &Result<(), StoreError>) {
        let answer = match (flushed, self.result) {
            (Err(error), Ok(_)) => Err(TillError::NotDurable { detail: error.to_string() }),
            (_, result) => result,
        };
        // The requester may have gone (client disconnected): nothing to tell then.
        let _ = self.reply.send(answer);
    }
}

/// A job: run against the store (`Ok`), or answered with the error at once (`Err`).
type Job = Box<dyn FnOnce(Result<&mut WriteContext<'_>, TillError>) -> Box<dyn Pending> + Send>;

/// A job whose result nobody waits for (the storage probe).
struct Nothing;

impl Pending for Nothing {
    fn finish(self: Box<Self>, _: &Result<(), StoreError>) {}
}

/// While the store refuses writes, how often the writer tries to open it again.
const RECOVER_EVERY_MS: u64 = 1_000;

/// Handle to the writer thread.
#[derive(Debug)]
pub struct Writer {
    /// `None` once closed: no new jobs are taken.
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    /// Joined by [`Writer::close`].
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Ids of documents written, sent once durable.
    written: broadcast::Sender<Uuid>,
    /// Ids of documents written, sent once readable (a peer's) or durable (this node's own).
    visible: broadcast::Sender<Uuid>,
    /// Whether a sync driver follows this node's own writes.
    follow: Arc<Follow>,
}

/// Whether a sync driver follows this node's own writes, and how it is woken for them.
#[derive(Debug, Default)]
struct Follow {
    followed: AtomicBool,
    wake: Notify,
}

/// A sync driver's hold on this node's own writes ([`Writer::follow_local_writes`]); dropped,
/// the writer stops keeping them.
#[derive(Debug)]
pub struct LocalWritesFollower {
    follow: Arc<Follow>,
}

impl LocalWritesFollower {
    /// Resolves once this node wrote documents that no job has taken
    /// ([`WriteContext::take_local_writes`]) since the last wake; at once if it wrote some
    /// meanwhile.
    pub async fn written(&self) {
        self.follow.wake.notified().await;
    }
}

impl Drop for LocalWritesFollower {
    fn drop(&mut self) {
        self.follow.followed.store(false, Ordering::Relaxed);
    }
}

impl Writer {
    /// Starts the writer thread over `store` and its `index`, with room for `queue_max` jobs.
    pub fn spawn(
        store: Store,
        index: Index,
        queue_max: usize,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Writer> {
        let (sender, receiver) = mpsc::channel::<Job>(queue_max);
        let (written, _) = broadcast::channel(WRITTEN_QUEUE_MAX);
        let (visible, _) = broadcast::channel(WRITTEN_QUEUE_MAX);
        let follow = Arc::new(Follow::default());
        let announce =
            Announce { written: written.clone(), visible: visible.clone(), follow: Arc::clone(&follow) };
        let failing = Arc::new(AtomicBool::new(false));
        let probe = (sender.downgrade(), Arc::clone(&failing));
        // While the store refuses writes, an empty job every second lets the writer try to
        // recover with no write waiting. The thread holds neither the queue nor the store (so
        // closing is not delayed by it) and ends with the queue.
        std::thread::Builder::new().name("tillmesh-storage-probe".into()).spawn(move || {
            let (queue, failing) = probe;
            loop {
                std::thread::sleep(std::time::Duration::from_millis(RECOVER_EVERY_MS));
                let Some(sender) = queue.upgrade() else { return };
                if failing.load(Ordering::Relaxed) {
                    let probe: Job = Box::new(|_| Box::new(Nothing));
                    let _ = sender.try_send(probe);
                }
            }
        })?;
        let thread = std::thread::Builder::new()
            .name("tillmesh-writer".into())
            .spawn(move || run(store, index, receiver, announce, clock.as_ref(), &failing))?;
        Ok(Writer {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            written,
            visible,
            follow,
        })
    }

    /// Keeps this node's own writes for a sync driver from now on, until the returned hold is
    /// dropped: a job takes them ([`WriteContext::take_local_writes`]), and the hold wakes when
    /// there are some. One follower at a time.
    pub fn follow_local_writes(&self) -> LocalWritesFollower {
        self.follow.followed.store(true, Ordering::Relaxed);
        LocalWritesFollower { follow: Arc::clone(&self.follow) }
    }

    /// The ids of documents written from now on, each sent once its batch is durable. A
    /// receiver that falls more than 16,384 ids behind is told it lagged and must rescan.
    pub fn subscribe_written(&self) -> broadcast::Receiver<Uuid> {
        self.written.subscribe()
    }

    /// The ids of documents written from now on, each sent once it can be shown: a document
    /// from a peer as soon as it is stored (before this node's flush: the peer holds it durably),
    /// this node's own writes once durable. Lagging is told as by [`Writer::subscribe_written`].
    pub fn subscribe_visible(&self) -> broadcast::Receiver<Uuid> {
        self.visible.subscribe()
    }

    /// Runs `job` on the writer thread; resolves once everything it wrote is durable. A job
    /// that fails must not have written (storage failures aside).
    pub async fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriteContext<'_>) -> Result<T, TillError> + Send + 'static,
    ) -> Result<T, TillError> {
        let (sender, job, answer) = self.prepare(move |context| context.and_then(job))?;
        sender.send(job).await.map_err(|_| TillError::ShuttingDown)?;
        answer.await.map_err(|_| UNANSWERED)?
    }

    /// Runs `job` on the writer thread even while the store refuses writes: it is then given the
    /// refusal instead of the store. Resolves once everything it wrote is durable.
    pub async fn submit_any<T: Send + 'static>(
        &self,
        job: impl FnOnce(Result<&mut WriteContext<'_>, TillError>) -> T + Send + 'static,
    ) -> Result<T, TillError> {
        let (sender, job, answer) = self.prepare(move |context| Ok(job(context)))?;
        sender.send(job).await.map_err(|_| TillError::ShuttingDown)?;
        answer.await.map_err(|_| UNANSWERED)?
    }

    /// [`Writer::submit`] for a thread outside the async runtime: blocks until durable.
    pub fn submit_blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriteContext<'_>) -> Result<T, TillError> + Send + 'static,
    ) -> Result<T, TillError> {
        let (sender, job, answer) = self.prepare(move |context| context.and_then(job))?;
        sender.blocking_send(job).map_err(|_| TillError::ShuttingDown)?;
        answer.blocking_recv().map_err(|_| UNANSWERED)?
    }

    /// The queue, the job boxed with its reply, and where the answer comes.
    #[allow(clippy::type_complexity)]
    fn prepare<T: Send + 'static>(
        &self,
        job: impl FnOnce(Result<&mut WriteContext<'_>, TillError>) -> Result<T, TillError> + Send + 'static,
    ) -> Result<(mpsc::Sender<Job>, Job, oneshot::Receiver<Result<T, TillError>>), TillError> {
        let sender = self
            .sender
            .lock()
            .map_err(|_| TillError::ShuttingDown)?
            .clone()
            .ok_or(TillError::ShuttingDown)?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |context| Box::new(Typed { result: job(context), reply }));
        Ok((sender, job, answer))
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

/// The writer thread's ends of [`Writer::subscribe_written`], [`Writer::subscribe_visible`] and
/// [`Writer::follow_local_writes`].
struct Announce {
    written: broadcast::Sender<Uuid>,
    visible: broadcast::Sender<Uuid>,
    follow: Arc<Follow>,
}

fn run(
    store: Store,
    mut index: Index,
    mut receiver: mpsc::Receiver<Job>,
    announce: Announce,
    clock: &dyn Clock,
    failing: &AtomicBool,
) {
    let mut recovered_at: Option<std::time::Instant> = None;
    let mut local_writes = KeptWrites::default();
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_JOBS_MAX {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if store.failure().is_some()
            && recovered_at.is_none_or(|at| at.elapsed().as_millis() >= u128::from(RECOVER_EVERY_MS))
        {
            recovered_at = Some(std::time::Instant::now());
            // Between batches: no write in flight. The index is read again from what the disk
            // kept (writes not flushed before the failure may be gone).
            match store.recover().and_then(|()| store.load_index()) {
                Ok(reloaded) => {
                    index = reloaded;
                    failing.store(false, Ordering::Relaxed);
                }
                Err(error) => tracing::debug!(%error, "storage still failing"),
            }
        }
        let failure = store.failure();
        if let Some(failure) = failure {
            // Refused at once, without touching the store: nothing is written, nothing waits.
            for job in batch {
                job(Err(TillError::StorageFailed(failure.clone()))).finish(&Ok(()));
            }
            continue;
        }
        let mut pending = Vec::with_capacity(batch.len());
        let mut written = Vec::new();
        let mut own = Vec::new();
        let now = clock.now();
        for job in batch {
            let mut context = WriteContext {
                store: &store,
                index: &mut index,
                written: &mut written,
                own: &mut own,
                visible: &announce.visible,
                local_writes: &mut local_writes,
                follow: &announce.follow,
                now,
            };
            // A panic is a bug, but it must not end the thread every write goes through: the job
            // is answered with an error (its reply is dropped), the index read again from the
            // store (the job may have stopped between a write and its index update), and the
            // thread goes on.
            match catch_unwind(AssertUnwindSafe(|| job(Ok(&mut context)))) {
                Ok(done) => {
                    // Whatever store call met the disk's error, the store now refuses writes.
                    if let Some(error) = done.storage_error() {
                        store.note_failure(error);
                    }
                    pending.push(done);
                }
                Err(_) => {
                    tracing::error!("a write job panicked: it is not acknowledged; reloading the sync index");
                    match store.load_index() {
                        Ok(reloaded) => index = reloaded,
                        Err(error) => tracing::error!(%error, "cannot reload the sync index"),
                    }
                }
            }
        }
        let flushed = store.flush();
        match &flushed {
            Err(error) => {
                store.note_failure(error);
                tracing::error!(%error, "flush failed: the batch is not acknowledged");
            }
            Ok(()) => {
                // Nobody following the store is fine.
                for id in written {
                    let _ = announce.written.send(id);
                }
                for id in own {
                    let _ = announce.visible.send(id);
                }
            }
        }
        for job in pending {
            job.finish(&flushed);
        }
        if store.failure().is_some() {
            // The batch met the disk's error: sled is poisoned, reads included. Reopen it at
            // once for reads; writes stay refused until recovery, tried from a second on.
            failing.store(true, Ordering::Relaxed);
            recovered_at = Some(std::time::Instant::now());
            match store.reopen().and_then(|()| store.load_index()) {
                Ok(reloaded) => index = reloaded,
                Err(error) => tracing::error!(%error, "cannot reopen the store for reads"),
            }
        }
    }
    if store.failure().is_some() {
        tracing::warn!("stopping with the storage failing: nothing more is flushed");
    } else if let Err(error) = store.flush() {
        tracing::error!(%error, "final flush failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SystemClock;
    use tillmesh_store::StoreOptions;

    /// A job that panics (a bug) is answered with an error and writes nothing acknowledged; the
    /// thread every write goes through keeps taking jobs.
    #[tokio::test]
    async fn a_panicking_job_is_answered_with_an_error_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
        let index = store.load_index().expect("index");
        let writer = Writer::spawn(store, index, 8, Arc::new(SystemClock)).expect("writer");
        let panicked = writer.submit::<()>(|_| panic!("a bug in a job")).await;
        assert!(matches!(panicked, Err(TillError::Internal { .. })), "{panicked:?}");
        for n in 0..3 {
            let answer = writer.submit(move |context| Ok(context.index.len() + n)).await;
            assert_eq!(answer.expect("the writer goes on"), n);
        }
        writer.close();
    }

    /// A peer's document is shown as soon as it is stored, before the batch's flush; the node's
    /// own writes only once durable; both are announced as written once durable.
    #[tokio::test]
    async fn a_peers_document_is_visible_before_the_flush_and_an_own_write_after() {
        use tillmesh_core::{Amount, Currency, Document, NewItem, NewOrder, OrderDoc, Quantity, TillCode};
        use tokio::sync::broadcast::error::TryRecvError;

        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
        let index = store.load_index().expect("index");
        let writer = Arc::new(Writer::spawn(store, index, 8, Arc::new(SystemClock)).expect("writer"));
        let mut visible = writer.subscribe_visible();
        let mut written = writer.subscribe_written();
        for from in [Some("till-B"), None] {
            let new = NewOrder {
                id: Uuid::new_v4(),
                local_id: Uuid::new_v4(),
                number: TillCode::parse("A").expect("code").order_number(1).to_string(),
                device_id: "till-A".into(),
                currency: Currency::parse("EUR").expect("EUR"),
                tax_rate_bps: 0,
                items: vec![NewItem {
                    id: Uuid::new_v4(),
                    sku: "SOUP".into(),
                    name: "Soup".into(),
                    quantity: Quantity::pieces(1),
                    unit_price: Amount::from_minor(450),
                }],
                notes: String::new(),
                created_at: Timestamp(1_764_900_000_000),
            };
            let id = new.id;
            let mut document =
                Document::Order(OrderDoc::create(new, automerge::ActorId::from([1u8; 16])).expect("order"));
            // The job says when it has stored the document, then holds its batch open (no flush)
            // until the test lets it go.
            let (stored, is_stored) = tokio::sync::oneshot::channel::<()>();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let job = {
                let writer = Arc::clone(&writer);
                tokio::spawn(async move {
                    writer
                        .submit(move |context| {
                            let prepared = context.store.prepare(&mut document, None)?;
                            context.put_prepared(&[prepared], from)?;
                            let _ = stored.send(());
                            Ok(released.recv_timeout(std::time::Duration::from_secs(60)).is_ok())
                        })
                        .await
                })
            };
            is_stored.await.expect("the job stores the document");
            if from.is_some() {
                assert_eq!(visible.try_recv().expect("shown while its batch is open"), id);
            } else {
                assert!(matches!(visible.try_recv(), Err(TryRecvError::Empty)), "an own write waits");
            }
            assert!(matches!(written.try_recv(), Err(TryRecvError::Empty)), "not durable yet");
            release.send(()).expect("the job waits");
            assert!(job.await.expect("joined").expect("written"), "the job was let go");
            assert_eq!(written.recv().await.expect("durable"), id);
            if from.is_none() {
                assert_eq!(visible.recv().await.expect("shown once durable"), id);
            }
        }
        writer.close();
    }
}
