//! Upstream's controller expectations: after creating or deleting pods, an owner is not acted on again until the informer has shown those changes (or five minutes pass).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Upstream's `ExpectationsTimeout`.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Record {
    creations: i64,
    deletions: i64,
    /// Keys of the pods whose deletion is awaited (upstream's UID tracking).
    deleting: HashSet<String>,
    set_at: Instant,
}

/// Expectations per owner key (`namespace/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    records: HashMap<String, Record>,
}

impl Expectations {
    /// Whether the owner may be acted on: nothing outstanding, nothing
    /// recorded, or the record has expired.
    pub fn satisfied(&self, owner: &str) -> bool {
        match self.records.get(owner) {
            None => true,
            Some(record) => {
                (record.creations <= 0 && record.deletions <= 0)
                    || record.set_at.elapsed() > EXPECTATIONS_TIMEOUT
            }
        }
    }

    pub fn expect_creations(&mut self, owner: &str, count: usize) {
        self.records.insert(
            owner.to_string(),
            Record {
                creations: count as i64,
                deletions: 0,
                deleting: HashSet::new(),
                set_at: Instant::now(),
            },
        );
    }

    pub fn expect_deletions(&mut self, owner: &str, pods: Vec<String>) {
        self.records.insert(
            owner.to_string(),
            Record {
                creations: 0,
                deletions: pods.len() as i64,
                deleting: pods.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    /// One of the owner's pods appeared (or a create will never be seen).
    pub fn creation_observed(&mut self, owner: &str) {
        if let Some(record) = self.records.get_mut(owner) {
            record.creations -= 1;
        }
    }

    /// The pod `pod` went away or started terminating; counted only if its
    /// deletion was awaited.
    pub fn deletion_observed(&mut self, owner: &str, pod: &str) {
        if let Some(record) = self.records.get_mut(owner)
            && record.deleting.remove(pod)
        {
            record.deletions -= 1;
        }
    }

    pub fn forget(&mut self, owner: &str) {
        self.records.remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_must_all_be_observed() {
        let mut expectations = Expectations::default();
        assert!(expectations.satisfied("ns/rs"));
        expectations.expect_creations("ns/rs", 2);
        expectations.creation_observed("ns/rs");
        assert!(!expectations.satisfied("ns/rs"));
        expectations.creation_observed("ns/rs");
        assert!(expectations.satisfied("ns/rs"));
    }

    #[test]
    fn only_awaited_deletions_count_and_only_once() {
        let mut expectations = Expectations::default();
        expectations.expect_deletions("ns/rs", vec!["ns/a".into(), "ns/b".into()]);
        expectations.deletion_observed("ns/rs", "ns/other");
        expectations.deletion_observed("ns/rs", "ns/a");
        expectations.deletion_observed("ns/rs", "ns/a");
        assert!(!expectations.satisfied("ns/rs"));
        expectations.deletion_observed("ns/rs", "ns/b");
        assert!(expectations.satisfied("ns/rs"));
    }
}
