//! The node IPAM controller (upstream's range allocator): gives every node `spec.podCIDR(s)` from the cluster CIDRs, learning existing allocations first and releasing them when nodes go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use client::{Change, EventRecorder, Informers, WorkQueue};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use serde_json::json;

use crate::cidr::CidrSet;

/// Upstream's `--cluster-cidr` and `--node-cidr-mask-size-ipv4/-ipv6`.
#[derive(Clone, Debug)]
pub struct NodeIpamConfig {
    /// One CIDR, or one per family for dual stack (primary first).
    pub cluster_cidrs: Vec<String>,
    pub node_cidr_mask_size_ipv4: u8,
    pub node_cidr_mask_size_ipv6: u8,
}

impl Default for NodeIpamConfig {
    fn default() -> Self {
        NodeIpamConfig {
            cluster_cidrs: vec!["10.42.0.0/16".into()],
            node_cidr_mask_size_ipv4: 24,
            node_cidr_mask_size_ipv6: 64,
        }
    }
}

/// The CIDR sets and what this process has handed to each node.
struct Allocator {
    sets: Vec<CidrSet>,
    by_node: HashMap<String, Vec<String>>,
}

impl Allocator {
    fn occupy(&mut self, node: &str, cidrs: &[String]) {
        for (set, cidr) in self.sets.iter_mut().zip(cidrs) {
            if let Err(error) = set.occupy(cidr) {
                tracing::warn!(node, %cidr, %error, "node carries a pod CIDR outside the cluster CIDR");
            }
        }
        self.by_node.insert(node.to_string(), cidrs.to_vec());
    }

    fn release(&mut self, cidrs: &[String]) {
        for (set, cidr) in self.sets.iter_mut().zip(cidrs) {
            let _ = set.release(cidr);
        }
    }

    /// One subnet from every set, or none at all.
    fn allocate(&mut self) -> Option<Vec<String>> {
        let mut taken = Vec::new();
        for set in &mut self.sets {
            match set.allocate_next() {
                Ok(cidr) => taken.push(cidr),
                Err(_) => {
                    self.release(&taken);
                    return None;
                }
            }
        }
        Some(taken)
    }
}

fn pod_cidrs(node: &Node) -> Vec<String> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    match &spec.pod_cidrs {
        Some(cidrs) if !cidrs.is_empty() => cidrs.clone(),
        _ => spec
            .pod_cidr
            .iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect(),
    }
}

struct Ipam {
    client: Client,
    nodes: client::Informer<Node>,
    allocator: Mutex<Allocator>,
    recorder: EventRecorder,
}

impl Ipam {
    fn allocator(&self) -> MutexGuard<'_, Allocator> {
        self.allocator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn sync(&self, name: String) -> anyhow::Result<Option<std::time::Duration>> {
        let Some(node) = self.nodes.store().get(&ObjectRef::new(&name)) else {
            return Ok(None);
        };
        let existing = pod_cidrs(&node);
        if !existing.is_empty() {
            let mut allocator = self.allocator();
            if allocator.by_node.get(&name) != Some(&existing) {
                // Ours may differ if the node was written by someone else meanwhile.
                if let Some(ours) = allocator.by_node.remove(&name) {
                    allocator.release(&ours);
                }
                allocator.occupy(&name, &existing);
            }
            return Ok(None);
        }
        // A node whose update we made but have not seen yet keeps its CIDRs.
        let known = self.allocator().by_node.get(&name).cloned();
        let cidrs = match known {
            Some(cidrs) => cidrs,
            None => {
                let Some(cidrs) = self.allocator().allocate() else {
                    self.recorder.normal(
                        node.as_ref(),
                        "CIDRNotAvailable",
                        format!("Node {name} status is now: CIDRNotAvailable"),
                    );
                    anyhow::bail!("no pod CIDR left for node {name}");
                };
                self.allocator().by_node.insert(name.clone(), cidrs.clone());
                cidrs
            }
        };
        let patch = json!({"spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}});
        let api: Api<Node> = Api::all(self.client.clone());
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                let mut allocator = self.allocator();
                if let Some(ours) = allocator.by_node.remove(&name) {
                    allocator.release(&ours);
                }
                Ok(None)
            }
            Err(error) => {
                self.recorder.normal(
                    node.as_ref(),
                    "CIDRAssignmentFailed",
                    format!("Node {name} status is now: CIDRAssignmentFailed"),
                );
                let mut allocator = self.allocator();
                if let Some(ours) = allocator.by_node.remove(&name) {
                    allocator.release(&ours);
                }
                Err(error.into())
            }
        }
    }

    fn node_deleted(&self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut allocator = self.allocator();
        let cidrs = allocator
            .by_node
            .remove(&name)
            .unwrap_or_else(|| pod_cidrs(node));
        allocator.release(&cidrs);
    }
}

/// Runs node IPAM until dropped. Fails at once on an unusable configuration.
pub async fn run_node_ipam(
    client: Client,
    informers: Arc<Informers>,
    config: NodeIpamConfig,
) -> anyhow::Result<()> {
    let mut sets = Vec::new();
    for cidr in &config.cluster_cidrs {
        let v6 = cidr.contains(':');
        let mask = if v6 {
            config.node_cidr_mask_size_ipv6
        } else {
            config.node_cidr_mask_size_ipv4
        };
        sets.push(CidrSet::new(cidr, mask)?);
    }
    anyhow::ensure!(!sets.is_empty(), "node IPAM needs a cluster CIDR");
    let nodes = informers.informer::<Node>();
    let mut changes = nodes.subscribe();
    nodes.wait_synced().await;
    let ipam = Arc::new(Ipam {
        recorder: EventRecorder::new(client.clone(), "node-ipam-controller"),
        client,
        nodes,
        allocator: Mutex::new(Allocator {
            sets,
            by_node: HashMap::new(),
        }),
    });
    // Every allocation already made is taken before anything new is handed out.
    for node in ipam.nodes.store().state() {
        let cidrs = pod_cidrs(&node);
        if !cidrs.is_empty() {
            ipam.allocator()
                .occupy(node.metadata.name.as_deref().unwrap_or_default(), &cidrs);
        }
    }
    let queue: WorkQueue<String> = WorkQueue::new();
    let handler = {
        let (ipam, queue) = (ipam.clone(), queue.clone());
        async move {
            while let Some(change) = changes.recv().await {
                match change {
                    Change::Applied { new, .. } => {
                        if pod_cidrs(&new).is_empty()
                            || !ipam
                                .allocator()
                                .by_node
                                .contains_key(new.metadata.name.as_deref().unwrap_or_default())
                        {
                            queue.add(new.metadata.name.clone().unwrap_or_default());
                        }
                    }
                    Change::Deleted(node) => {
                        ipam.node_deleted(&node);
                        // A freed range may be what a waiting node needs.
                        for waiting in ipam.nodes.store().state() {
                            if pod_cidrs(&waiting).is_empty() {
                                queue.add(waiting.metadata.name.clone().unwrap_or_default());
                            }
                        }
                    }
                }
            }
        }
    };
    // One worker: allocations are serial anyway, and order stays predictable.
    let workers = client::workqueue::run_workers(queue, 1, move |name| {
        let ipam = ipam.clone();
        async move { ipam.sync(name).await }
    });
    tokio::join!(handler, workers);
    Ok(())
}
