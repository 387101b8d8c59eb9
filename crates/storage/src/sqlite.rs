//! The `sqlite://` backend: an embedded, durable, revisioned store with group commit, in-process watches and automatic compaction.
//!
//! Layout: `history` holds one row per revision (a tombstone for a delete,
//! with `prev_rev` naming the version it replaced); `current` maps each live
//! key to its newest row; `meta` holds the current and compacted revisions.
//!
//! One writer thread owns the only read-write connection. It takes every
//! write request queued at the moment, applies them in one transaction and
//! commits with one fsync (`synchronous=FULL` in WAL mode), then publishes
//! the batch to watchers and answers each caller. Readers use a pool of
//! read-only connections, each read in its own snapshot transaction.

use std::collections::VecDeque;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::watch::{CommittedBatch, EventLog, Hub};
use crate::{
    Event, KeyValue, ListRequest, ListResponse, Precondition, Revision, Storage, StorageError,
    WatchStream, WriteOp, WriteResult, check_value_size, plan_write,
};

/// Marks a file as a krust database (`PRAGMA application_id`), "krst".
const APPLICATION_ID: i32 = 0x6b72_7374;
const SCHEMA_VERSION: i32 = 1;
/// Most write requests applied in one transaction.
const MAX_BATCH: usize = 1024;
/// Revisions one compaction transaction covers, so writers wait briefly.
const COMPACTION_CHUNK: Revision = 10_000;
/// The WAL is truncated back to this size after checkpoints.
const WAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;
/// WAL pages after which the checkpointer copies them into the database.
const CHECKPOINT_PAGES: i32 = 2000;
/// Read-only connections kept open for reuse.
const IDLE_READERS: usize = 8;

const SCHEMA: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
CREATE TABLE history (
    rev INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    value BLOB,
    create_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL
);
CREATE INDEX history_key_rev ON history (key, rev);
CREATE TABLE current (key BLOB PRIMARY KEY, rev INTEGER NOT NULL) WITHOUT ROWID;
";

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

