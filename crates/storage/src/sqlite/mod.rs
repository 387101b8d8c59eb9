//! The `sqlite://` backend: an embedded, durable, revisioned store with group commit, in-process watches and automatic compaction.
//!
//! Writes only append: each revision adds one `log` row (and one `data` row
//! holding the value), in revision order, so a commit dirties few pages. An
//! in-memory [`KeyIndex`], rebuilt from `log` at start, says which revision
//! holds each key at each revision; reads consult it and fetch values by
//! revision.
//!
//! One writer thread owns the read-write connection. It takes every write
//! request queued at the moment, applies them in one transaction and commits
//! with one fsync (`synchronous=FULL` in WAL mode); only then does it update
//! the index, publish the batch to watchers and answer each caller. Readers
//! use a pool of read-only connections.

mod open;
mod writer;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::index::{KeyIndex, Version};
use crate::watch::{EventLog, Hub};
use crate::{
    Event, KeyValue, ListRequest, ListResponse, Precondition, Revision, Storage, StorageError,
    WatchStream, WriteOp, WriteResult, check_value_size,
};
use open::{key_string, meta_value, range_end, sqlite_error, wal_path};
use writer::{Request, Writer};

/// WAL pages after which the checkpointer copies them into the database.
const CHECKPOINT_PAGES: i32 = 1000;
/// Read-only connections kept open for reuse.
const IDLE_READERS: usize = 8;

/// When history is compacted automatically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// How often the compactor wakes up.
    pub interval: Duration,
    /// History younger than this is kept.
    pub window: Duration,
}

