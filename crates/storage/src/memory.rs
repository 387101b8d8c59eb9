//! The `memory://` backend: the key index plus every stored version held in process memory, for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;

use crate::index::{KeyIndex, Version, unreachable_after_compaction};
use crate::watch::{CommittedBatch, EventLog, Hub};
use crate::{
    Event, KeyValue, ListRequest, ListResponse, Precondition, Revision, Storage, StorageError,
    WatchStream, WriteOp, WriteResult, check_value_size, plan_write,
};

/// The write made at one revision.
#[derive(Clone, Debug)]
struct Row {
    key: String,
    /// None for a deletion.
    value: Option<Bytes>,
    create_revision: Revision,
    version: i64,
    prev_revision: Revision,
}

#[derive(Default)]
struct State {
    index: KeyIndex,
    rows: BTreeMap<Revision, Row>,
}

impl State {
    fn key_value(&self, key: &str, version: Version) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: self.rows[&version.revision]
                .value
                .clone()
                .unwrap_or_default(),
            create_revision: version.create_revision,
            mod_revision: version.revision,
            version: version.version,
        }
    }

    fn event(&self, revision: Revision, row: &Row) -> Event {
        let prev = self.rows.get(&row.prev_revision).map(|prev| KeyValue {
            key: prev.key.clone(),
            value: prev.value.clone().unwrap_or_default(),
            create_revision: prev.create_revision,
            mod_revision: row.prev_revision,
            version: prev.version,
        });
        let kv = KeyValue {
            key: row.key.clone(),
            value: row.value.clone().unwrap_or_default(),
            create_revision: row.create_revision,
            mod_revision: revision,
            version: row.version,
        };
        WriteResult { revision, kv, prev }.to_event()
    }
}

/// Shares the state between the store handle and its watchers.
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below completes before anything that can panic, so
        // a poisoned lock still guards consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EventLog for Shared {
    fn read_events(
        &self,
        prefix: &str,
        from: Revision,
        to: Revision,
    ) -> Result<Vec<Event>, StorageError> {
        let state = self.lock();
        if from <= state.index.compacted {
            return Err(StorageError::Compacted {
                requested: from,
                compacted: state.index.compacted,
            });
        }
        Ok(state
            .rows
            .range(from..=to)
            .filter(|(_, row)| row.key.starts_with(prefix))
            .map(|(revision, row)| state.event(*revision, row))
            .collect())
    }
}

/// The in-memory store. Cheap to create; loses everything on drop.
pub struct MemoryStore {
    shared: Arc<Shared>,
    hub: Arc<Hub>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
            }),
            hub: Hub::new(0),
        }
    }

    fn write(&self, key: &str, op: WriteOp) -> Result<WriteResult, StorageError> {
        let mut state = self.shared.lock();
        let current = state.index.current(key).map(|v| state.key_value(key, v));
        let revision = state.index.revision + 1;
        let result = plan_write(key, current, &op, revision)?;
        let deleted = result.kv.version == 0;
        state.rows.insert(
            revision,
            Row {
                key: key.to_string(),
                value: (!deleted).then(|| result.kv.value.clone()),
                create_revision: result.kv.create_revision,
                version: result.kv.version,
                prev_revision: result.prev.as_ref().map_or(0, |prev| prev.mod_revision),
            },
        );
        state.index.record(
            key,
            Version {
                revision,
                create_revision: result.kv.create_revision,
                version: result.kv.version,
            },
        );
        // Publishing under the lock keeps batches in revision order.
        self.hub.publish(CommittedBatch {
            first: revision,
            last: revision,
            events: vec![result.to_event()],
        });
        Ok(result)
    }
}

impl Drop for MemoryStore {
    fn drop(&mut self) {
        self.hub.close();
    }
}

#[async_trait]
impl Storage for MemoryStore {
    async fn get(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>, StorageError> {
        let state = self.shared.lock();
        let at = state.index.read_revision(revision)?;
        Ok(state.index.at(key, at).map(|v| state.key_value(key, v)))
    }

    async fn list(&self, request: ListRequest) -> Result<ListResponse, StorageError> {
        let state = self.shared.lock();
        let at = state.index.read_revision(request.revision)?;
        let (versions, count) = state.index.range(
            &request.prefix,
            request.start_after.as_deref(),
            at,
            request.limit,
        );
        let kvs: Vec<KeyValue> = versions
            .into_iter()
            .map(|(key, version)| state.key_value(&key, version))
            .collect();
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
    }

    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
    ) -> Result<WriteResult, StorageError> {
        self.write(key, WriteOp::Delete { precondition })
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StorageError> {
        Ok(self.hub.watch(self.shared.clone(), prefix, from))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        let mut state = self.shared.lock();
        let (current, compacted) = (state.index.revision, state.index.compacted);
        if revision > current {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision <= compacted {
            return Err(StorageError::Compacted {
                requested: revision,
                compacted,
            });
        }
        let unreachable: Vec<(String, Revision)> = state
            .rows
            .range(compacted + 1..=revision)
            .flat_map(|(rev, row)| {
                unreachable_after_compaction(*rev, row.prev_revision, row.version == 0)
                    .map(|dropped| (row.key.clone(), dropped))
            })
            .collect();
        for (key, dropped) in unreachable {
            state.rows.remove(&dropped);
            state.index.forget(&key, dropped);
        }
        state.index.compacted = revision;
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision, StorageError> {
        Ok(self.shared.lock().index.revision)
    }

    async fn db_size(&self) -> Result<u64, StorageError> {
        let state = self.shared.lock();
        Ok(state
            .rows
            .values()
            .map(|row| (row.key.len() + row.value.as_ref().map_or(0, Bytes::len) + 48) as u64)
            .sum())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