/// Requests the writer thread serves, in arrival order.
enum Request {
    Write {
        key: String,
        op: WriteOp,
        reply: oneshot::Sender<Result<WriteResult, StorageError>>,
    },
    /// Compacts up to `target`, at most one chunk; answers the new compacted revision.
    Compact {
        target: Revision,
        reply: oneshot::Sender<Result<Revision, StorageError>>,
    },
}

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    requests: Option<mpsc::Sender<Request>>,
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
        check_is_sqlite_file(path, &display)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| io_error(&display, e))?;
        }
        let connection = open_writer(path, &display).map_err(|error| match error {
            StorageError::NotKrustDatabase { .. } => error,
            other => read_only_cause(path, &display).unwrap_or(other),
        })?;
        let (revision, compacted) =
            read_meta(&connection).map_err(|e| sqlite_error(&display, e))?;
        let hub = Hub::new(revision);
        let readers = Arc::new(Readers {
            path: path.to_path_buf(),
            display: display.clone(),
            idle: Mutex::new(Vec::new()),
        });
        let (requests, incoming) = mpsc::channel();
        let (wal_grew, commits) = mpsc::sync_channel(1);
        let mut connection = connection;
        connection
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
                if pages >= CHECKPOINT_PAGES {
                    let _ = wal_grew.try_send(());
                }
                Ok(())
            }))
            .map_err(|e| sqlite_error(&display, e))?;
        let checkpoint_connection = open_checkpointer(path, &display)?;
        let checkpointer = std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || run_checkpointer(checkpoint_connection, commits))
            .map_err(|e| io_error(&display, e))?;
        let writer_state = Writer {
            connection,
            display: display.clone(),
            revision,
            compacted,
            hub: hub.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_state.run(incoming))
            .map_err(|e| io_error(&display, e))?;
        let compactor = match compaction {
            Some(policy) => {
                let (stop, stopped) = mpsc::channel();
                let requests = requests.clone();
                let hub = hub.clone();
                let handle = std::thread::Builder::new()
                    .name("sqlite-compactor".into())
                    .spawn(move || run_compactor(policy, hub, requests, stopped))
                    .map_err(|e| io_error(&display, e))?;
                Some((stop, handle))
            }
            None => None,
        };
        Ok(SqliteStore {
            path: path.to_path_buf(),
            requests: Some(requests),
            readers,
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

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<Result<T, StorageError>> + Send + 'static,
    ) -> Result<T, StorageError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(read))
            .await
            .map_err(|e| StorageError::Backend {
                backend: "sqlite",
                message: format!("read task failed: {e}"),
            })?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.hub.close();
        if let Some((stop, handle)) = self.compactor.take() {
            drop(stop);
            let _ = handle.join();
        }
        // Closing the channel ends the writer after it drains queued requests.
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
        let key = key.to_string();
        self.read(move |connection| {
            let transaction = connection.unchecked_transaction()?;
            let at = match checked_read_revision(&transaction, revision)? {
                Ok(at) => at,
                Err(error) => return Ok(Err(error)),
            };
            let kv = if revision == 0 {
                transaction
                    .prepare_cached(
                        "SELECT h.key, h.value, h.create_rev, h.rev, h.version FROM current c
                         JOIN history h ON h.rev = c.rev WHERE c.key = ?1",
                    )?
                    .query_row(params![key.as_bytes()], key_value_row)
                    .optional()?
            } else {
                transaction
                    .prepare_cached(
                        "SELECT key, value, create_rev, rev, version FROM history
                         WHERE key = ?1 AND rev <= ?2 ORDER BY rev DESC LIMIT 1",
                    )?
                    .query_row(params![key.as_bytes(), at], |row| {
                        let tombstone = row.get_ref(1)?.as_blob_or_null()?.is_none();
                        if tombstone {
                            Ok(None)
                        } else {
                            key_value_row(row).map(Some)
                        }
                    })
                    .optional()?
                    .flatten()
            };
            transaction.commit()?;
            Ok(Ok(kv))
        })
        .await
    }

    async fn list(&self, request: ListRequest) -> Result<ListResponse, StorageError> {
        self.read(move |connection| {
            let transaction = connection.unchecked_transaction()?;
            let head = meta_value(&transaction, "revision")?;
            let at = match checked_read_revision(&transaction, request.revision)? {
                Ok(at) => at,
                Err(error) => return Ok(Err(error)),
            };
            let lower = lower_bound(&request);
            let upper = range_end(&request.prefix);
            let limit = if request.limit == 0 {
                -1
            } else {
                request.limit as i64
            };
            let (rows_sql, count_sql) = if at == head {
                (
                    "SELECT h.key, h.value, h.create_rev, h.rev, h.version FROM current c
                     JOIN history h ON h.rev = c.rev
                     WHERE c.key >= ?1 AND c.key < ?2 AND ?3 = ?3 ORDER BY c.key LIMIT ?4",
                    "SELECT count(*) FROM current WHERE key >= ?1 AND key < ?2 AND ?3 = ?3",
                )
            } else {
                (
                    "SELECT h.key, h.value, h.create_rev, h.rev, h.version FROM history h
                     WHERE h.key >= ?1 AND h.key < ?2 AND h.value IS NOT NULL
                       AND h.rev = (SELECT max(h2.rev) FROM history h2
                                    WHERE h2.key = h.key AND h2.rev <= ?3)
                     ORDER BY h.key LIMIT ?4",
                    "SELECT count(*) FROM history h
                     WHERE h.key >= ?1 AND h.key < ?2 AND h.value IS NOT NULL
                       AND h.rev = (SELECT max(h2.rev) FROM history h2
                                    WHERE h2.key = h.key AND h2.rev <= ?3)",
                )
            };
            let kvs = transaction
                .prepare_cached(rows_sql)?
                .query_map(params![lower, upper, at, limit], key_value_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let count = if limit > 0 && kvs.len() as i64 == limit {
                transaction
                    .prepare_cached(count_sql)?
                    .query_row(params![lower, upper, at], |row| row.get(0))?
            } else {
                kvs.len() as i64
            };
            transaction.commit()?;
            Ok(Ok(ListResponse {
                more: (kvs.len() as i64) < count,
                kvs,
                count,
                revision: at,
            }))
        })
        .await
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
        Ok(self.hub.head())
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

/// Refuses, without writing to it, a file that is not SQLite at all.
fn check_is_sqlite_file(path: &Path, display: &str) -> Result<(), StorageError> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(display, e)),
    };
    if file.metadata().map_err(|e| io_error(display, e))?.is_dir() {
        return Err(StorageError::NotKrustDatabase {
            path: display.to_string(),
            reason: "is a directory".into(),
        });
    }
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(io_error(display, e)),
        }
    }
    if read == 0 || &header[..read] == b"SQLite format 3\0" {
        return Ok(());
    }
    Err(StorageError::NotKrustDatabase {
        path: display.to_string(),
        reason: "file is not an SQLite database".into(),
    })
}