impl Default for CompactionPolicy {
    /// kube-apiserver's default: keep five minutes of history.
    fn default() -> Self {
        CompactionPolicy {
            interval: Duration::from_secs(30),
            window: Duration::from_secs(300),
        }
    }
}

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    requests: Option<mpsc::Sender<Request>>,
    index: Arc<RwLock<KeyIndex>>,
    readers: Arc<Readers>,
    hub: Arc<Hub>,
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    compactor: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl SqliteStore {
    /// Opens (creating if absent) the database at `path`. With a policy,
    /// history older than its window is compacted in the background.
    pub fn open(path: &Path, compaction: Option<CompactionPolicy>) -> Result<Self, StorageError> {
        let display = path.display().to_string();
        open::check_is_sqlite_file(path, &display)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| open::io_error(&display, e))?;
        }
        let mut connection = open::open_writer(path, &display).map_err(|error| match error {
            StorageError::NotKrustDatabase { .. } => error,
            other => open::read_only_cause(path, &display).unwrap_or(other),
        })?;
        let index = open::load_index(&connection).map_err(|e| sqlite_error(&display, e))?;
        let hub = Hub::new(index.revision);
        let index = Arc::new(RwLock::new(index));
        let spawn_error = |e| open::io_error(&display, e);

        let (wal_grew, wal_grown) = mpsc::sync_channel(1);
        connection
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
                if pages >= CHECKPOINT_PAGES {
                    let _ = wal_grew.try_send(());
                }
                Ok(())
            }))
            .map_err(|e| sqlite_error(&display, e))?;
        let restart_due = Arc::new(AtomicBool::new(false));
        let checkpoint_connection = writer::open_checkpointer(path, &display)?;
        let checkpointer = {
            let restart_due = restart_due.clone();
            std::thread::Builder::new()
                .name("sqlite-checkpointer".into())
                .spawn(move || {
                    writer::run_checkpointer(checkpoint_connection, wal_grown, restart_due)
                })
                .map_err(spawn_error)?
        };

        let (requests, incoming) = mpsc::channel();
        let writer = Writer {
            connection,
            display: display.clone(),
            index: index.clone(),
            hub: hub.clone(),
            restart_due,
        };
        let writer = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(incoming))
            .map_err(spawn_error)?;

        let compactor = match compaction {
            Some(policy) => {
                let (stop, stopped) = mpsc::channel();
                let requests = requests.clone();
                let hub = hub.clone();
                let handle = std::thread::Builder::new()
                    .name("sqlite-compactor".into())
                    .spawn(move || writer::run_compactor(policy, hub, requests, stopped))
                    .map_err(spawn_error)?;
                Some((stop, handle))
            }
            None => None,
        };
        Ok(SqliteStore {
            path: path.to_path_buf(),
            requests: Some(requests),
            index,
            readers: Arc::new(Readers {
                path: path.to_path_buf(),
                display,
                idle: Mutex::new(Vec::new()),
            }),
            hub,
            writer: Some(writer),
            checkpointer: Some(checkpointer),
            compactor,
        })
    }

    fn send(&self, request: Request) -> Result<(), StorageError> {
        self.requests
            .as_ref()
            .ok_or(StorageError::Closed)?
            .send(request)
            .map_err(|_| StorageError::Closed)
    }

    async fn write(&self, key: &str, op: WriteOp) -> Result<WriteResult, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Write {
            key: key.to_string(),
            op,
            reply,
        })?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// Fetches the values of `versions` (found in the index at `requested`)
    /// in one read transaction.
    async fn fetch(
        &self,
        versions: Vec<(String, Version)>,
        requested: Revision,
    ) -> Result<Vec<KeyValue>, StorageError> {
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let readers = self.readers.clone();
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || {
            readers.with(|connection| {
                let transaction = connection.unchecked_transaction()?;
                let mut kvs = Vec::with_capacity(versions.len());
                {
                    let mut value_at =
                        transaction.prepare_cached("SELECT value FROM data WHERE rev = ?1")?;
                    for (key, version) in versions {
                        let value: Option<Vec<u8>> = value_at
                            .query_row(params![version.revision], |row| row.get(0))
                            .optional()?;
                        let Some(value) = value else {
                            // Compacted between the index lookup and now.
                            let compacted = index
                                .read()
                                .unwrap_or_else(PoisonError::into_inner)
                                .compacted;
                            return Ok(Err(StorageError::Compacted {
                                requested,
                                compacted,
                            }));
                        };
                        kvs.push(KeyValue {
                            key,
                            value: Bytes::from(value),
                            create_revision: version.create_revision,
                            mod_revision: version.revision,
                            version: version.version,
                        });
                    }
                }
                transaction.commit()?;
                Ok(Ok(kvs))
            })
        })
        .await
        .map_err(|e| StorageError::Backend {
            backend: "sqlite",
            message: format!("read task failed: {e}"),
        })?
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, KeyIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.hub.close();
        if let Some((stop, handle)) = self.compactor.take() {
            drop(stop);
            let _ = handle.join();
        }
        // Closing the channel ends the writer after it drains queued
        // requests; the writer's end drops the checkpointer's wake-up channel.
        self.requests.take();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
        if let Some(handle) = self.checkpointer.take() {
            let _ = handle.join();
        }
    }
}

