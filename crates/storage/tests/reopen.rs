//! SQLite reopen: the key index and revision counters rebuilt from disk answer exactly as before the restart, compaction included.

mod common;

use bytes::Bytes;
use storage::{ListRequest, OpenOptions, Precondition, StorageError};

async fn open(path: &std::path::Path) -> storage::DynStorage {
    let options = OpenOptions {
        compaction: None,
        ..OpenOptions::default()
    };
    storage::open(&format!("sqlite://{}", path.display()), &options)
        .await
        .unwrap()
}

async fn snapshot(
    store: &storage::DynStorage,
    revision: i64,
) -> Vec<(String, Bytes, i64, i64, i64)> {
    store
        .list(ListRequest {
            prefix: "/".into(),
            revision,
            ..Default::default()
        })
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| {
            (
                kv.key,
                kv.value,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_restores_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = open(&path).await;
    for round in 0..5 {
        for key in ["/r/a", "/r/b", "/r/c", "/s/x"] {
            let value = Bytes::from(format!("{key}-{round}"));
            store.put(key, value, Precondition::None).await.unwrap();
        }
        store.delete("/r/b", Precondition::None).await.unwrap();
    }
    let compacted_at = store.current_revision().await.unwrap() - 3;
    store.compact(compacted_at).await.unwrap();
    store
        .put("/r/d", Bytes::from_static(b"late"), Precondition::Absent)
        .await
        .unwrap();
    // The newest write is a deletion: after compacting through it, only the
    // stored counter remembers its revision.
    let head = store
        .delete("/r/d", Precondition::None)
        .await
        .unwrap()
        .revision;
    store.compact(head).await.unwrap();
    let now_before = snapshot(&store, 0).await;
    let at_head_before = snapshot(&store, head).await;
    drop(store);

    let store = open(&path).await;
    assert_eq!(
        store.current_revision().await.unwrap(),
        head,
        "the revision counter survives"
    );
    assert_eq!(snapshot(&store, 0).await, now_before);
    assert_eq!(snapshot(&store, head).await, at_head_before);
    assert!(matches!(
        store.get("/r/a", head - 1).await,
        Err(StorageError::Compacted { .. })
    ));
    let mut stale = store.watch("/r/", compacted_at).await.unwrap();
    assert!(matches!(
        common::watch_error(&mut stale).await,
        StorageError::Compacted { .. }
    ));
    let next = store
        .put("/r/e", Bytes::from_static(b"e"), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        next.revision,
        head + 1,
        "no revision is reused after a restart"
    );
    let mut watch = store.watch("/r/", head + 1).await.unwrap();
    let events = common::next_events(&mut watch, 1).await;
    assert_eq!(events[0].kv.key, "/r/e");
}
