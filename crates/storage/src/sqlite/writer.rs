//! The single writer thread (group commit, compaction) and its helpers: the WAL checkpointer and the automatic compactor.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::CompactionPolicy;
use super::open::{WAL_SIZE_LIMIT, sqlite_error};
use crate::index::{KeyIndex, Version, unreachable_after_compaction};
use crate::watch::{CommittedBatch, Hub};
use crate::{Event, KeyValue, Revision, StorageError, WriteOp, WriteResult, plan_write};

/// Most write requests applied in one transaction.
const MAX_BATCH: usize = 1024;
/// Revisions one compaction transaction covers, so writers wait briefly.
const COMPACTION_CHUNK: Revision = 10_000;

pub(super) type Reply = oneshot::Sender<Result<WriteResult, StorageError>>;

/// Requests the writer thread serves, in arrival order.
pub(super) enum Request {
    Write {
        key: String,
        op: WriteOp,
        reply: Reply,
    },
    /// Compacts up to `target`, at most one chunk; answers the new compacted revision.
    Compact {
        target: Revision,
        reply: oneshot::Sender<Result<Revision, StorageError>>,
    },
}

/// The writer thread's state; the only holder of the read-write connection
/// that changes data, and the only mutator of the key index.
pub(super) struct Writer {
    pub connection: Connection,
    pub display: String,
    pub index: Arc<RwLock<KeyIndex>>,
    pub hub: Arc<Hub>,
    /// Set by the checkpointer: the WAL should start over after this batch.
    pub restart_due: Arc<AtomicBool>,
}

