//! The kubelet's resource figures: `/stats/summary` (the Summary API that metrics-server and `kubectl top` read), `/metrics/resource` (the same numbers in Prometheus text) and `/metrics` (the kubelet's own), from /proc, statvfs and CRI container stats.
//!
//! CPU rates (`usageNanoCores`) need two samples: each request compares
//! with the sample kept from the request before, as cAdvisor's rolling
//! window does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cri::api;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::cri_config::{CONTAINER_NAME_LABEL, POD_UID_LABEL};
use crate::host;

/// One cumulative CPU reading.
#[derive(Clone, Copy, Debug)]
struct CpuSample {
    at_nanos: i128,
    usage_nanos: u64,
}

/// The rate between two readings, in nanocores.
fn nano_cores(previous: Option<CpuSample>, now: CpuSample) -> Option<u64> {
    let previous = previous?;
    let elapsed = now.at_nanos - previous.at_nanos;
    if elapsed <= 0 || now.usage_nanos < previous.usage_nanos {
        return None;
    }
    Some(
        ((now.usage_nanos - previous.usage_nanos) as u128 * 1_000_000_000 / elapsed as u128) as u64,
    )
}

/// What the stats endpoints read, and the CPU samples they keep.
pub struct StatsSource {
    pub node_name: String,
    /// The agent's data dir: its filesystem is the node's.
    pub data_dir: PathBuf,
    pub logs_root: PathBuf,
    pub pods_root: PathBuf,
    samples: Mutex<HashMap<String, CpuSample>>,
}

impl StatsSource {
    pub fn new(
        node_name: String,
        data_dir: PathBuf,
        logs_root: PathBuf,
        pods_root: PathBuf,
    ) -> StatsSource {
        StatsSource {
            node_name,
            data_dir,
            logs_root,
            pods_root,
            samples: Mutex::new(HashMap::new()),
        }
    }

    fn rate(&self, key: &str, sample: CpuSample) -> Option<u64> {
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = samples.insert(key.to_string(), sample);
        nano_cores(previous, sample)
    }

    fn forget_except(&self, keys: &[String]) {
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        samples.retain(|key, _| key == "node" || keys.contains(key));
    }
}

fn now_nanos() -> i128 {
    Timestamp::now().as_nanosecond()
}

fn rfc3339(nanos: i128) -> String {
    Timestamp::from_nanosecond(nanos)
        .map(|at| at.to_string())
        .unwrap_or_default()
}

/// The node's cumulative CPU time (all but idle and iowait), in ns.
fn node_cpu_nanos(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(index, _)| ![3, 4].contains(index) && *index < 8)
        .map(|(_, ticks)| ticks)
        .sum();
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(busy * (1_000_000_000 / per_second))
}

fn boot_time(proc_stat: &str) -> Option<i128> {
    let seconds: i128 = proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(seconds * 1_000_000_000)
}

fn meminfo(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let kilobytes: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((key.to_string(), kilobytes * 1024))
        })
        .collect()
}

/// Bytes (and inodes) used under `path`, not following links nor leaving
/// the filesystem's tree.
fn disk_usage(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut bytes = 0;
    let mut inodes = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.path().symlink_metadata() else {
                continue;
            };
            inodes += 1;
            bytes += metadata.blocks() * 512;
            if metadata.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    (bytes, inodes)
}

fn value(wrapped: &Option<api::UInt64Value>) -> Option<u64> {
    wrapped.as_ref().map(|value| value.value)
}

/// One container's figures as the Summary API names them.
struct ContainerFigures {
    id: String,
    name: String,
    pod_uid: String,
    cpu_nanos: u64,
    nano_cores: Option<u64>,
    working_set: u64,
    usage: u64,
    rss: u64,
    rootfs_used: u64,
    at: i128,
}

async fn container_figures(
    source: &StatsSource,
    runtime: &dyn crate::sync::Runtime,
) -> Vec<ContainerFigures> {
    let stats = runtime.list_container_stats(None).await.unwrap_or_default();
    let mut figures = Vec::new();
    for stat in stats {
        let Some(attributes) = &stat.attributes else {
            continue;
        };
        let (Some(pod_uid), Some(name)) = (
            attributes.labels.get(POD_UID_LABEL),
            attributes.labels.get(CONTAINER_NAME_LABEL),
        ) else {
            continue;
        };
        let cpu = stat.cpu.unwrap_or_default();
        let memory = stat.memory.unwrap_or_default();
        let cpu_nanos = value(&cpu.usage_core_nano_seconds).unwrap_or(0);
        let at = if cpu.timestamp > 0 {
            i128::from(cpu.timestamp)
        } else {
            now_nanos()
        };
        let nano_cores = source.rate(
            &attributes.id,
            CpuSample {
                at_nanos: at,
                usage_nanos: cpu_nanos,
            },
        );
        figures.push(ContainerFigures {
            id: attributes.id.clone(),
            name: name.clone(),
            pod_uid: pod_uid.clone(),
            cpu_nanos,
            nano_cores,
            working_set: value(&memory.working_set_bytes).unwrap_or(0),
            usage: value(&memory.usage_bytes).unwrap_or(0),
            rss: value(&memory.rss_bytes).unwrap_or(0),
            rootfs_used: stat
                .writable_layer
                .as_ref()
                .and_then(|layer| value(&layer.used_bytes))
                .unwrap_or(0),
            at,
        });
    }
    figures
}

