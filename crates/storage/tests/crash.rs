//! Crash test: a child process writes to SQLite under load and is SIGKILLed at random moments; every acknowledged write must survive.
//!
//! The child is this test binary itself, re-run with `--ignored --exact
//! crash_child` and the database path in the environment. It prints one
//! `ack` line per write only after the write returned, so every line the
//! parent reads names a write the store promised was durable.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rand::Rng;
use storage::{OpenOptions, Precondition};

const DB_ENV: &str = "KRUST_CRASH_TEST_DB";
const WRITERS: usize = 32;
const SLOTS_PER_WRITER: u64 = 40;
const ROUNDS: usize = 6;

/// A value that proves its own integrity: `writer:seq:` then filler derived
/// from both, so a torn or mixed-up value cannot pass `parse_value`.
fn make_value(writer: usize, seq: u64) -> Vec<u8> {
    let mut value = format!("{writer}:{seq}:").into_bytes();
    let len = 200 + (seq % 7) as usize * 150;
    value.extend((0..len).map(|i| b'a' + ((writer as u64 * 31 + seq * 17 + i as u64) % 26) as u8));
    value
}

fn parse_value(value: &[u8]) -> (usize, u64) {
    let text = std::str::from_utf8(value).expect("value is not UTF-8: torn write");
    let mut parts = text.splitn(3, ':');
    let writer: usize = parts.next().unwrap().parse().expect("torn value");
    let seq: u64 = parts.next().unwrap().parse().expect("torn value");
    assert_eq!(
        value,
        make_value(writer, seq).as_slice(),
        "torn or corrupt value"
    );
    (writer, seq)
}

fn key(writer: usize, seq: u64) -> String {
    format!("/crash/{writer:02}/{:02}", seq % SLOTS_PER_WRITER)
}

#[test]
#[ignore = "runs only as the child process of sqlite_survives_sigkill_under_load"]
fn crash_child() {
    let path = std::env::var(DB_ENV).expect("crash_child runs only under the crash test");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let endpoint = format!("sqlite://{path}");
        let options = OpenOptions {
            compaction: None,
            ..Default::default()
        };
        let store = storage::open(&endpoint, &options).await.unwrap();
        let out = Arc::new(Mutex::new(std::io::stdout()));
        // Continue each writer's sequence where the previous round stopped.
        let mut start = vec![0u64; WRITERS];
        for kv in store
            .list(storage::ListRequest {
                prefix: "/crash/".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .kvs
        {
            let (writer, seq) = parse_value(&kv.value);
            start[writer] = start[writer].max(seq + 1);
        }
        let tasks: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let store = store.clone();
                let out = out.clone();
                let first = start[writer];
                tokio::spawn(async move {
                    for seq in first.. {
                        let key = key(writer, seq);
                        let written = if seq % 13 == 12 {
                            match store.delete(&key, Precondition::None).await {
                                Ok(result) => Some(result.revision),
                                Err(storage::StorageError::NotFound { .. }) => None,
                                Err(error) => panic!("{error}"),
                            }
                        } else {
                            let value = Bytes::from(make_value(writer, seq));
                            Some(
                                store
                                    .put(&key, value, Precondition::None)
                                    .await
                                    .unwrap()
                                    .revision,
                            )
                        };
                        if let Some(revision) = written {
                            let op = if seq % 13 == 12 { "del" } else { "put" };
                            let mut out = out.lock().unwrap();
                            writeln!(out, "ack {op} {writer} {seq} {revision}").unwrap();
                            out.flush().unwrap();
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

/// The newest acknowledged write to one key.
#[derive(Clone, Copy, Debug)]
struct Acked {
    deleted: bool,
    seq: u64,
    revision: i64,
}

#[test]
fn sqlite_survives_sigkill_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut acked: BTreeMap<String, Acked> = BTreeMap::new();
    let mut max_acked_revision = 0i64;
    let mut revisions = std::collections::HashSet::new();
    let mut rng = rand::rng();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DB_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        let lifetime = Duration::from_millis(rng.random_range(300..1500));
        std::thread::sleep(lifetime);
        // SIGKILL: no destructor, no checkpoint, no orderly shutdown.
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut round_acks = 0;
        for line in &lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first() != Some(&"ack") {
                continue;
            }
            let (writer, seq, revision): (usize, u64, i64) = (
                fields[2].parse().unwrap(),
                fields[3].parse().unwrap(),
                fields[4].parse().unwrap(),
            );
            assert!(
                revisions.insert(revision),
                "revision {revision} acknowledged twice"
            );
            let entry = Acked {
                deleted: fields[1] == "del",
                seq,
                revision,
            };
            let slot = acked.entry(key(writer, seq)).or_insert(entry);
            if entry.revision >= slot.revision {
                *slot = entry;
            }
            max_acked_revision = max_acked_revision.max(revision);
            round_acks += 1;
        }
        assert!(
            round_acks > 0,
            "round {round}: the child acknowledged nothing in {lifetime:?}"
        );
        runtime.block_on(verify(&path, &acked, max_acked_revision));
        eprintln!(
            "round {round}: killed after {lifetime:?}, {round_acks} acknowledged writes verified"
        );
    }
}

async fn verify(path: &std::path::Path, acked: &BTreeMap<String, Acked>, max_acked: i64) {
    let endpoint = format!("sqlite://{}", path.display());
    let options = OpenOptions {
        compaction: None,
        ..Default::default()
    };
    let store = storage::open(&endpoint, &options).await.unwrap();
    let head = store.current_revision().await.unwrap();
    assert!(
        head >= max_acked,
        "revision went back: {head} < acknowledged {max_acked}"
    );
    for (key, expected) in acked {
        // The store as of the acknowledged revision holds exactly that write.
        let at_ack = store.get(key, expected.revision).await.unwrap();
        if expected.deleted {
            assert_eq!(
                at_ack, None,
                "{key}: acknowledged delete at {} lost",
                expected.revision
            );
        } else {
            let kv = at_ack
                .unwrap_or_else(|| panic!("{key}: acknowledged put at {} lost", expected.revision));
            assert_eq!(
                kv.mod_revision, expected.revision,
                "{key}: acknowledged put lost"
            );
            assert_eq!(parse_value(&kv.value).1, expected.seq, "{key}: wrong value");
        }
        // Later writes may have committed without an acknowledgement.
        if let Some(kv) = store.get(key, 0).await.unwrap() {
            assert!(kv.mod_revision >= expected.revision);
            parse_value(&kv.value);
        }
    }
    // History holds every revision exactly once: replaying it from the
    // start yields 1..=head with no gap, duplicate or torn value.
    let mut watch = store.watch("/", 1).await.unwrap();
    let mut expected_revision = 1;
    while expected_revision <= head {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("history replay stalled")
            .expect("watch ended")
            .expect("watch failed");
        assert_eq!(
            event.revision(),
            expected_revision,
            "gap or duplicate in history"
        );
        if event.kv.key.starts_with("/crash/") && !event.kv.value.is_empty() {
            parse_value(&event.kv.value);
        }
        expected_revision += 1;
    }
    let next = store
        .put("/probe", Bytes::from_static(b"p"), Precondition::None)
        .await
        .unwrap();
    assert_eq!(
        next.revision,
        head + 1,
        "revisions continue strictly increasing after a crash"
    );
    store.delete("/probe", Precondition::None).await.unwrap();
    drop(store);
    let connection = rusqlite::Connection::open(path).unwrap();
    let integrity: String = connection
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}