#[async_trait]
impl Storage for SqliteStore {
    async fn get(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>, StorageError> {
        let found = {
            let index = self.read_index();
            let at = index.read_revision(revision)?;
            index.at(key, at)
        };
        match found {
            Some(version) => Ok(self
                .fetch(vec![(key.to_string(), version)], revision)
                .await?
                .pop()),
            None => Ok(None),
        }
    }

    async fn list(&self, request: ListRequest) -> Result<ListResponse, StorageError> {
        let (at, versions, count) = {
            let index = self.read_index();
            let at = index.read_revision(request.revision)?;
            let (versions, count) = index.range(
                &request.prefix,
                request.start_after.as_deref(),
                at,
                request.limit,
            );
            (at, versions, count)
        };
        let kvs = self.fetch(versions, request.revision).await?;
        Ok(ListResponse {
            more: (kvs.len() as i64) < count,
            kvs,
            count,
            revision: at,
        })
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<WriteResult, StorageError> {
        check_value_size(key, &value)?;
        self.write(
            key,
            WriteOp::Put {
                value,
                precondition,
            },
        )
        .await
    }

    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
    ) -> Result<WriteResult, StorageError> {
        self.write(key, WriteOp::Delete { precondition }).await
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StorageError> {
        Ok(self.hub.watch(self.readers.clone(), prefix, from))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        loop {
            let (reply, answer) = oneshot::channel();
            self.send(Request::Compact {
                target: revision,
                reply,
            })?;
            let reached = answer.await.map_err(|_| StorageError::Closed)??;
            if reached >= revision {
                return Ok(());
            }
        }
    }

    async fn current_revision(&self) -> Result<Revision, StorageError> {
        Ok(self.read_index().revision)
    }

    async fn db_size(&self) -> Result<u64, StorageError> {
        let main = fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let wal = fs::metadata(wal_path(&self.path))
            .map(|m| m.len())
            .unwrap_or(0);
        Ok(main + wal)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// The pool of read-only connections; also the watch's history source.
struct Readers {
    path: PathBuf,
    display: String,
    idle: Mutex<Vec<Connection>>,
}

impl EventLog for Readers {
    fn read_events(
        &self,
        prefix: &str,
        from: Revision,
        to: Revision,
    ) -> Result<Vec<Event>, StorageError> {
        let lower = prefix.as_bytes().to_vec();
        let upper = range_end(prefix);
        self.with(move |connection| {
            let transaction = connection.unchecked_transaction()?;
            let compacted = meta_value(&transaction, "compacted")?;
            if from <= compacted {
                return Ok(Err(StorageError::Compacted {
                    requested: from,
                    compacted,
                }));
            }
            let events = transaction
                .prepare_cached(
                    "SELECT l.rev, l.key, l.create_rev, l.version, d.value,
                            p.rev, p.create_rev, p.version, pd.value
                     FROM log l
                     LEFT JOIN data d ON d.rev = l.rev
                     LEFT JOIN log p ON l.prev_rev > 0 AND p.rev = l.prev_rev
                     LEFT JOIN data pd ON pd.rev = p.rev
                     WHERE l.rev >= ?1 AND l.rev <= ?2 AND l.key >= ?3 AND l.key < ?4
                     ORDER BY l.rev",
                )?
                .query_map(params![from, to, lower, upper], event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            transaction.commit()?;
            Ok(Ok(events))
        })
    }
}

/// Reads one `log` row joined with its value and its predecessor's.
fn event_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let revision: Revision = row.get(0)?;
    let key = key_string(row.get_ref(1)?.as_blob()?)?;
    let value = row
        .get_ref(4)?
        .as_blob_or_null()?
        .map(Bytes::copy_from_slice);
    let kv = KeyValue {
        key: key.clone(),
        value: value.unwrap_or_default(),
        create_revision: row.get(2)?,
        mod_revision: revision,
        version: row.get(3)?,
    };
    let prev = match (
        row.get::<_, Option<Revision>>(5)?,
        row.get_ref(8)?.as_blob_or_null()?,
    ) {
        (Some(prev_revision), Some(value)) => Some(KeyValue {
            key,
            value: Bytes::copy_from_slice(value),
            create_revision: row.get(6)?,
            mod_revision: prev_revision,
            version: row.get(7)?,
        }),
        _ => None,
    };
    Ok(WriteResult { revision, kv, prev }.to_event())
}
impl Readers {
    fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let connection = Connection::open_with_flags(&self.path, flags)
                    .map_err(|e| sqlite_error(&self.display, e))?;
                connection
                    .busy_timeout(Duration::from_secs(5))
                    .map_err(|e| sqlite_error(&self.display, e))?;
                connection
            }
        };
        let result = read(&connection).map_err(|e| sqlite_error(&self.display, e));
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(connection);
        }
        result?
    }
}
