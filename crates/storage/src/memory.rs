//! The `memory://` backend: the full revisioned model held in process memory, for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use crate::watch::{CommittedBatch, EventLog, Hub};
use crate::{
    Event, KeyValue, ListRequest, ListResponse, Precondition, Revision, Storage, StorageError,
    WatchStream, WriteOp, WriteResult, check_value_size, plan_write,
};

/// One stored version of a key; `value` is None for a deletion.
#[derive(Clone, Debug)]
struct Row {
    key: String,
    value: Option<Bytes>,
    create_revision: Revision,
    version: i64,
    prev_revision: Revision,
}

impl Row {
    fn key_value(&self, revision: Revision) -> Option<KeyValue> {
        let value = self.value.clone()?;
        Some(KeyValue {
            key: self.key.clone(),
            value,
            create_revision: self.create_revision,
            mod_revision: revision,
            version: self.version,
        })
    }
}

#[derive(Default)]
struct State {
    revision: Revision,
    compacted: Revision,
    history: BTreeMap<Revision, Row>,
    /// Every stored revision of each key, ascending.
    revisions: BTreeMap<String, Vec<Revision>>,
}

impl State {
    fn check_read_revision(&self, requested: Revision) -> Result<Revision, StorageError> {
        if requested == 0 {
            return Ok(self.revision);
        }
        if requested > self.revision {
            return Err(StorageError::FutureRevision {
                requested,
                current: self.revision,
            });
        }
        if requested < self.compacted {
            return Err(StorageError::Compacted {
                requested,
                compacted: self.compacted,
            });
        }
        Ok(requested)
    }

    fn at(&self, revisions: &[Revision], at: Revision) -> Option<KeyValue> {
        let index = revisions.partition_point(|revision| *revision <= at);
        let revision = *revisions.get(index.checked_sub(1)?)?;
        self.history[&revision].key_value(revision)
    }

    fn event(&self, revision: Revision, row: &Row) -> Event {
        let prev = (row.prev_revision > 0)
            .then(|| self.history.get(&row.prev_revision))
            .flatten()
            .and_then(|prev| prev.key_value(row.prev_revision));
        let kv = row.key_value(revision).unwrap_or_else(|| KeyValue {
            key: row.key.clone(),
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
        });
        WriteResult { revision, kv, prev }.to_event()
    }
}

/// Shares the state between the store handle and its watchers.
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write:
        // every mutation below is completed before any call that can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        if from <= state.compacted {
            return Err(StorageError::Compacted {
                requested: from,
                compacted: state.compacted,
            });
        }
        Ok(state
            .history
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
        let current = state
            .revisions
            .get(key)
            .and_then(|revisions| state.at(revisions, i64::MAX));
        let revision = state.revision + 1;
        let result = plan_write(key, current, &op, revision)?;
        let row = Row {
            key: key.to_string(),
            value: (result.kv.version > 0).then(|| result.kv.value.clone()),
            create_revision: result.kv.create_revision,
            version: result.kv.version,
            prev_revision: result.prev.as_ref().map_or(0, |prev| prev.mod_revision),
        };
        state.revision = revision;
        state.history.insert(revision, row);
        state
            .revisions
            .entry(key.to_string())
            .or_default()
            .push(revision);
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
        let at = state.check_read_revision(revision)?;
        Ok(state
            .revisions
            .get(key)
            .and_then(|revisions| state.at(revisions, at)))
    }

    async fn list(&self, request: ListRequest) -> Result<ListResponse, StorageError> {
        let state = self.shared.lock();
        let at = state.check_read_revision(request.revision)?;
        let start = match &request.start_after {
            Some(after) if after.as_str() >= request.prefix.as_str() => {
                std::ops::Bound::Excluded(after.clone())
            }
            _ => std::ops::Bound::Included(request.prefix.clone()),
        };
        let mut kvs = Vec::new();
        let mut count = 0i64;
        for (_, revisions) in state
            .revisions
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(&request.prefix))
        {
            if let Some(kv) = state.at(revisions, at) {
                count += 1;
                if request.limit == 0 || kvs.len() < request.limit {
                    kvs.push(kv);
                }
            }
        }
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
        if revision > state.revision {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current: state.revision,
            });
        }
        if revision <= state.compacted {
            return Err(StorageError::Compacted {
                requested: revision,
                compacted: state.compacted,
            });
        }
        let State {
            history, revisions, ..
        } = &mut *state;
        revisions.retain(|_, key_revisions| {
            // Keep the newest version at or before the compaction point
            // unless it is a deletion, and everything after it.
            let upto = key_revisions.partition_point(|r| *r <= revision);
            let keep_from = match upto.checked_sub(1) {
                Some(last) if history[&key_revisions[last]].value.is_some() => last,
                _ => upto,
            };
            for dropped in key_revisions.drain(..keep_from) {
                history.remove(&dropped);
            }
            !key_revisions.is_empty()
        });
        state.compacted = revision;
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision, StorageError> {
        Ok(self.shared.lock().revision)
    }

    async fn db_size(&self) -> Result<u64, StorageError> {
        let state = self.shared.lock();
        Ok(state
            .history
            .values()
            .map(|row| (row.key.len() + row.value.as_ref().map_or(0, |v| v.len()) + 32) as u64)
            .sum())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
