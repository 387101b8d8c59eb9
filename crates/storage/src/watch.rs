//! In-process watch fan-out for the embedded backends: a broadcast of committed batches, with catch-up from the stored history.
//!
//! A watcher never holds up writers. Each committed batch is broadcast once;
//! a watcher that falls behind the broadcast (or starts from an old revision)
//! reads the missing revisions back from the backend's history, then rejoins
//! the live broadcast. Revisions are strictly ordered, so dropping anything
//! below the next expected revision makes replay and live delivery meet
//! without gaps or duplicates.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::{Event, Revision, StorageError, WatchStream};

/// Revisions replayed from history per read, so a far-behind watcher never
/// loads an unbounded slice of history at once.
const CATCH_UP_CHUNK: Revision = 1024;
/// Committed batches the broadcast keeps for watchers that are briefly slow.
const BROADCAST_BATCHES: usize = 4096;
/// Events buffered between a watcher's task and its consumer.
const WATCHER_BUFFER: usize = 256;

/// The events one commit produced, revisions `first..=last` with no gaps.
#[derive(Debug)]
pub(crate) struct CommittedBatch {
    pub first: Revision,
    pub last: Revision,
    pub events: Vec<Event>,
}

/// Read access to stored history, implemented by each embedded backend.
pub(crate) trait EventLog: Send + Sync + 'static {
    /// Events under `prefix` with revisions in `from..=to`, in order.
    /// Fails with [`StorageError::Compacted`] when `from` is not after the
    /// compacted revision, checked atomically with the read.
    fn read_events(
        &self,
        prefix: &str,
        from: Revision,
        to: Revision,
    ) -> Result<Vec<Event>, StorageError>;
}

/// Publishes committed batches to every watcher.
pub(crate) struct Hub {
    sender: broadcast::Sender<Arc<CommittedBatch>>,
    head: AtomicI64,
    closed: watch::Sender<bool>,
}

impl Hub {
    pub fn new(head: Revision) -> Arc<Self> {
        let (sender, _) = broadcast::channel(BROADCAST_BATCHES);
        Arc::new(Hub {
            sender,
            head: AtomicI64::new(head),
            closed: watch::Sender::new(false),
        })
    }

    /// The newest revision whose batch has been published.
    pub fn head(&self) -> Revision {
        self.head.load(Ordering::Acquire)
    }

    /// Announces a durable commit. Called by the single writer, in order.
    pub fn publish(&self, batch: CommittedBatch) {
        // The head moves before the send: a watcher that sees a batch can
        // always catch up to at least its last revision from history.
        self.head.store(batch.last, Ordering::Release);
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Arc::new(batch));
        }
    }

    /// Ends every watch with [`StorageError::Closed`].
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Starts a watch of `prefix` from revision `from` (0: from now on).
    pub fn watch(
        self: &Arc<Self>,
        log: Arc<dyn EventLog>,
        prefix: &str,
        from: Revision,
    ) -> WatchStream {
        let receiver = self.sender.subscribe();
        let next = if from <= 0 { self.head() + 1 } else { from };
        let (out, stream) = mpsc::channel(WATCHER_BUFFER);
        let watcher = Watcher {
            hub: self.clone(),
            log,
            prefix: prefix.to_string(),
            next,
            receiver,
            closed: self.closed.subscribe(),
            out,
        };
        tokio::spawn(watcher.run());
        Box::pin(ReceiverStream::new(stream))
    }
}

/// One watch's delivery loop; `next` is the lowest revision not yet delivered.
struct Watcher {
    hub: Arc<Hub>,
    log: Arc<dyn EventLog>,
    prefix: String,
    next: Revision,
    receiver: broadcast::Receiver<Arc<CommittedBatch>>,
    closed: watch::Receiver<bool>,
    out: mpsc::Sender<Result<Event, StorageError>>,
}

/// What the live phase found when it stopped.
enum Live {
    /// Revisions are missing from the broadcast: replay from history.
    CatchUp,
    /// The consumer went away or the store closed.
    Stop,
}

impl Watcher {
    async fn run(mut self) {
        loop {
            if *self.closed.borrow() {
                let _ = self.out.send(Err(StorageError::Closed)).await;
                return;
            }
            if self.next <= self.hub.head() {
                if !self.catch_up().await {
                    return;
                }
                continue;
            }
            match self.live().await {
                Live::CatchUp => continue,
                Live::Stop => return,
            }
        }
    }

    /// Replays one chunk of history; false when the watch is over.
    async fn catch_up(&mut self) -> bool {
        let to = self.hub.head().min(self.next + CATCH_UP_CHUNK - 1);
        let log = self.log.clone();
        let prefix = self.prefix.clone();
        let from = self.next;
        let read = tokio::task::spawn_blocking(move || log.read_events(&prefix, from, to)).await;
        let events = match read {
            Ok(Ok(events)) => events,
            Ok(Err(error)) => {
                let _ = self.out.send(Err(error)).await;
                return false;
            }
            Err(join) => {
                let error = StorageError::Backend {
                    backend: "watch",
                    message: format!("history read failed: {join}"),
                };
                let _ = self.out.send(Err(error)).await;
                return false;
            }
        };
        for event in events {
            if self.out.send(Ok(event)).await.is_err() {
                return false;
            }
        }
        self.next = to + 1;
        true
    }

    async fn live(&mut self) -> Live {
        loop {
            let received = tokio::select! {
                _ = self.out.closed() => return Live::Stop,
                _ = self.closed.wait_for(|closed| *closed) => return Live::CatchUp,
                received = self.receiver.recv() => received,
            };
            let batch = match received {
                Ok(batch) => batch,
                Err(broadcast::error::RecvError::Lagged(_)) => return Live::CatchUp,
                Err(broadcast::error::RecvError::Closed) => return Live::Stop,
            };
            if batch.last < self.next {
                continue;
            }
            if batch.first > self.next {
                return Live::CatchUp;
            }
            for event in &batch.events {
                if event.revision() >= self.next
                    && event.kv.key.starts_with(&self.prefix)
                    && self.out.send(Ok(event.clone())).await.is_err()
                {
                    return Live::Stop;
                }
            }
            self.next = batch.last + 1;
        }
    }
}