fn cpu_json(at: i128, nano_cores: Option<u64>, core_nanos: u64) -> Value {
    let mut cpu = json!({"time": rfc3339(at), "usageCoreNanoSeconds": core_nanos});
    if let Some(rate) = nano_cores {
        cpu["usageNanoCores"] = json!(rate);
    }
    cpu
}

/// The Summary API document (`/stats/summary`).
pub async fn summary(
    source: &StatsSource,
    runtime: &dyn crate::sync::Runtime,
    pods: &[Pod],
) -> Value {
    let now = now_nanos();
    let proc_stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let node_cpu = node_cpu_nanos(&proc_stat).unwrap_or(0);
    let node_rate = source.rate(
        "node",
        CpuSample {
            at_nanos: now,
            usage_nanos: node_cpu,
        },
    );
    let memory = meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    let total = memory.get("MemTotal").copied().unwrap_or(0);
    let available = memory.get("MemAvailable").copied().unwrap_or(0);
    let free = memory.get("MemFree").copied().unwrap_or(0);
    let inactive_file = memory.get("Inactive(file)").copied().unwrap_or(0);
    let usage = total.saturating_sub(free);
    let filesystem = host::filesystem_stats(&source.data_dir);
    let fs = json!({
        "time": rfc3339(now),
        "availableBytes": filesystem.available_bytes,
        "capacityBytes": filesystem.capacity_bytes,
        "usedBytes": filesystem.capacity_bytes.saturating_sub(filesystem.free_bytes),
        "inodesFree": filesystem.inodes_free,
        "inodes": filesystem.inodes,
        "inodesUsed": filesystem.inodes.saturating_sub(filesystem.inodes_free),
    });
    let image_fs_used: u64 = runtime
        .image_fs_info()
        .await
        .map(|info| {
            info.image_filesystems
                .iter()
                .filter_map(|usage| value(&usage.used_bytes))
                .sum()
        })
        .unwrap_or(0);
    let mut image_fs = fs.clone();
    image_fs["usedBytes"] = json!(image_fs_used);
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    let processes: u64 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            text.split_whitespace()
                .nth(3)?
                .split('/')
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let node = json!({
        "nodeName": source.node_name,
        "startTime": rfc3339(boot_time(&proc_stat).unwrap_or(now)),
        "cpu": cpu_json(now, node_rate, node_cpu),
        "memory": {
            "time": rfc3339(now),
            "availableBytes": available,
            "usageBytes": usage,
            "workingSetBytes": usage.saturating_sub(inactive_file),
            "rssBytes": total.saturating_sub(available),
            "pageFaults": 0,
            "majorPageFaults": 0,
        },
        "fs": fs,
        "runtime": {"imageFs": image_fs},
        "rlimit": {"time": rfc3339(now), "maxpid": pid_max, "curproc": processes},
    });

    let containers = container_figures(source, runtime).await;
    let mut pod_entries = Vec::new();
    for pod in pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mine: Vec<&ContainerFigures> = containers
            .iter()
            .filter(|figure| figure.pod_uid == uid)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let log_dir = crate::cri_config::pod_log_directory(&source.logs_root, pod);
        let container_entries: Vec<Value> = mine
            .iter()
            .map(|figure| {
                let (log_bytes, log_inodes) = disk_usage(&log_dir.join(&figure.name));
                json!({
                    "name": figure.name,
                    "startTime": pod.status.as_ref().and_then(|status| status.start_time.as_ref()).map(|time| time.0.to_string()),
                    "cpu": cpu_json(figure.at, figure.nano_cores, figure.cpu_nanos),
                    "memory": {
                        "time": rfc3339(figure.at),
                        "usageBytes": figure.usage,
                        "workingSetBytes": figure.working_set,
                        "rssBytes": figure.rss,
                    },
                    "rootfs": {"time": rfc3339(now), "usedBytes": figure.rootfs_used},
                    "logs": {"time": rfc3339(now), "usedBytes": log_bytes, "inodesUsed": log_inodes},
                })
            })
            .collect();
        let cpu_nanos: u64 = mine.iter().map(|figure| figure.cpu_nanos).sum();
        let rates: Option<u64> = mine.iter().map(|figure| figure.nano_cores).sum();
        let working_set: u64 = mine.iter().map(|figure| figure.working_set).sum();
        let memory_usage: u64 = mine.iter().map(|figure| figure.usage).sum();
        let volumes_dir = source.pods_root.join(&uid).join("volumes");
        let mut volumes = Vec::new();
        if let Ok(plugins) = std::fs::read_dir(&volumes_dir) {
            for plugin in plugins.flatten() {
                for volume in std::fs::read_dir(plugin.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let (used, inodes) = disk_usage(&volume.path());
                    volumes.push(json!({
                        "time": rfc3339(now),
                        "name": volume.file_name().to_string_lossy(),
                        "usedBytes": used,
                        "inodesUsed": inodes,
                    }));
                }
            }
        }
        let ephemeral: u64 = container_entries
            .iter()
            .map(|entry| {
                entry["rootfs"]["usedBytes"].as_u64().unwrap_or(0)
                    + entry["logs"]["usedBytes"].as_u64().unwrap_or(0)
            })
            .sum();
        pod_entries.push(json!({
            "podRef": {
                "name": pod.metadata.name,
                "namespace": pod.metadata.namespace,
                "uid": uid,
            },
            "startTime": pod.status.as_ref().and_then(|status| status.start_time.as_ref()).map(|time| time.0.to_string()),
            "containers": container_entries,
            "cpu": cpu_json(now, rates, cpu_nanos),
            "memory": {"time": rfc3339(now), "usageBytes": memory_usage, "workingSetBytes": working_set},
            "volume": volumes,
            "ephemeral-storage": {"time": rfc3339(now), "usedBytes": ephemeral},
        }));
    }
    source.forget_except(
        &containers
            .iter()
            .map(|figure| figure.id.clone())
            .collect::<Vec<_>>(),
    );
    json!({"node": node, "pods": pod_entries})
}

