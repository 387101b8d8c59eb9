//! The node's CNI configuration: a bridge with host-local addresses from the Node's podCIDR, and portmap for hostPorts, written where containerd's CRI plugin reads it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The file name containerd finds first (lexical order) in the conf dir.
pub const CONFIG_FILE: &str = "10-krust.conflist";
/// The network's name, as CNI results and host-local's state carry it.
pub const NETWORK_NAME: &str = "krust";

/// Where a node's pod network comes from.
#[derive(Clone, Debug)]
pub struct PodNetwork {
    /// The Node's `spec.podCIDRs` (one per family).
    pub pod_cidrs: Vec<String>,
    /// The Linux bridge the pods' veths join.
    pub bridge: String,
    /// host-local's allocation state (kept under the agent's data dir so
    /// one machine can host several test agents).
    pub ipam_data_dir: PathBuf,
    /// The pods' MTU when the node network needs a smaller one (VXLAN).
    pub mtu: Option<u32>,
}

/// The conflist: bridge (gateway, hairpin for pods reaching their own
/// Service) with host-local IPAM, then portmap for hostPorts. The bridge
/// plugin's own masquerade is off: it would masquerade pod-to-pod traffic
/// to other nodes; `network` masquerades only traffic leaving the
/// cluster's pod range.
pub fn render(network: &PodNetwork) -> Value {
    let ranges: Vec<Value> = network
        .pod_cidrs
        .iter()
        .map(|cidr| json!([{ "subnet": cidr }]))
        .collect();
    let routes: Vec<Value> = network
        .pod_cidrs
        .iter()
        .map(|cidr| {
            let default = if cidr.contains(':') {
                "::/0"
            } else {
                "0.0.0.0/0"
            };
            json!({ "dst": default })
        })
        .collect();
    let mut bridge = json!({
        "type": "bridge",
        "bridge": network.bridge,
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": ranges,
            "routes": routes,
            "dataDir": network.ipam_data_dir,
        },
    });
    if let Some(mtu) = network.mtu {
        bridge["mtu"] = json!(mtu);
    }
    json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            bridge,
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    })
}

/// Writes the conflist into `conf_dir` (atomically: containerd re-reads
/// the directory on change and must never see half a file).
pub fn write(conf_dir: &Path, network: &PodNetwork) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(conf_dir)?;
    std::fs::create_dir_all(&network.ipam_data_dir)?;
    let path = conf_dir.join(CONFIG_FILE);
    let staging = conf_dir.join(format!(".{CONFIG_FILE}.tmp"));
    let text = serde_json::to_string_pretty(&render(network)).map_err(std::io::Error::other)?;
    std::fs::write(&staging, text)?;
    std::fs::rename(&staging, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_hands_out_the_pod_cidr_and_maps_host_ports() {
        let config = render(&PodNetwork {
            pod_cidrs: vec!["10.42.3.0/24".into()],
            bridge: "krust0".into(),
            ipam_data_dir: "/var/lib/krust/agent/cni".into(),
            mtu: Some(1450),
        });
        let bridge = &config["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], "krust0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["mtu"], 1450);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.42.3.0/24");
        assert_eq!(bridge["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(config["plugins"][1]["type"], "portmap");
    }

    #[test]
    fn dual_stack_gets_a_range_and_a_default_route_per_family() {
        let config = render(&PodNetwork {
            pod_cidrs: vec!["10.42.0.0/24".into(), "fd00:42::/64".into()],
            bridge: "krust0".into(),
            ipam_data_dir: "/tmp/cni".into(),
            mtu: None,
        });
        let ipam = &config["plugins"][0]["ipam"];
        assert_eq!(ipam["ranges"].as_array().unwrap().len(), 2);
        assert_eq!(ipam["routes"][1]["dst"], "::/0");
    }
}
