//! The in-memory key index of the embedded backends: every key's versions by revision, like etcd's treeIndex.
//!
//! Values live elsewhere (SQLite rows, or memory), addressed by revision, so
//! writes only ever append. The index answers which revision holds a key at
//! any revision not yet compacted, and what a write would change.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::{Revision, StorageError};

/// One version of a key: the write at `revision`; `version` 0 marks a deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub revision: Revision,
    pub create_revision: Revision,
    pub version: i64,
}

impl Version {
    pub fn is_deletion(&self) -> bool {
        self.version == 0
    }
}

/// A key's versions, oldest first, with the store's revision counters.
#[derive(Default)]
pub(crate) struct KeyIndex {
    keys: BTreeMap<String, Vec<Version>>,
    /// The newest committed revision.
    pub revision: Revision,
    /// Reads before this revision fail as compacted.
    pub compacted: Revision,
}

impl KeyIndex {
    /// Adds the newest version of `key`; revisions arrive in increasing order.
    pub fn record(&mut self, key: &str, version: Version) {
        match self.keys.get_mut(key) {
            Some(versions) => versions.push(version),
            None => {
                self.keys.insert(key.to_string(), vec![version]);
            }
        }
        self.revision = self.revision.max(version.revision);
    }

    /// The key's newest version if it exists now (not deleted).
    pub fn current(&self, key: &str) -> Option<Version> {
        visible(self.keys.get(key)?, Revision::MAX)
    }

    /// The key's version visible at `revision`, if it existed then.
    pub fn at(&self, key: &str, revision: Revision) -> Option<Version> {
        visible(self.keys.get(key)?, revision)
    }

    /// The revision a read at `requested` (0: current) is served at.
    pub fn read_revision(&self, requested: Revision) -> Result<Revision, StorageError> {
        if requested == 0 {
            Ok(self.revision)
        } else if requested > self.revision {
            Err(StorageError::FutureRevision {
                requested,
                current: self.revision,
            })
        } else if requested < self.compacted {
            Err(StorageError::Compacted {
                requested,
                compacted: self.compacted,
            })
        } else {
            Ok(requested)
        }
    }

    /// Keys under `prefix` after `start_after` visible at `revision`: up to
    /// `limit` of them (0: all), and how many there are in all.
    pub fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Revision,
        limit: usize,
    ) -> (Vec<(String, Version)>, i64) {
        let start = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut found = Vec::new();
        let mut count = 0i64;
        for (key, versions) in self
            .keys
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            if let Some(version) = visible(versions, revision) {
                count += 1;
                if limit == 0 || found.len() < limit {
                    found.push((key.clone(), version));
                }
            }
        }
        (found, count)
    }

    /// Drops the version of `key` written at `revision`, once compaction has
    /// made it unreachable.
    pub fn forget(&mut self, key: &str, revision: Revision) {
        let Some(versions) = self.keys.get_mut(key) else {
            return;
        };
        if let Ok(position) = versions.binary_search_by_key(&revision, |v| v.revision) {
            versions.remove(position);
        }
        if versions.is_empty() {
            self.keys.remove(key);
        }
    }
}

/// What compacting through one write makes unreachable: the version it
/// replaced and, for a deletion, the deletion itself.
pub(crate) fn unreachable_after_compaction(
    revision: Revision,
    prev_revision: Revision,
    deletion: bool,
) -> impl Iterator<Item = Revision> {
    let replaced = (prev_revision > 0).then_some(prev_revision);
    let deleted = deletion.then_some(revision);
    replaced.into_iter().chain(deleted)
}

fn visible(versions: &[Version], revision: Revision) -> Option<Version> {
    let newer = versions.partition_point(|v| v.revision <= revision);
    let version = *versions.get(newer.checked_sub(1)?)?;
    (!version.is_deletion()).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(revision: Revision, create_revision: Revision, version: i64) -> Version {
        Version {
            revision,
            create_revision,
            version,
        }
    }

    #[test]
    fn versions_are_visible_from_their_revision_until_replaced() {
        let mut index = KeyIndex::default();
        index.record("/a", v(1, 1, 1));
        index.record("/a", v(3, 1, 2));
        index.record("/a", v(4, 0, 0));
        index.record("/a", v(6, 6, 1));
        assert_eq!(index.at("/a", 0), None);
        assert_eq!(index.at("/a", 2), Some(v(1, 1, 1)));
        assert_eq!(index.at("/a", 3), Some(v(3, 1, 2)));
        assert_eq!(index.at("/a", 5), None);
        assert_eq!(index.current("/a"), Some(v(6, 6, 1)));
        assert_eq!(index.revision, 6);
    }

    #[test]
    fn range_counts_every_visible_key_but_returns_up_to_the_limit() {
        let mut index = KeyIndex::default();
        for (rev, key) in ["/p/a", "/p/b", "/pz", "/p/c"].iter().enumerate() {
            index.record(key, v(rev as i64 + 1, rev as i64 + 1, 1));
        }
        let (found, count) = index.range("/p/", None, index.revision, 2);
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!((keys, count), (vec!["/p/a", "/p/b"], 3));
        let (found, count) = index.range("/p/", Some("/p/b"), index.revision, 0);
        assert_eq!((found.len(), count), (1, 1));
        let (_, count) = index.range("/p/", None, 2, 0);
        assert_eq!(count, 2, "/p/c did not exist at revision 2");
    }

    #[test]
    fn compaction_forgets_replaced_versions_and_deletions() {
        let mut index = KeyIndex::default();
        index.record("/a", v(1, 1, 1));
        index.record("/a", v(2, 1, 2));
        index.record("/a", v(3, 0, 0));
        let dropped: Vec<Revision> = [(2, 1, false), (3, 2, true)]
            .into_iter()
            .flat_map(|(rev, prev, deletion)| unreachable_after_compaction(rev, prev, deletion))
            .collect();
        assert_eq!(dropped, vec![1, 2, 3]);
        for revision in dropped {
            index.forget("/a", revision);
        }
        assert_eq!(index.range("", None, 3, 0).1, 0);
        assert!(
            index.keys.is_empty(),
            "a fully compacted deleted key leaves nothing behind"
        );
    }
}
