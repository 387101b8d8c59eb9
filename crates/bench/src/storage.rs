//! `krust bench storage`: durable 1 KiB writes from N concurrent writers against SQLite and, in the same run, a private etcd.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use storage::etcd_process::EtcdProcess;
use storage::{DynStorage, OpenOptions, Precondition};

use crate::Percentiles;

/// What to measure.
#[derive(Clone, Debug)]
pub struct StorageBench {
    pub backends: Vec<String>,
    pub writers: Vec<usize>,
    pub value_bytes: usize,
    pub duration: Duration,
    /// Where the SQLite files and etcd's data live (the same disk for both).
    pub dir: PathBuf,
}

impl Default for StorageBench {
    fn default() -> Self {
        StorageBench {
            backends: vec!["sqlite".into(), "etcd".into()],
            writers: vec![1, 16, 256],
            value_bytes: 1024,
            duration: Duration::from_secs(5),
            dir: std::env::temp_dir(),
        }
    }
}

/// One configuration's outcome.
#[derive(Clone, Debug)]
pub struct StorageResult {
    pub backend: String,
    pub writers: usize,
    pub writes: u64,
    pub errors: u64,
    pub writes_per_s: f64,
    pub latency: (f64, f64),
}

impl StorageResult {
    fn line(&self, bench: &StorageBench) -> String {
        format!(
            "bench=storage backend={} writers={} value_bytes={} duration_s={} writes={} writes_per_s={:.0} p50_ms={:.2} p99_ms={:.2} errors={}",
            self.backend,
            self.writers,
            bench.value_bytes,
            bench.duration.as_secs_f64(),
            self.writes,
            self.writes_per_s,
            self.latency.0,
            self.latency.1,
            self.errors
        )
    }
}

/// Runs every backend × writer count and prints a line for each, then the
/// SQLite/etcd throughput ratio at the largest writer count.
pub async fn run(bench: &StorageBench, out: &mut impl Write) -> anyhow::Result<Vec<StorageResult>> {
    let mut results = Vec::new();
    for backend in &bench.backends {
        if backend == "etcd" && !on_path("etcd") {
            writeln!(out, "bench=storage backend=etcd skipped=etcd-not-on-PATH")?;
            continue;
        }
        for &writers in &bench.writers {
            let result = measure(bench, backend, writers).await?;
            writeln!(out, "{}", result.line(bench))?;
            out.flush()?;
            results.push(result);
        }
    }
    let most = bench.writers.iter().copied().max().unwrap_or(0);
    let at = |name: &str| {
        results
            .iter()
            .find(|r| r.backend == name && r.writers == most)
            .map(|r| r.writes_per_s)
    };
    if let (Some(sqlite), Some(etcd)) = (at("sqlite"), at("etcd")) {
        writeln!(
            out,
            "bench=storage comparison=sqlite/etcd writers={most} throughput_ratio={:.2}",
            sqlite / etcd
        )?;
    }
    Ok(results)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// A fresh store of one backend; `_keep` holds its files or process.
async fn fresh_store(
    bench: &StorageBench,
    backend: &str,
) -> anyhow::Result<(DynStorage, Box<dyn std::any::Any + Send>)> {
    std::fs::create_dir_all(&bench.dir)
        .with_context(|| format!("creating {}", bench.dir.display()))?;
    match backend {
        "sqlite" => {
            let dir = tempfile::Builder::new()
                .prefix("krust-bench-")
                .tempdir_in(&bench.dir)?;
            let endpoint = format!("sqlite://{}", dir.path().join("state.db").display());
            let store = storage::open(&endpoint, &OpenOptions::default()).await?;
            Ok((store, Box::new(dir)))
        }
        "etcd" => {
            let parent = bench.dir.clone();
            let process = tokio::task::spawn_blocking(move || EtcdProcess::start_in(&parent, None))
                .await?
                .map_err(anyhow::Error::msg)?;
            let store = storage::open(&process.endpoint(), &OpenOptions::default()).await?;
            Ok((store, Box::new(process)))
        }
        "memory" => Ok((
            storage::open("memory://", &OpenOptions::default()).await?,
            Box::new(()),
        )),
        other => anyhow::bail!("unknown backend {other:?} (expected sqlite, etcd or memory)"),
    }
}

async fn measure(
    bench: &StorageBench,
    backend: &str,
    writers: usize,
) -> anyhow::Result<StorageResult> {
    let (store, _keep) = fresh_store(bench, backend).await?;
    let value = Bytes::from(vec![b'x'; bench.value_bytes]);
    let started = Instant::now();
    let deadline = started + bench.duration;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                let mut latencies_us = Vec::with_capacity(4096);
                let mut errors = 0u64;
                let mut sequence = 0u64;
                while Instant::now() < deadline {
                    let key = format!("/bench/{writer:04}/{sequence:010}");
                    sequence += 1;
                    let began = Instant::now();
                    match store.put(&key, value.clone(), Precondition::None).await {
                        Ok(_) => latencies_us
                            .push(began.elapsed().as_micros().min(u32::MAX as u128) as u32),
                        Err(_) => errors += 1,
                    }
                }
                (latencies_us, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (task_latencies, task_errors) = task.await?;
        latencies.extend(task_latencies);
        errors += task_errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writes = latencies.len() as u64;
    let percentiles = Percentiles::of(&mut latencies);
    Ok(StorageResult {
        backend: backend.to_string(),
        writers,
        writes,
        errors,
        writes_per_s: writes as f64 / elapsed,
        latency: (percentiles.p50_ms, percentiles.p99_ms),
    })
}