/// Opens the read-write connection, creating the schema in a new file and
/// refusing SQLite files that belong to something else.
fn open_writer(path: &Path, display: &str) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection =
        Connection::open_with_flags(path, flags).map_err(|e| sqlite_error(display, e))?;
    let fail = |e| sqlite_error(display, e);
    let application_id: i32 = connection
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(fail)?;
    let objects: i64 = connection
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .map_err(fail)?;
    if application_id != APPLICATION_ID && objects > 0 {
        return Err(StorageError::NotKrustDatabase {
            path: display.to_string(),
            reason: format!(
                "an SQLite database of another application (application_id {application_id:#x})"
            ),
        });
    }
    if objects == 0 {
        // auto_vacuum must be chosen before the first table exists.
        connection
            .execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")
            .map_err(fail)?;
    }
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .map_err(fail)?;
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(fail)?;
    connection
        .pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(fail)?;
    connection
        .pragma_update(None, "cache_size", -16_000)
        .map_err(fail)?;
    // Checkpoints run on their own thread so commits never wait for them.
    connection
        .pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(fail)?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(fail)?;
    if objects == 0 {
        let schema = format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        );
        connection.execute_batch(&schema).map_err(fail)?;
    } else {
        let version: i32 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(fail)?;
        if version != SCHEMA_VERSION {
            return Err(StorageError::NotKrustDatabase {
                path: display.to_string(),
                reason: format!(
                    "schema version {version}, this krust reads version {SCHEMA_VERSION}"
                ),
            });
        }
        // Proves now, not at the first write, that the file can be written.
        connection
            .execute_batch(
                "BEGIN IMMEDIATE; UPDATE meta SET value = value WHERE name = 'revision'; COMMIT;",
            )
            .map_err(fail)?;
    }
    Ok(connection)
}

/// When the database cannot be opened, says so plainly if the reason is
/// that its file or directory cannot be written.
fn read_only_cause(path: &Path, display: &str) -> Option<StorageError> {
    let probe = if path.exists() {
        fs::OpenOptions::new().append(true).open(path).map(drop)
    } else {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let probe_path = dir.join(".krust-write-probe");
        fs::File::create(&probe_path).map(|_| {
            let _ = fs::remove_file(&probe_path);
        })
    };
    match io_error(display, probe.err()?) {
        read_only @ StorageError::ReadOnly { .. } => Some(read_only),
        _ => None,
    }
}

fn read_meta(connection: &Connection) -> rusqlite::Result<(Revision, Revision)> {
    Ok((
        meta_value(connection, "revision")?,
        meta_value(connection, "compacted")?,
    ))
}

fn meta_value(connection: &Connection, name: &str) -> rusqlite::Result<Revision> {
    connection
        .prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row(params![name], |row| row.get(0))
}

/// The revision a read at `requested` (0: current) is served at, or why not.
fn checked_read_revision(
    connection: &Connection,
    requested: Revision,
) -> rusqlite::Result<Result<Revision, StorageError>> {
    let (current, compacted) = read_meta(connection)?;
    Ok(if requested == 0 {
        Ok(current)
    } else if requested > current {
        Err(StorageError::FutureRevision { requested, current })
    } else if requested < compacted {
        Err(StorageError::Compacted {
            requested,
            compacted,
        })
    } else {
        Ok(requested)
    })
}

/// The inclusive lower key bound of a list: the prefix, or just past
/// `start_after` when that is further on.
fn lower_bound(request: &ListRequest) -> Vec<u8> {
    match &request.start_after {
        Some(after) if after.as_str() >= request.prefix.as_str() => {
            let mut bound = after.as_bytes().to_vec();
            bound.push(0);
            bound
        }
        _ => request.prefix.as_bytes().to_vec(),
    }
}

/// The exclusive upper key bound of a prefix. Keys are UTF-8, which never
/// contains the byte 0xFF, so `[0xFF]` bounds the empty prefix.
fn range_end(prefix: &str) -> Vec<u8> {
    crate::prefix_end(prefix).unwrap_or_else(|| vec![0xff])
}

/// Reads `key, value, create_rev, rev, version` into a KeyValue.
fn key_value_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(row.get_ref(0)?.as_blob()?)?,
        value: Bytes::copy_from_slice(row.get_ref(1)?.as_blob()?),
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
        version: row.get(4)?,
    })
}

