//! Revisioned key-value storage with etcd's semantics, behind one trait, with SQLite, etcd and memory backends.
//!
//! Every write gets the next value of one global, strictly increasing revision.
//! Each key carries `create_revision`, `mod_revision` and `version` exactly as
//! etcd v3 defines them, history can be read at past revisions until it is
//! compacted, and a watch replays every change after a revision exactly once,
//! in order. The apiserver is the only intended caller; nothing outside this
//! crate knows SQL or etcd.

mod endpoint;
mod error;
mod etcd;
pub mod etcd_process;
mod index;
mod memory;
mod sqlite;
mod watch;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub use endpoint::{Endpoint, EtcdTls, OpenOptions, open};
pub use error::StorageError;
pub use etcd::EtcdStore;
pub use memory::MemoryStore;
pub use sqlite::{CompactionPolicy, SqliteStore};

/// A position in the store's history. Revision 0 means "none" or "current"
/// depending on context; the first write gets revision 1 or later.
pub type Revision = i64;

/// The largest value a key may hold: etcd's default request limit, which
/// kube-apiserver also uses as its object size ceiling.
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// One key as stored at some revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// The revision of the write that created this incarnation of the key.
    pub create_revision: Revision,
    /// The revision of the last write to the key.
    pub mod_revision: Revision,
    /// Writes since creation: 1 after create, +1 per update.
    pub version: i64,
}

/// What a write requires of the key's current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Write regardless of the current state.
    None,
    /// The key must not exist (create).
    Absent,
    /// The key must exist with this `mod_revision` (compare-and-swap).
    ModRevision(Revision),
}

/// The outcome of a successful put or delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteResult {
    /// The revision this write was committed at.
    pub revision: Revision,
    /// The key as written (for a delete: the key, empty value, version 0).
    pub kv: KeyValue,
    /// The key's state just before the write, if it existed.
    pub prev: Option<KeyValue>,
}

/// A read over a prefix, at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Byte prefix of the keys to return (etcd semantics: `/a` matches `/ab`).
    pub prefix: String,
    /// Continue after this key (exclusive); used with the `revision` of the
    /// first page so every page reads the same snapshot.
    pub start_after: Option<String>,
    /// Read at this revision; 0 reads the current one.
    pub revision: Revision,
    /// Return at most this many keys; 0 means no limit.
    pub limit: usize,
}

/// One page of a prefix read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResponse {
    pub kvs: Vec<KeyValue>,
    /// True when keys past the last one returned remain in the range.
    pub more: bool,
    /// Keys in the requested range (after `start_after`) at `revision`,
    /// including those not returned because of `limit`.
    pub count: i64,
    /// The revision the read was served at.
    pub revision: Revision,
}

/// Whether an event wrote or removed its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change delivered by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The key after the change; for a delete the value is empty, the
    /// version 0 and `mod_revision` the deletion's revision.
    pub kv: KeyValue,
    /// The key's state before the change, if it existed.
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// The stream a watch yields: events in revision order, ending with an error
/// (such as [`StorageError::Compacted`]) when the watch cannot continue.
pub type WatchStream = BoxStream<'static, Result<Event, StorageError>>;

/// A store with etcd v3's data model. All backends pass the same
/// conformance suite (`tests/conformance.rs`).
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The key at `revision` (0: current), or `None` if absent then.
    async fn get(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>, StorageError>;

    /// Keys under a prefix in key order, at one revision.
    async fn list(&self, request: ListRequest) -> Result<ListResponse, StorageError>;

    /// Writes `value` at `key` if `precondition` holds. On a failed
    /// precondition the error carries the key's current state.
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<WriteResult, StorageError>;

    /// Removes `key` if it exists and `precondition` holds.
    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
    ) -> Result<WriteResult, StorageError>;

    /// Every change to keys under `prefix` with revision >= `from` (0: only
    /// changes after now), exactly once, in order.
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StorageError>;

    /// Forgets history before `revision`: reads and watches at older
    /// revisions then fail with [`StorageError::Compacted`].
    async fn compact(&self, revision: Revision) -> Result<(), StorageError>;

    /// The newest committed revision.
    async fn current_revision(&self) -> Result<Revision, StorageError>;

    /// Bytes the backend occupies (for SQLite: main file plus WAL).
    async fn db_size(&self) -> Result<u64, StorageError>;

    /// A short name for logs and benchmarks: `sqlite`, `etcd`, `memory`.
    fn backend(&self) -> &'static str;
}

/// Shared handle to any backend.
pub type DynStorage = Arc<dyn Storage>;

/// The smallest string greater than every string starting with `prefix`,
/// or `None` when no such bound exists (empty prefix or all 0xFF bytes).
pub(crate) fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Refuses values over [`MAX_VALUE_BYTES`] before they reach a backend.
pub(crate) fn check_value_size(key: &str, value: &[u8]) -> Result<(), StorageError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StorageError::ValueTooLarge {
            key: key.to_string(),
            size: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// A single-key write, as the embedded backends apply it.
#[derive(Clone, Debug)]
pub(crate) enum WriteOp {
    Put {
        value: Bytes,
        precondition: Precondition,
    },
    Delete {
        precondition: Precondition,
    },
}

/// Decides a write against the key's current state: the resulting key and
/// event at `revision`, or why the write is refused. Pure, so the SQLite and
/// memory backends share one definition of etcd's per-key bookkeeping.
pub(crate) fn plan_write(
    key: &str,
    current: Option<KeyValue>,
    op: &WriteOp,
    revision: Revision,
) -> Result<WriteResult, StorageError> {
    let precondition = match op {
        WriteOp::Put { precondition, .. } | WriteOp::Delete { precondition } => *precondition,
    };
    if matches!(op, WriteOp::Delete { .. }) && current.is_none() {
        return Err(StorageError::NotFound {
            key: key.to_string(),
        });
    }
    let holds = match (precondition, &current) {
        (Precondition::None, _) => true,
        (Precondition::Absent, current) => current.is_none(),
        (Precondition::ModRevision(expected), Some(kv)) => kv.mod_revision == expected,
        (Precondition::ModRevision(_), None) => false,
    };
    if !holds {
        return Err(StorageError::precondition(key, current));
    }
    let kv = match op {
        WriteOp::Put { value, .. } => KeyValue {
            key: key.to_string(),
            value: value.clone(),
            create_revision: current.as_ref().map_or(revision, |kv| kv.create_revision),
            mod_revision: revision,
            version: current.as_ref().map_or(1, |kv| kv.version + 1),
        },
        WriteOp::Delete { .. } => KeyValue {
            key: key.to_string(),
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
        },
    };
    Ok(WriteResult {
        revision,
        kv,
        prev: current,
    })
}

impl WriteResult {
    /// The watch event this write produces.
    pub(crate) fn to_event(&self) -> Event {
        Event {
            kind: if self.kv.version == 0 {
                EventKind::Delete
            } else {
                EventKind::Put
            },
            kv: self.kv.clone(),
            prev: self.prev.clone(),
        }
    }
}
