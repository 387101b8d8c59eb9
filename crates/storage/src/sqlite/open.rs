//! Opening the SQLite file safely: refusing foreign files, creating the schema, naming every failure in one line.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use crate::index::{KeyIndex, Version};
use crate::{Revision, StorageError};

/// Marks a file as a krust database (`PRAGMA application_id`), "krst".
const APPLICATION_ID: i32 = 0x6b72_7374;
const SCHEMA_VERSION: i32 = 1;
/// The WAL file is cut back to this size whenever it restarts.
pub(super) const WAL_SIZE_LIMIT: i64 = 8 * 1024 * 1024;

/// `log` has one row per revision (version 0 marks a deletion; `prev_rev`
/// names the version a write replaced); `data` holds the value written at
/// each revision that was not a deletion. Both grow only at the end, by
/// revision, so a write touches few pages.
const SCHEMA: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
CREATE TABLE log (
    rev INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL
);
CREATE TABLE data (rev INTEGER PRIMARY KEY, value BLOB NOT NULL);
";

/// Refuses, without writing to it, a file that is not SQLite at all.
pub(super) fn check_is_sqlite_file(path: &Path, display: &str) -> Result<(), StorageError> {
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
pub(super) fn open_writer(path: &Path, display: &str) -> Result<Connection, StorageError> {
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
    // 4 MB: writes only append, and the API server reads lists from its
    // watch cache. 16 MB gave the same 256-writer rate (100.5k vs 101.1k/s)
    // and 12 MB more server RSS at 100,000 pods.
    connection
        .pragma_update(None, "cache_size", -4_000)
        .map_err(fail)?;
    // The checkpointer thread copies the WAL into the database instead.
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
pub(super) fn read_only_cause(path: &Path, display: &str) -> Option<StorageError> {
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

/// Rebuilds the key index from the log, with the stored revision counters.
pub(super) fn load_index(connection: &Connection) -> rusqlite::Result<KeyIndex> {
    let mut index = KeyIndex::default();
    let mut rows =
        connection.prepare("SELECT rev, key, create_rev, version FROM log ORDER BY rev")?;
    let mut rows = rows.query([])?;
    while let Some(row) = rows.next()? {
        let key = key_string(row.get_ref(1)?.as_blob()?)?;
        let version = Version {
            revision: row.get(0)?,
            create_revision: row.get(2)?,
            version: row.get(3)?,
        };
        index.record(&key, version);
    }
    index.revision = meta_value(connection, "revision")?;
    index.compacted = meta_value(connection, "compacted")?;
    Ok(index)
}

pub(super) fn meta_value(connection: &Connection, name: &str) -> rusqlite::Result<Revision> {
    connection
        .prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row(params![name], |row| row.get(0))
}

/// The exclusive upper key bound of a prefix. Keys are UTF-8, which never
/// contains the byte 0xFF, so `[0xFF]` bounds the empty prefix.
pub(super) fn range_end(prefix: &str) -> Vec<u8> {
    crate::prefix_end(prefix).unwrap_or_else(|| vec![0xff])
}

pub(super) fn key_string(bytes: &[u8]) -> rusqlite::Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| rusqlite::Error::Utf8Error(0, e.utf8_error()))
}

pub(super) fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

pub(super) fn io_error(display: &str, error: std::io::Error) -> StorageError {
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
pub(super) fn sqlite_error(display: &str, error: rusqlite::Error) -> StorageError {
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