fn key_string(bytes: &[u8]) -> rusqlite::Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| rusqlite::Error::Utf8Error(0, e.utf8_error()))
}

fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn io_error(display: &str, error: std::io::Error) -> StorageError {
    match error.raw_os_error() {
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => StorageError::ReadOnly {
            path: display.to_string(),
            reason: error.to_string(),
        },
        Some(libc::ENOSPC) => StorageError::DiskFull {
            path: display.to_string(),
            reason: error.to_string(),
        },
        _ => StorageError::Backend {
            backend: "sqlite",
            message: format!("{display}: {error}"),
        },
    }
}

/// Names the cause of an SQLite failure in one line.
fn sqlite_error(display: &str, error: rusqlite::Error) -> StorageError {
    let reason = error.to_string().replace('\n', " ");
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StorageError::DiskFull {
            path: display.to_string(),
            reason,
        },
        Some(ErrorCode::ReadOnly) => StorageError::ReadOnly {
            path: display.to_string(),
            reason,
        },
        Some(ErrorCode::NotADatabase) => StorageError::NotKrustDatabase {
            path: display.to_string(),
            reason,
        },
        Some(ErrorCode::CannotOpen) => {
            let readonly = fs::metadata(display).is_ok_and(|m| m.permissions().readonly());
            if readonly {
                StorageError::ReadOnly {
                    path: display.to_string(),
                    reason,
                }
            } else {
                StorageError::Backend {
                    backend: "sqlite",
                    message: format!("{display}: cannot open ({reason})"),
                }
            }
        }
        _ => StorageError::Backend {
            backend: "sqlite",
            message: format!("{display}: {reason}"),
        },
    }
}

/// The pool of read-only connections; also the watch's history source.
struct Readers {
    path: PathBuf,
    display: String,
    idle: Mutex<Vec<Connection>>,
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
                    "SELECT h.rev, h.key, h.value, h.create_rev, h.version,
                            p.rev, p.value, p.create_rev, p.version
                     FROM history h LEFT JOIN history p ON h.prev_rev > 0 AND p.rev = h.prev_rev
                     WHERE h.rev >= ?1 AND h.rev <= ?2 AND h.key >= ?3 AND h.key < ?4
                     ORDER BY h.rev",
                )?
                .query_map(params![from, to, lower, upper], event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            transaction.commit()?;
            Ok(Ok(events))
        })
    }
}

fn event_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let revision: Revision = row.get(0)?;
    let key = key_string(row.get_ref(1)?.as_blob()?)?;
    let kv = match row.get_ref(2)?.as_blob_or_null()? {
        Some(value) => KeyValue {
            key: key.clone(),
            value: Bytes::copy_from_slice(value),
            create_revision: row.get(3)?,
            mod_revision: revision,
            version: row.get(4)?,
        },
        None => KeyValue {
            key: key.clone(),
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
        },
    };
    let prev = match (
        row.get::<_, Option<Revision>>(5)?,
        row.get_ref(6)?.as_blob_or_null()?,
    ) {
        (Some(prev_revision), Some(value)) => Some(KeyValue {
            key,
            value: Bytes::copy_from_slice(value),
            create_revision: row.get(7)?,
            mod_revision: prev_revision,
            version: row.get(8)?,
        }),
        _ => None,
    };
    Ok(WriteResult { revision, kv, prev }.to_event())
}

/// The writer thread's state; the only holder of a read-write connection.
struct Writer {
    connection: Connection,
    display: String,
    revision: Revision,
    compacted: Revision,
    hub: Arc<Hub>,
}

