//! Bounded size: a million updates over a thousand keys, with automatic compaction on, keep the SQLite files (main + WAL) under 64 MiB.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage::{CompactionPolicy, ListRequest, OpenOptions, Precondition};

const UPDATES: u64 = 1_000_000;
const KEYS: u64 = 1_000;
const WRITERS: u64 = 100;
const VALUE_BYTES: usize = 1024;
const LIMIT_BYTES: u64 = 64 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_updates_over_a_thousand_keys_stay_under_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        compaction: Some(CompactionPolicy {
            interval: Duration::from_millis(100),
            window: Duration::ZERO,
        }),
        ..OpenOptions::default()
    };
    let endpoint = format!("sqlite://{}", dir.path().join("state.db").display());
    let store = storage::open(&endpoint, &options).await.unwrap();
    let largest = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            let largest = largest.clone();
            tokio::spawn(async move {
                // Writer w owns keys w, w+WRITERS, ... and cycles through them.
                let own_keys = KEYS / WRITERS;
                for round in 0..UPDATES / WRITERS {
                    let key = format!("/bounded/{:04}", writer + (round % own_keys) * WRITERS);
                    let mut value = vec![b'v'; VALUE_BYTES];
                    value[..8].copy_from_slice(&round.to_be_bytes());
                    store
                        .put(&key, Bytes::from(value), Precondition::None)
                        .await
                        .unwrap();
                    if writer == 0 && round % 500 == 0 {
                        let size = store.db_size().await.unwrap();
                        largest.fetch_max(size, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let elapsed = started.elapsed();
    let final_size = store.db_size().await.unwrap();
    let wal_size = std::fs::metadata(dir.path().join("state.db-wal")).map_or(0, |m| m.len());
    eprintln!(
        "bounded: WAL {:.1} MiB of the final size",
        wal_size as f64 / 1048576.0
    );
    let largest = largest.load(Ordering::Relaxed).max(final_size);
    let revision = store.current_revision().await.unwrap();
    eprintln!(
        "bounded: {UPDATES} updates of {VALUE_BYTES} B over {KEYS} keys in {elapsed:.1?} ({:.0}/s); \
         largest sampled size {:.1} MiB, final {:.1} MiB",
        UPDATES as f64 / elapsed.as_secs_f64(),
        largest as f64 / 1048576.0,
        final_size as f64 / 1048576.0
    );
    assert_eq!(revision, UPDATES as i64);
    assert!(final_size < LIMIT_BYTES, "final size {final_size} bytes");
    assert!(
        largest < LIMIT_BYTES,
        "size reached {largest} bytes during the run"
    );
    let all = store
        .list(ListRequest {
            prefix: "/bounded/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.kvs.len() as u64, KEYS, "compaction kept every live key");
    let last_round = UPDATES / WRITERS - 1;
    let own_keys = KEYS / WRITERS;
    for kv in &all.kvs {
        let index: u64 = kv.key.trim_start_matches("/bounded/").parse().unwrap();
        let round = u64::from_be_bytes(kv.value[..8].try_into().unwrap());
        let newest_round_for_key = last_round - (last_round - index / WRITERS) % own_keys;
        assert_eq!(
            round, newest_round_for_key,
            "{} holds a stale value",
            kv.key
        );
    }
}
