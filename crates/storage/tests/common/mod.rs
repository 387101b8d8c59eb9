//! Test backends: each storage test gets a fresh memory store, SQLite file, or private etcd process.

#![allow(dead_code)]

use std::time::Duration;

use futures::StreamExt;
use storage::etcd_process::EtcdProcess;
use storage::{DynStorage, Event, OpenOptions, StorageError, WatchStream};

/// A store plus whatever must live as long as it (temp dir, etcd process).
pub struct Backend {
    pub store: DynStorage,
    _keep: Box<dyn std::any::Any + Send>,
}

pub async fn memory() -> Backend {
    Backend {
        store: storage::open("memory://", &OpenOptions::default())
            .await
            .unwrap(),
        _keep: Box::new(()),
    }
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("sqlite://{}", dir.path().join("state.db").display());
    let options = OpenOptions {
        compaction: None,
        ..OpenOptions::default()
    };
    Backend {
        store: storage::open(&endpoint, &options).await.unwrap(),
        _keep: Box::new(dir),
    }
}

pub async fn etcd() -> Backend {
    let process = tokio::task::spawn_blocking(|| EtcdProcess::start(None))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let store = storage::open(&process.endpoint(), &OpenOptions::default())
        .await
        .unwrap();
    Backend {
        store,
        _keep: Box::new(process),
    }
}

/// Takes `count` items from a watch, failing the test after 10 s.
pub async fn next_events(stream: &mut WatchStream, count: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out after {} of {count} events: {events:?}",
                    events.len()
                )
            })
            .expect("watch ended early");
        events.push(item.expect("watch failed"));
    }
    events
}

/// The first item of a watch that is expected to fail.
pub async fn watch_error(stream: &mut WatchStream) -> StorageError {
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Err(error))) => error,
        other => panic!("expected a watch error, got {other:?}"),
    }
}

/// Asserts nothing arrives on the watch for a short while.
pub async fn assert_quiet(stream: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}