impl Writer {
    fn run(mut self, incoming: mpsc::Receiver<Request>) {
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
        }
        let _ = self
            .connection
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }

    /// Applies and commits `writes` as one transaction, then answers each.
    fn commit_batch(
        &mut self,
        writes: &mut Vec<(
            String,
            WriteOp,
            oneshot::Sender<Result<WriteResult, StorageError>>,
        )>,
    ) {
        if writes.is_empty() {
            return;
        }
        match self.apply(writes) {
            Ok((outcomes, last)) => {
                let events: Vec<Event> = outcomes
                    .iter()
                    .filter_map(|outcome| outcome.as_ref().ok().map(WriteResult::to_event))
                    .collect();
                if !events.is_empty() {
                    let first = self.revision + 1;
                    self.revision = last;
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

    /// One transaction for the whole batch; either all of its successful
    /// writes commit together or none do.
    #[allow(clippy::type_complexity)]
    fn apply(
        &mut self,
        writes: &[(
            String,
            WriteOp,
            oneshot::Sender<Result<WriteResult, StorageError>>,
        )],
    ) -> rusqlite::Result<(Vec<Result<WriteResult, StorageError>>, Revision)> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut revision = self.revision;
        let mut outcomes = Vec::with_capacity(writes.len());
        {
            let mut lookup = transaction.prepare_cached(
                "SELECT h.key, h.value, h.create_rev, h.rev, h.version FROM current c
                 JOIN history h ON h.rev = c.rev WHERE c.key = ?1",
            )?;
            let mut insert = transaction.prepare_cached(
                "INSERT INTO history (rev, key, value, create_rev, version, prev_rev)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut upsert = transaction.prepare_cached(
                "INSERT INTO current (key, rev) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET rev = excluded.rev",
            )?;
            let mut remove = transaction.prepare_cached("DELETE FROM current WHERE key = ?1")?;
            for (key, op, _) in writes {
                let current = lookup
                    .query_row(params![key.as_bytes()], key_value_row)
                    .optional()?;
                let outcome = plan_write(key, current, op, revision + 1);
                if let Ok(result) = &outcome {
                    revision += 1;
                    let deleted = result.kv.version == 0;
                    let prev_rev = result.prev.as_ref().map_or(0, |prev| prev.mod_revision);
                    insert.execute(params![
                        revision,
                        key.as_bytes(),
                        (!deleted).then_some(result.kv.value.as_ref()),
                        result.kv.create_revision,
                        result.kv.version,
                        prev_rev,
                    ])?;
                    if deleted {
                        remove.execute(params![key.as_bytes()])?;
                    } else {
                        upsert.execute(params![key.as_bytes(), revision])?;
                    }
                }
                outcomes.push(outcome);
            }
        }
        if revision > self.revision {
            transaction
                .prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")?
                .execute(params![revision])?;
        }
        transaction.commit()?;
        Ok((outcomes, revision))
    }

    /// Compacts one chunk toward `target`; returns the compacted revision.
    fn compact_chunk(&mut self, target: Revision) -> Result<Revision, StorageError> {
        if target > self.revision {
            return Err(StorageError::FutureRevision {
                requested: target,
                current: self.revision,
            });
        }
        if target <= self.compacted {
            return Err(StorageError::Compacted {
                requested: target,
                compacted: self.compacted,
            });
        }
        let upto = target.min(self.compacted + COMPACTION_CHUNK);
        self.delete_history(self.compacted, upto)
            .map_err(|e| sqlite_error(&self.display, e))?;
        self.compacted = upto;
        if upto == target {
            self.reclaim_space();
        }
        Ok(upto)
    }

    /// Deletes the history no read at or after `upto` can need: versions
    /// superseded by a write in `(after, upto]`, and deletions in that range.
    fn delete_history(&mut self, after: Revision, upto: Revision) -> rusqlite::Result<()> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let superseded: Vec<Revision> = transaction
            .prepare_cached(
                "SELECT prev_rev FROM history WHERE rev > ?1 AND rev <= ?2 AND prev_rev > 0",
            )?
            .query_map(params![after, upto], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        {
            let mut delete = transaction.prepare_cached("DELETE FROM history WHERE rev = ?1")?;
            for revision in superseded {
                delete.execute(params![revision])?;
            }
        }
        transaction
            .prepare_cached("DELETE FROM history WHERE rev > ?1 AND rev <= ?2 AND value IS NULL")?
            .execute(params![after, upto])?;
        transaction
            .prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'compacted'")?
            .execute(params![upto])?;
        transaction.commit()
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
        if free > 0 && free * 4 >= total {
            if let Err(error) = self.connection.execute_batch("PRAGMA incremental_vacuum;") {
                tracing::warn!(%error, "incremental vacuum failed");
            }
        }
    }
}

/// A second read-write connection, used only to checkpoint the WAL.
fn open_checkpointer(path: &Path, display: &str) -> Result<Connection, StorageError> {
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
fn run_checkpointer(connection: Connection, wal_grew: mpsc::Receiver<()>) {
    while wal_grew.recv().is_ok() {
        if let Err(error) = connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
    }
    let _ = connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
}

/// Every `interval`, compacts to the newest revision at least `window` old.
fn run_compactor(
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
