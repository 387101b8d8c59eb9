//! kube-scheduler's default plugins, one module each: their filters, scores and the per-cycle state they precompute.

pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

/// The largest score a plugin gives a node, before its weight.
pub const MAX_NODE_SCORE: i64 = 100;

/// Upstream's `DefaultNormalizeScore`: scales scores so the largest becomes
/// 100 (and reverses them, 100 - s, when lower is better).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.fill(MAX_NODE_SCORE);
        }
        return;
    }
    for score in scores.iter_mut() {
        let scaled = MAX_NODE_SCORE * *score / max;
        *score = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}