impl Writer {
    pub fn run(mut self, incoming: mpsc::Receiver<Request>) {
        let mut writes = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = incoming.recv() {
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Write { key, op, reply } => writes.push((key, op, reply)),
                    Request::Compact { target, reply } => {
                        // Writes queued before the compaction commit first.
                        self.commit_batch(&mut writes);
                        let _ = reply.send(self.compact_chunk(target));
                    }
                }
                if writes.len() < MAX_BATCH {
                    next = incoming.try_recv().ok();
                }
            }
            self.commit_batch(&mut writes);
            if self.restart_due.swap(false, Ordering::AcqRel)
                && let Err(error) = self
                    .connection
                    .execute_batch("PRAGMA wal_checkpoint(RESTART);")
            {
                tracing::warn!(%error, "WAL restart failed");
            }
        }
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, KeyIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies and commits `writes` as one transaction, then answers each.
    fn commit_batch(&mut self, writes: &mut Vec<(String, WriteOp, Reply)>) {
        if writes.is_empty() {
            return;
        }
        let first = self.index().revision + 1;
        match self.apply(writes) {
            Ok(outcomes) => {
                let mut events = Vec::new();
                {
                    let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
                    for result in outcomes.iter().flatten() {
                        let version = Version {
                            revision: result.revision,
                            create_revision: result.kv.create_revision,
                            version: result.kv.version,
                        };
                        index.record(&result.kv.key, version);
                        events.push(result.to_event());
                    }
                }
                if let Some(last) = events.last().map(Event::revision) {
                    self.hub.publish(CommittedBatch {
                        first,
                        last,
                        events,
                    });
                }
                for ((_, _, reply), outcome) in writes.drain(..).zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                let error = sqlite_error(&self.display, error);
                tracing::warn!(%error, "write batch failed; nothing of it was stored");
                for (_, _, reply) in writes.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// One transaction for the whole batch: all of its successful writes
    /// commit together or none do. Later writes in a batch see earlier ones.
    fn apply(
        &mut self,
        writes: &[(String, WriteOp, Reply)],
    ) -> rusqlite::Result<Vec<Result<WriteResult, StorageError>>> {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        let mut revision = index.revision;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(writes.len());
        // The state each key reached earlier in this batch (None: deleted).
        let mut written: HashMap<&str, Option<KeyValue>> = HashMap::new();
        {
            let mut value_at =
                transaction.prepare_cached("SELECT value FROM data WHERE rev = ?1")?;
            let mut log = transaction.prepare_cached(
                "INSERT INTO log (rev, key, create_rev, version, prev_rev) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut data =
                transaction.prepare_cached("INSERT INTO data (rev, value) VALUES (?1, ?2)")?;
            for (key, op, _) in writes {
                let current = match written.get(key.as_str()) {
                    Some(state) => state.clone(),
                    None => match index.current(key) {
                        Some(version) => {
                            let value: Vec<u8> = value_at
                                .query_row(params![version.revision], |row| row.get(0))
                                .optional()?
                                .unwrap_or_default();
                            Some(KeyValue {
                                key: key.clone(),
                                value: Bytes::from(value),
                                create_revision: version.create_revision,
                                mod_revision: version.revision,
                                version: version.version,
                            })
                        }
                        None => None,
                    },
                };
                let outcome = plan_write(key, current, op, revision + 1);
                if let Ok(result) = &outcome {
                    revision += 1;
                    let prev_rev = result.prev.as_ref().map_or(0, |prev| prev.mod_revision);
                    log.execute(params![
                        revision,
                        key.as_bytes(),
                        result.kv.create_revision,
                        result.kv.version,
                        prev_rev
                    ])?;
                    let deleted = result.kv.version == 0;
                    if !deleted {
                        data.execute(params![revision, result.kv.value.as_ref()])?;
                    }
                    written.insert(key, (!deleted).then(|| result.kv.clone()));
                }
                outcomes.push(outcome);
            }
        }
        if revision > index.revision {
            transaction
                .prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")?
                .execute(params![revision])?;
        }
        drop(index);
        transaction.commit()?;
        Ok(outcomes)
    }

    /// Compacts one chunk toward `target`; returns the compacted revision.
    fn compact_chunk(&mut self, target: Revision) -> Result<Revision, StorageError> {
        let (current, compacted) = {
            let index = self.index();
            (index.revision, index.compacted)
        };
        if target > current {
            return Err(StorageError::FutureRevision {
                requested: target,
                current,
            });
        }
        if target <= compacted {
            return Err(StorageError::Compacted {
                requested: target,
                compacted,
            });
        }
        let upto = target.min(compacted + COMPACTION_CHUNK);
        let dropped = self
            .delete_unreachable(compacted, upto)
            .map_err(|e| sqlite_error(&self.display, e))?;
        {
            let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
            for (key, revision) in &dropped {
                index.forget(key, *revision);
            }
            index.compacted = upto;
        }
        if upto == target {
            self.reclaim_space();
        }
        Ok(upto)
    }

    /// Deletes the rows no read at or after `upto` can need: versions
    /// replaced by a write in `(after, upto]`, and deletions in that range.
    /// Returns them as (key, revision) for the index to forget.
    fn delete_unreachable(
        &mut self,
        after: Revision,
        upto: Revision,
    ) -> rusqlite::Result<Vec<(String, Revision)>> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut dropped = Vec::new();
        {
            let mut rows = transaction.prepare_cached(
                "SELECT rev, key, prev_rev, version FROM log WHERE rev > ?1 AND rev <= ?2",
            )?;
            let mut rows = rows.query(params![after, upto])?;
            while let Some(row) = rows.next()? {
                let key = super::open::key_string(row.get_ref(1)?.as_blob()?)?;
                let (revision, prev, version): (Revision, Revision, i64) =
                    (row.get(0)?, row.get(2)?, row.get(3)?);
                for unreachable in unreachable_after_compaction(revision, prev, version == 0) {
                    dropped.push((key.clone(), unreachable));
                }
            }
        }
        {
            let mut log = transaction.prepare_cached("DELETE FROM log WHERE rev = ?1")?;
            let mut data = transaction.prepare_cached("DELETE FROM data WHERE rev = ?1")?;
            for (_, revision) in &dropped {
                log.execute(params![revision])?;
                data.execute(params![revision])?;
            }
        }
        transaction
            .prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'compacted'")?
            .execute(params![upto])?;
        transaction.commit()?;
        Ok(dropped)
    }

    /// Returns free pages to the file system when a quarter or more of the
    /// file is free. (The WAL is bounded by `journal_size_limit`.)
    fn reclaim_space(&mut self) {
        let pages = |pragma: &str| -> i64 {
            self.connection
                .pragma_query_value(None, pragma, |row| row.get(0))
                .unwrap_or(0)
        };
        let (total, free) = (pages("page_count"), pages("freelist_count"));
        if free > 0
            && free * 4 >= total
            && let Err(error) = self.connection.execute_batch("PRAGMA incremental_vacuum;")
        {
            tracing::warn!(%error, "incremental vacuum failed");
        }
    }
}

/// A second read-write connection, used only to checkpoint the WAL.
pub(super) fn open_checkpointer(path: &Path, display: &str) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection =
        Connection::open_with_flags(path, flags).map_err(|e| sqlite_error(display, e))?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(|e| sqlite_error(display, e))?;
    connection
        .pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(|e| sqlite_error(display, e))?;
    Ok(connection)
}

/// Copies committed WAL frames into the database while the writer goes on:
/// a PASSIVE checkpoint takes no lock the writer needs, so commits never
/// wait for it. Woken by the writer's WAL hook once the WAL is large.
///
/// A PASSIVE checkpoint alone never lets a busy WAL start over (new frames
/// keep arriving while it copies), which is how WAL files grow without
/// bound; hence the writer's RESTART right after each one.
pub(super) fn run_checkpointer(
    connection: Connection,
    wal_grew: mpsc::Receiver<()>,
    restart_due: Arc<AtomicBool>,
) {
    while wal_grew.recv().is_ok() {
        match connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
            // Frames committed while this ran are still only in the WAL; the
            // writer copies those few and restarts the WAL between batches.
            Ok(()) => restart_due.store(true, Ordering::Release),
            Err(error) => tracing::warn!(%error, "WAL checkpoint failed"),
        }
    }
    let _ = connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
}

/// Every `interval`, compacts to the newest revision at least `window` old.
pub(super) fn run_compactor(
    policy: CompactionPolicy,
    hub: Arc<Hub>,
    requests: mpsc::Sender<Request>,
    stop: mpsc::Receiver<()>,
) {
    let mut samples: VecDeque<(Instant, Revision)> = VecDeque::new();
    let mut compacted = 0;
    loop {
        match stop.recv_timeout(policy.interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        samples.push_back((Instant::now(), hub.head()));
        let cutoff = Instant::now().checked_sub(policy.window);
        let old_enough = |at: &Instant| cutoff.is_some_and(|cutoff| *at <= cutoff);
        // Keep the newest sample that is old enough; older ones are moot.
        while samples.len() > 1 && old_enough(&samples[1].0) {
            samples.pop_front();
        }
        let target = match samples.front() {
            Some((at, revision)) if old_enough(at) => *revision,
            _ => continue,
        };
        while compacted < target {
            let (reply, answer) = oneshot::channel();
            if requests.send(Request::Compact { target, reply }).is_err() {
                return;
            }
            match answer.blocking_recv() {
                Ok(Ok(reached)) => compacted = reached,
                Ok(Err(StorageError::Compacted {
                    compacted: done, ..
                })) => compacted = done,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "automatic compaction failed");
                    break;
                }
                Err(_) => return,
            }
        }
    }
}
