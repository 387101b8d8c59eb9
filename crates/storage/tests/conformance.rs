//! One conformance suite, the same test code, run against the memory, SQLite and real etcd backends.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use common::{Backend, assert_quiet, next_events, watch_error};
use storage::{DynStorage, EventKind, ListRequest, MAX_VALUE_BYTES, Precondition, StorageError};

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

async fn put(store: &DynStorage, key: &str, value: &str) -> i64 {
    store
        .put(key, b(value), Precondition::None)
        .await
        .unwrap()
        .revision
}

async fn list_all(store: &DynStorage, prefix: &str, revision: i64) -> Vec<(String, String)> {
    let response = store
        .list(ListRequest {
            prefix: prefix.into(),
            revision,
            ..Default::default()
        })
        .await
        .unwrap();
    response
        .kvs
        .into_iter()
        .map(|kv| (kv.key, String::from_utf8(kv.value.to_vec()).unwrap()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn revisions_increase_and_keys_track_create_mod_and_version(backend: Backend) {
    let store = backend.store;
    let base = store.current_revision().await.unwrap();
    let created = store
        .put("/k/a", b("1"), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(created.revision, base + 1);
    assert_eq!(
        (
            created.kv.create_revision,
            created.kv.mod_revision,
            created.kv.version
        ),
        (base + 1, base + 1, 1)
    );
    assert_eq!(created.prev, None);
    let updated = store.put("/k/a", b("2"), Precondition::None).await.unwrap();
    assert_eq!(
        (
            updated.revision,
            updated.kv.create_revision,
            updated.kv.version
        ),
        (base + 2, base + 1, 2)
    );
    assert_eq!(updated.prev.as_ref().unwrap().value, b("1"));
    assert_eq!(put(&store, "/k/b", "x").await, base + 3);
    let deleted = store.delete("/k/a", Precondition::None).await.unwrap();
    assert_eq!(deleted.revision, base + 4);
    assert_eq!(deleted.prev.unwrap().value, b("2"));
    let recreated = store
        .put("/k/a", b("3"), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        (
            recreated.kv.create_revision,
            recreated.kv.mod_revision,
            recreated.kv.version
        ),
        (base + 5, base + 5, 1),
        "a deleted and recreated key starts a new incarnation"
    );
    assert_eq!(store.current_revision().await.unwrap(), base + 5);
    let got = store.get("/k/a", 0).await.unwrap().unwrap();
    assert_eq!(got, recreated.kv);
}

async fn create_if_absent_refuses_existing_keys(backend: Backend) {
    let store = backend.store;
    let first = store
        .put("/c/x", b("one"), Precondition::Absent)
        .await
        .unwrap();
    let before = store.current_revision().await.unwrap();
    match store.put("/c/x", b("two"), Precondition::Absent).await {
        Err(StorageError::PreconditionFailed { key, current }) => {
            assert_eq!(key, "/c/x");
            assert_eq!(*current.unwrap(), first.kv);
        }
        other => panic!("expected a precondition failure, got {other:?}"),
    }
    assert_eq!(
        store.current_revision().await.unwrap(),
        before,
        "a refused write takes no revision"
    );
    assert_eq!(store.get("/c/x", 0).await.unwrap().unwrap().value, b("one"));
}

async fn compare_and_swap_on_mod_revision(backend: Backend) {
    let store = backend.store;
    let v1 = store
        .put("/cas/k", b("1"), Precondition::Absent)
        .await
        .unwrap();
    let v2 = store
        .put("/cas/k", b("2"), Precondition::ModRevision(v1.revision))
        .await
        .unwrap();
    match store
        .put("/cas/k", b("stale"), Precondition::ModRevision(v1.revision))
        .await
    {
        Err(StorageError::PreconditionFailed { current, .. }) => {
            assert_eq!(
                *current.unwrap(),
                v2.kv,
                "the conflict reports the winning write"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    match store
        .put(
            "/cas/missing",
            b("x"),
            Precondition::ModRevision(v1.revision),
        )
        .await
    {
        Err(StorageError::PreconditionFailed { current: None, .. }) => {}
        other => panic!("expected a conflict on a missing key, got {other:?}"),
    }
    assert_eq!(store.get("/cas/k", 0).await.unwrap().unwrap().value, b("2"));
    assert_eq!(store.get("/cas/missing", 0).await.unwrap(), None);
}

async fn delete_honours_preconditions(backend: Backend) {
    let store = backend.store;
    match store.delete("/d/none", Precondition::None).await {
        Err(StorageError::NotFound { key }) => assert_eq!(key, "/d/none"),
        other => panic!("expected not found, got {other:?}"),
    }
    match store.delete("/d/none", Precondition::ModRevision(1)).await {
        Err(StorageError::NotFound { .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
    let v1 = store
        .put("/d/k", b("1"), Precondition::Absent)
        .await
        .unwrap();
    let v2 = store.put("/d/k", b("2"), Precondition::None).await.unwrap();
    match store
        .delete("/d/k", Precondition::ModRevision(v1.revision))
        .await
    {
        Err(StorageError::PreconditionFailed { current, .. }) => {
            assert_eq!(current.unwrap().mod_revision, v2.revision)
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(
        store.get("/d/k", 0).await.unwrap().is_some(),
        "a refused delete keeps the key"
    );
    let deleted = store
        .delete("/d/k", Precondition::ModRevision(v2.revision))
        .await
        .unwrap();
    assert_eq!(deleted.prev.unwrap(), v2.kv);
    assert_eq!(deleted.kv.version, 0);
    assert_eq!(store.get("/d/k", 0).await.unwrap(), None);
}

async fn reads_at_past_revisions(backend: Backend) {
    let store = backend.store;
    let r1 = put(&store, "/p/a", "a1").await;
    let r2 = put(&store, "/p/a", "a2").await;
    let r3 = put(&store, "/p/b", "b1").await;
    let r4 = store
        .delete("/p/a", Precondition::None)
        .await
        .unwrap()
        .revision;
    let r5 = put(&store, "/p/c", "c1").await;
    assert_eq!(store.get("/p/a", r1).await.unwrap().unwrap().value, b("a1"));
    assert_eq!(store.get("/p/a", r3).await.unwrap().unwrap().value, b("a2"));
    assert_eq!(store.get("/p/a", r4).await.unwrap(), None);
    assert_eq!(store.get("/p/b", r2).await.unwrap(), None);
    assert_eq!(list_all(&store, "/p/", r1).await, pairs(&[("/p/a", "a1")]));
    assert_eq!(
        list_all(&store, "/p/", r3).await,
        pairs(&[("/p/a", "a2"), ("/p/b", "b1")])
    );
    assert_eq!(list_all(&store, "/p/", r4).await, pairs(&[("/p/b", "b1")]));
    assert_eq!(
        list_all(&store, "/p/", 0).await,
        pairs(&[("/p/b", "b1"), ("/p/c", "c1")])
    );
    let page = store
        .list(ListRequest {
            prefix: "/p/".into(),
            revision: r3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.revision, r3);
    assert_eq!(page.kvs[0].mod_revision, r2);
    match store.get("/p/a", r5 + 100).await {
        Err(StorageError::FutureRevision { requested, .. }) => assert_eq!(requested, r5 + 100),
        other => panic!("expected a future-revision error, got {other:?}"),
    }
}

async fn pagination_stays_at_one_revision_while_writes_continue(backend: Backend) {
    let store = backend.store;
    for i in 0..25 {
        put(&store, &format!("/pg/{i:02}"), &format!("v{i}")).await;
    }
    let first = store
        .list(ListRequest {
            prefix: "/pg/".into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((first.kvs.len(), first.more, first.count), (10, true, 25));
    let snapshot = first.revision;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..25 {
                put(&store, &format!("/pg/{i:02}"), "changed").await;
                put(&store, &format!("/pg/new-{i:02}"), "new").await;
            }
            for i in 10..15 {
                store
                    .delete(&format!("/pg/{i:02}"), Precondition::None)
                    .await
                    .unwrap();
            }
        })
    };
    let mut seen: Vec<(String, String)> = first
        .kvs
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                String::from_utf8(kv.value.to_vec()).unwrap(),
            )
        })
        .collect();
    let mut last = first.kvs.last().unwrap().key.clone();
    let mut pages = 1;
    loop {
        let page = store
            .list(ListRequest {
                prefix: "/pg/".into(),
                start_after: Some(last.clone()),
                revision: snapshot,
                limit: 10,
            })
            .await
            .unwrap();
        pages += 1;
        assert_eq!(page.revision, snapshot);
        seen.extend(page.kvs.iter().map(|kv| {
            (
                kv.key.clone(),
                String::from_utf8(kv.value.to_vec()).unwrap(),
            )
        }));
        if !page.more {
            break;
        }
        last = page.kvs.last().unwrap().key.clone();
    }
    writer.await.unwrap();
    let expected: Vec<(String, String)> = (0..25)
        .map(|i| (format!("/pg/{i:02}"), format!("v{i}")))
        .collect();
    assert_eq!(seen, expected, "every page reads the first page's snapshot");
    assert_eq!(pages, 3);
    let now = list_all(&store, "/pg/", 0).await;
    assert_eq!(
        now.len(),
        45,
        "the writes did happen: 20 old + 25 new keys now"
    );
}

async fn prefixes_are_isolated(backend: Backend) {
    let store = backend.store;
    let base = store.current_revision().await.unwrap();
    let mut watch = store.watch("/a/", base + 1).await.unwrap();
    put(&store, "/a", "bare").await;
    put(&store, "/ab/y", "other").await;
    put(&store, "/a/x", "mine").await;
    put(&store, "/a0", "after").await;
    assert_eq!(list_all(&store, "/a/", 0).await, pairs(&[("/a/x", "mine")]));
    assert_eq!(
        list_all(&store, "/a", 0).await.len(),
        4,
        "a bare prefix is a byte prefix"
    );
    let events = next_events(&mut watch, 1).await;
    assert_eq!(events[0].kv.key, "/a/x");
    assert_quiet(&mut watch).await;
}

/// An event as (kind, key, value, previous value).
type EventSummary<'a> = (EventKind, &'a str, &'a [u8], Option<&'a [u8]>);

async fn watch_replays_missed_events_exactly_once_in_order(backend: Backend) {
    let store = backend.store;
    put(&store, "/w/a", "a0").await;
    let start = store.current_revision().await.unwrap();
    put(&store, "/w/a", "a1").await;
    put(&store, "/other/z", "z").await;
    put(&store, "/w/b", "b1").await;
    store.delete("/w/a", Precondition::None).await.unwrap();
    put(&store, "/w/c", "c1").await;
    let mut watch = store.watch("/w/", start + 1).await.unwrap();
    let replayed = next_events(&mut watch, 4).await;
    let summary: Vec<EventSummary> = replayed
        .iter()
        .map(|e| {
            (
                e.kind,
                e.kv.key.as_str(),
                e.kv.value.as_ref(),
                e.prev.as_ref().map(|p| p.value.as_ref()),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (EventKind::Put, "/w/a", &b"a1"[..], Some(&b"a0"[..])),
            (EventKind::Put, "/w/b", &b"b1"[..], None),
            (EventKind::Delete, "/w/a", &b""[..], Some(&b"a1"[..])),
            (EventKind::Put, "/w/c", &b"c1"[..], None),
        ]
    );
    let revisions: Vec<i64> = replayed.iter().map(|e| e.revision()).collect();
    assert_eq!(revisions, vec![start + 1, start + 3, start + 4, start + 5]);
    let mut from_now = store.watch("/w/", 0).await.unwrap();
    let live = put(&store, "/w/d", "d1").await;
    let events = next_events(&mut watch, 1).await;
    assert_eq!(
        (events[0].kv.key.as_str(), events[0].revision()),
        ("/w/d", live)
    );
    let events = next_events(&mut from_now, 1).await;
    assert_eq!(
        events[0].revision(),
        live,
        "a watch from now sees only later events"
    );
    assert_quiet(&mut watch).await;
    assert_quiet(&mut from_now).await;
}

async fn watch_delivers_every_event_under_concurrent_writes(backend: Backend) {
    let store = backend.store;
    let start = store.current_revision().await.unwrap() + 1;
    let mut watch = store.watch("/burst/", start).await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    put(&store, &format!("/burst/{w}/{i}"), "v").await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let events = next_events(&mut watch, 400).await;
    let revisions: Vec<i64> = events.iter().map(|e| e.revision()).collect();
    assert_eq!(revisions, (start..start + 400).collect::<Vec<_>>());
    assert_quiet(&mut watch).await;
}

async fn compaction_refuses_old_revisions_and_keeps_the_present(backend: Backend) {
    let store = backend.store;
    let r1 = put(&store, "/cp/a", "a1").await;
    put(&store, "/cp/a", "a2").await;
    put(&store, "/cp/b", "b1").await;
    store.delete("/cp/b", Precondition::None).await.unwrap();
    let compact_at = put(&store, "/cp/c", "c1").await;
    let after = put(&store, "/cp/a", "a3").await;
    store.compact(compact_at).await.unwrap();
    match store.get("/cp/a", r1).await {
        Err(StorageError::Compacted { requested, .. }) => assert_eq!(requested, r1),
        other => panic!("expected compacted, got {other:?}"),
    }
    let mut old = store.watch("/cp/", r1).await.unwrap();
    match watch_error(&mut old).await {
        StorageError::Compacted { requested, .. } => assert_eq!(requested, r1),
        other => panic!("expected compacted, got {other:?}"),
    }
    assert_eq!(
        list_all(&store, "/cp/", compact_at).await,
        pairs(&[("/cp/a", "a2"), ("/cp/c", "c1")]),
        "the compaction revision itself stays readable"
    );
    assert_eq!(
        list_all(&store, "/cp/", 0).await,
        pairs(&[("/cp/a", "a3"), ("/cp/c", "c1")])
    );
    let mut recent = store.watch("/cp/", compact_at + 1).await.unwrap();
    let events = next_events(&mut recent, 1).await;
    assert_eq!(
        (
            events[0].revision(),
            events[0].prev.as_ref().unwrap().value.clone()
        ),
        (after, b("a2"))
    );
    assert!(matches!(
        store.compact(compact_at).await,
        Err(StorageError::Compacted { .. })
    ));
}

async fn values_up_to_the_limit_are_accepted_and_larger_refused(backend: Backend) {
    let store = backend.store;
    let largest = Bytes::from(vec![b'x'; MAX_VALUE_BYTES]);
    store
        .put("/big/ok", largest.clone(), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        store.get("/big/ok", 0).await.unwrap().unwrap().value,
        largest
    );
    let before = store.current_revision().await.unwrap();
    let too_large = Bytes::from(vec![b'x'; MAX_VALUE_BYTES + 1]);
    match store.put("/big/no", too_large, Precondition::None).await {
        Err(error @ StorageError::ValueTooLarge { .. }) => {
            assert!(
                error
                    .to_string()
                    .contains("over the limit of 1572864 bytes"),
                "{error}"
            )
        }
        other => panic!("expected value-too-large, got {other:?}"),
    }
    assert_eq!(store.get("/big/no", 0).await.unwrap(), None);
    assert_eq!(store.current_revision().await.unwrap(), before);
}

async fn concurrent_writers_lose_no_update(backend: Backend) {
    let store = backend.store;
    store
        .put("/counter", b("0"), Precondition::Absent)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..20 {
                    let mut current = store.get("/counter", 0).await.unwrap().unwrap();
                    loop {
                        let n: u64 = std::str::from_utf8(&current.value)
                            .unwrap()
                            .parse()
                            .unwrap();
                        let next = Bytes::from((n + 1).to_string());
                        match store
                            .put(
                                "/counter",
                                next,
                                Precondition::ModRevision(current.mod_revision),
                            )
                            .await
                        {
                            Ok(_) => break,
                            Err(StorageError::PreconditionFailed { current: now, .. }) => {
                                conflicts += 1;
                                current = *now.unwrap();
                            }
                            Err(error) => panic!("{error}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let counter = store.get("/counter", 0).await.unwrap().unwrap();
    assert_eq!(counter.value, b("320"), "after {conflicts} conflicts");
    assert_eq!(counter.version, 321);
    // Blind writes to distinct keys from many tasks all land, each once.
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..32)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for i in 0..10 {
                    revisions.push(put(&store, &format!("/many/{w:02}/{i}"), "v").await);
                }
                revisions
            })
        })
        .collect();
    let mut revisions = BTreeMap::new();
    for task in tasks {
        for revision in task.await.unwrap() {
            assert!(
                revisions.insert(revision, ()).is_none(),
                "revision {revision} reused"
            );
        }
    }
    assert_eq!(list_all(&store, "/many/", 0).await.len(), 320);
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $test() { super::$test(crate::common::memory().await).await } )*
        }
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $test() { super::$test(crate::common::sqlite().await).await } )*
        }
        mod etcd {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $test() { super::$test(crate::common::etcd().await).await } )*
        }
    };
}

conformance!(
    revisions_increase_and_keys_track_create_mod_and_version,
    create_if_absent_refuses_existing_keys,
    compare_and_swap_on_mod_revision,
    delete_honours_preconditions,
    reads_at_past_revisions,
    pagination_stays_at_one_revision_while_writes_continue,
    prefixes_are_isolated,
    watch_replays_missed_events_exactly_once_in_order,
    watch_delivers_every_event_under_concurrent_writes,
    compaction_refuses_old_revisions_and_keeps_the_present,
    values_up_to_the_limit_are_accepted_and_larger_refused,
    concurrent_writers_lose_no_update,
);