/// `/metrics/resource`: the Summary's CPU and memory figures in Prometheus
/// text, as metrics-server scrapes them.
pub fn resource_metrics(summary: &Value) -> String {
    let mut text = String::new();
    let millis = |time: &Value| -> i64 {
        time.as_str()
            .and_then(|time| time.parse::<Timestamp>().ok())
            .map(|time| time.as_millisecond())
            .unwrap_or(0)
    };
    let seconds = |nanos: &Value| nanos.as_u64().unwrap_or(0) as f64 / 1e9;
    let node = &summary["node"];
    text.push_str("# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n# TYPE node_cpu_usage_seconds_total counter\n");
    text.push_str(&format!(
        "node_cpu_usage_seconds_total {} {}\n",
        seconds(&node["cpu"]["usageCoreNanoSeconds"]),
        millis(&node["cpu"]["time"])
    ));
    text.push_str("# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes\n# TYPE node_memory_working_set_bytes gauge\n");
    text.push_str(&format!(
        "node_memory_working_set_bytes {} {}\n",
        node["memory"]["workingSetBytes"].as_u64().unwrap_or(0),
        millis(&node["memory"]["time"])
    ));
    let pods = summary["pods"].as_array().cloned().unwrap_or_default();
    let labels = |pod: &Value, container: Option<&Value>| -> String {
        let reference = &pod["podRef"];
        match container {
            Some(container) => format!(
                "container=\"{}\",namespace=\"{}\",pod=\"{}\"",
                container["name"].as_str().unwrap_or_default(),
                reference["namespace"].as_str().unwrap_or_default(),
                reference["name"].as_str().unwrap_or_default()
            ),
            None => format!(
                "namespace=\"{}\",pod=\"{}\"",
                reference["namespace"].as_str().unwrap_or_default(),
                reference["name"].as_str().unwrap_or_default()
            ),
        }
    };
    text.push_str("# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n");
    for pod in &pods {
        for container in pod["containers"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "container_cpu_usage_seconds_total{{{}}} {} {}\n",
                labels(pod, Some(container)),
                seconds(&container["cpu"]["usageCoreNanoSeconds"]),
                millis(&container["cpu"]["time"])
            ));
        }
    }
    text.push_str("# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes\n# TYPE container_memory_working_set_bytes gauge\n");
    for pod in &pods {
        for container in pod["containers"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "container_memory_working_set_bytes{{{}}} {} {}\n",
                labels(pod, Some(container)),
                container["memory"]["workingSetBytes"].as_u64().unwrap_or(0),
                millis(&container["memory"]["time"])
            ));
        }
    }
    text.push_str("# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds\n# TYPE pod_cpu_usage_seconds_total counter\n");
    for pod in &pods {
        text.push_str(&format!(
            "pod_cpu_usage_seconds_total{{{}}} {} {}\n",
            labels(pod, None),
            seconds(&pod["cpu"]["usageCoreNanoSeconds"]),
            millis(&pod["cpu"]["time"])
        ));
    }
    text.push_str("# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes\n# TYPE pod_memory_working_set_bytes gauge\n");
    for pod in &pods {
        text.push_str(&format!(
            "pod_memory_working_set_bytes{{{}}} {} {}\n",
            labels(pod, None),
            pod["memory"]["workingSetBytes"].as_u64().unwrap_or(0),
            millis(&pod["memory"]["time"])
        ));
    }
    text.push_str("# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE scrape_error gauge\nscrape_error 0\n");
    text
}

/// `/metrics`: the kubelet's own figures.
pub fn kubelet_metrics(node_name: &str, pods: &[Pod], running_containers: usize) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_bytes = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_seconds: f64 = fields
        .get(11..13)
        .map(|both| {
            both.iter()
                .filter_map(|value| value.parse::<f64>().ok())
                .sum::<f64>()
                / ticks
        })
        .unwrap_or(0.0);
    let running_pods = pods
        .iter()
        .filter(|pod| {
            pod.status
                .as_ref()
                .and_then(|status| status.phase.as_deref())
                == Some("Running")
        })
        .count();
    format!(
        "# HELP kubelet_node_name [ALPHA] The node's name. The count is always 1.\n# TYPE kubelet_node_name gauge\nkubelet_node_name{{node=\"{node_name}\"}} 1\n\
         # HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox\n# TYPE kubelet_running_pods gauge\nkubelet_running_pods {running_pods}\n\
         # HELP kubelet_running_containers [ALPHA] Number of containers currently running\n# TYPE kubelet_running_containers gauge\nkubelet_running_containers{{container_state=\"running\"}} {running_containers}\n\
         # HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss_bytes}\n\
         # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu_seconds}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_rates_come_from_two_samples() {
        let first = CpuSample {
            at_nanos: 0,
            usage_nanos: 0,
        };
        let second = CpuSample {
            at_nanos: 2_000_000_000,
            usage_nanos: 500_000_000,
        };
        assert_eq!(nano_cores(None, first), None);
        assert_eq!(nano_cores(Some(first), second), Some(250_000_000));
        // A restarted container's counter went back: no rate.
        assert_eq!(nano_cores(Some(second), first), None);
    }

    #[test]
    fn node_cpu_counts_busy_ticks_only() {
        // SAFETY: sysconf only reads a system constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        let stat =
            "cpu  100 0 50 1000 30 0 0 0 0 0\ncpu0 100 0 50 1000 30 0 0 0 0 0\nbtime 1700000000\n";
        assert_eq!(node_cpu_nanos(stat), Some(150 * (1_000_000_000 / ticks)));
        assert_eq!(boot_time(stat), Some(1_700_000_000_000_000_000));
    }

    #[test]
    fn resource_metrics_name_pods_and_containers() {
        let summary = json!({
            "node": {"cpu": {"time": "2026-01-01T00:00:00Z", "usageCoreNanoSeconds": 2_500_000_000u64},
                     "memory": {"time": "2026-01-01T00:00:00Z", "workingSetBytes": 1024}},
            "pods": [{"podRef": {"name": "web", "namespace": "shop"},
                      "cpu": {"time": "2026-01-01T00:00:00Z", "usageCoreNanoSeconds": 1_000_000_000u64},
                      "memory": {"time": "2026-01-01T00:00:00Z", "workingSetBytes": 512},
                      "containers": [{"name": "c", "cpu": {"time": "2026-01-01T00:00:00Z", "usageCoreNanoSeconds": 1_000_000_000u64},
                                      "memory": {"time": "2026-01-01T00:00:00Z", "workingSetBytes": 512}}]}],
        });
        let text = resource_metrics(&summary);
        assert!(
            text.contains("node_cpu_usage_seconds_total 2.5 1767225600000\n"),
            "{text}"
        );
        assert!(text.contains("container_memory_working_set_bytes{container=\"c\",namespace=\"shop\",pod=\"web\"} 512 "));
        assert!(text.contains("pod_cpu_usage_seconds_total{namespace=\"shop\",pod=\"web\"} 1 "));
    }
}
