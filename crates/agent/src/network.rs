//! The flat pod network between nodes, as flannel builds it: forwarding on, pod egress masqueraded (pod-to-pod never), and a route to every other node's podCIDR, over VXLAN (`vxlan`, works across L3) or straight to the node (`host-gw`, shared L2).
//!
//! Each node publishes what others need to reach it in flannel's Node
//! annotations (public IP, VTEP MAC); every agent follows all Nodes and
//! keeps its routes, neighbour and FDB entries equal to what they say.
//! Routes the agent owns carry their own protocol number, so stale ones are
//! found and removed after a restart or a node's departure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Node;
use serde_json::json;

/// flannel's annotations, so tools that know flannel read ours.
pub const BACKEND_TYPE_ANNOTATION: &str = "flannel.alpha.coreos.com/backend-type";
pub const BACKEND_DATA_ANNOTATION: &str = "flannel.alpha.coreos.com/backend-data";
pub const PUBLIC_IP_ANNOTATION: &str = "flannel.alpha.coreos.com/public-ip";
/// The routing protocol number marking the agent's routes (`ip route ...
/// proto 75`).
pub const ROUTE_PROTOCOL: &str = "75";
/// flannel's VXLAN defaults: VNI 1 on the Linux port 8472.
pub const VXLAN_VNI: u32 = 1;
pub const VXLAN_PORT: u16 = 8472;
/// The VXLAN header costs this much of the underlying link's MTU.
const VXLAN_OVERHEAD: u32 = 50;

/// `--flannel-backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Vxlan,
    HostGw,
    /// An external CNI owns the pod network: the agent writes no CNI
    /// config, routes or masquerade rules.
    None,
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(text: &str) -> Result<Backend, String> {
        match text {
            "vxlan" => Ok(Backend::Vxlan),
            "host-gw" => Ok(Backend::HostGw),
            "none" => Ok(Backend::None),
            other => Err(format!(
                "unknown flannel backend {other:?}: valid backends are vxlan, host-gw, none"
            )),
        }
    }
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
            Backend::None => "none",
        }
    }
}

/// This node's place in the pod network.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    pub backend: Backend,
    pub node_name: String,
    pub node_ip: IpAddr,
    /// The whole cluster's pod range(s) (`--cluster-cidr`): traffic within
    /// is never masqueraded.
    pub cluster_cidrs: Vec<String>,
    /// The CNI bridge; also names the agent's netfilter table, so several
    /// test agents on one host keep to their own.
    pub bridge: String,
    pub vxlan_device: String,
}

impl NetworkConfig {
    /// The nftables table holding the egress masquerade and forward rules.
    pub fn table_name(&self) -> String {
        format!("krust-network-{}", self.bridge)
    }
}

/// One other node's pod range and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    pub pod_cidr: Ipv4Cidr,
    pub public_ip: Ipv4Addr,
    /// The peer's VTEP MAC (vxlan only).
    pub vtep_mac: Option<String>,
}

/// An IPv4 network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Ipv4Cidr, String> {
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {text}"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("invalid CIDR address: {text}"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|prefix| *prefix <= 32)
            .ok_or_else(|| format!("invalid CIDR address: {text}"))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(address) & mask),
            prefix,
        })
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.network, self.prefix)
    }
}

impl Ipv4Cidr {
    /// flannel's VTEP address for a node: the network address of its
    /// podCIDR, which the bridge (at .1) never hands out.
    pub fn vtep_address(&self) -> Ipv4Addr {
        self.network
    }
}

/// The peers the Nodes describe: every other Node with an IPv4 podCIDR and
/// an address; with vxlan, only those that published their VTEP.
pub fn peers(nodes: &[Node], config: &NetworkConfig) -> BTreeSet<Peer> {
    let mut peers = BTreeSet::new();
    for node in nodes {
        if node.metadata.name.as_deref() == Some(config.node_name.as_str()) {
            continue;
        }
        let annotations = node.metadata.annotations.clone().unwrap_or_default();
        let spec = node.spec.clone().unwrap_or_default();
        let cidrs = match (spec.pod_cidrs, spec.pod_cidr) {
            (Some(cidrs), _) if !cidrs.is_empty() => cidrs,
            (_, Some(cidr)) => vec![cidr],
            _ => continue,
        };
        let Some(pod_cidr) = cidrs.iter().find_map(|cidr| cidr.parse::<Ipv4Cidr>().ok()) else {
            continue;
        };
        let public_ip = annotations
            .get(PUBLIC_IP_ANNOTATION)
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            .or_else(|| internal_ipv4(node));
        let Some(public_ip) = public_ip else {
            continue;
        };
        let vtep_mac = annotations
            .get(BACKEND_DATA_ANNOTATION)
            .and_then(|data| serde_json::from_str::<serde_json::Value>(data).ok())
            .and_then(|data| data["VtepMAC"].as_str().map(str::to_string));
        if config.backend == Backend::Vxlan
            && (vtep_mac.is_none()
                || annotations.get(BACKEND_TYPE_ANNOTATION).map(String::as_str) != Some("vxlan"))
        {
            continue;
        }
        peers.insert(Peer {
            pod_cidr,
            public_ip,
            vtep_mac,
        });
    }
    peers
}

fn internal_ipv4(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|address| address.type_ == "InternalIP")
        .find_map(|address| address.address.parse().ok())
}

/// The egress rules: pod traffic leaving the cluster's pod range is
/// masqueraded, pod-to-pod traffic never; forwarding to and from pods is
/// accepted even where the host's forward policy drops.
pub fn egress_ruleset(config: &NetworkConfig) -> String {
    let table = config.table_name();
    let cidrs: Vec<&str> = config
        .cluster_cidrs
        .iter()
        .map(String::as_str)
        .filter(|cidr| !cidr.contains(':'))
        .collect();
    let set = cidrs.join(", ");
    format!(
        "table ip {table} {{}}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat + 1; policy accept;\n\
         \t\tip saddr {{ {set} }} ip daddr {{ {set} }} return\n\
         \t\tip saddr {{ {set} }} ip daddr != 224.0.0.0/4 masquerade fully-random\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter - 1; policy accept;\n\
         \t\tip saddr {{ {set} }} accept\n\
         \t\tip daddr {{ {set} }} accept\n\
         \t}}\n\
         }}\n"
    )
}

async fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn apply_nft(script: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running nft (install nftables)")?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(script.as_bytes()).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

fn write_sysctl(path: &str, value: &str) -> anyhow::Result<()> {
    std::fs::write(path, value).with_context(|| format!("setting {path}"))
}

/// The host side of the pod network: forwarding, the egress rules, and for
/// vxlan this node's VTEP. Returns the MTU pods should use, if the backend
/// needs a smaller one than the link's.
pub async fn prepare_host(
    config: &NetworkConfig,
    pod_cidr: Ipv4Cidr,
) -> anyhow::Result<Option<u32>> {
    if config.backend == Backend::None {
        return Ok(None);
    }
    write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    apply_nft(&egress_ruleset(config)).await?;
    if config.backend != Backend::Vxlan {
        return Ok(None);
    }
    let device = config.vxlan_device.as_str();
    let local = config.node_ip.to_string();
    let underlay_mtu = link_mtu_for(&local).await.unwrap_or(1500);
    let mtu = underlay_mtu.saturating_sub(VXLAN_OVERHEAD);
    let exists = run("ip", &["-d", "link", "show", device]).await.ok();
    let matches = exists.as_deref().is_some_and(|text| {
        text.contains(&format!("vxlan id {VXLAN_VNI} "))
            && text.contains(&format!("local {local} "))
            && text.contains(&format!("dstport {VXLAN_PORT} "))
    });
    if exists.is_some() && !matches {
        run("ip", &["link", "del", device]).await?;
    }
    if !matches {
        run(
            "ip",
            &[
                "link",
                "add",
                device,
                "type",
                "vxlan",
                "id",
                &VXLAN_VNI.to_string(),
                "local",
                &local,
                "dstport",
                &VXLAN_PORT.to_string(),
                "nolearning",
            ],
        )
        .await?;
    }
    run(
        "ip",
        &["link", "set", device, "mtu", &mtu.to_string(), "up"],
    )
    .await?;
    run(
        "ip",
        &[
            "addr",
            "replace",
            &format!("{}/32", pod_cidr.vtep_address()),
            "dev",
            device,
        ],
    )
    .await?;
    Ok(Some(mtu))
}

/// The MTU of the link that holds `address`.
async fn link_mtu_for(address: &str) -> Option<u32> {
    let text = run("ip", &["-o", "addr", "show"]).await.ok()?;
    let device = text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let cidr = fields.get(3)?;
        (cidr.split('/').next() == Some(address))
            .then(|| fields.get(1).map(|name| name.to_string()))?
    })?;
    let link = run("ip", &["-o", "link", "show", &device]).await.ok()?;
    let mut fields = link.split_whitespace();
    while let Some(field) = fields.next() {
        if field == "mtu" {
            return fields.next()?.parse().ok();
        }
    }
    None
}

/// The MAC address of this node's VTEP.
pub async fn vtep_mac(config: &NetworkConfig) -> anyhow::Result<String> {
    let text = run("ip", &["-o", "link", "show", &config.vxlan_device]).await?;
    let mut fields = text.split_whitespace();
    while let Some(field) = fields.next() {
        if field == "link/ether" {
            return fields
                .next()
                .map(str::to_string)
                .context("the VTEP has no MAC");
        }
    }
    bail!("the VTEP {} has no MAC", config.vxlan_device)
}

/// Writes this node's flannel annotations, which peers route by.
pub async fn publish(client: &kube::Client, config: &NetworkConfig) -> anyhow::Result<()> {
    if config.backend == Backend::None {
        return Ok(());
    }
    let mut annotations = BTreeMap::from([
        (
            BACKEND_TYPE_ANNOTATION.to_string(),
            config.backend.name().to_string(),
        ),
        (PUBLIC_IP_ANNOTATION.to_string(), config.node_ip.to_string()),
    ]);
    let data = if config.backend == Backend::Vxlan {
        json!({"VNI": VXLAN_VNI, "VtepMAC": vtep_mac(config).await?}).to_string()
    } else {
        "null".to_string()
    };
    annotations.insert(BACKEND_DATA_ANNOTATION.to_string(), data);
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    nodes
        .patch(
            &config.node_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": annotations}})),
        )
        .await
        .context("publishing the node's network annotations")?;
    Ok(())
}

/// The agent's routes now in the kernel, by destination.
async fn owned_routes() -> anyhow::Result<BTreeSet<String>> {
    let text = run("ip", &["-4", "route", "show", "proto", ROUTE_PROTOCOL]).await?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Makes the kernel's routes (and for vxlan, neighbour and FDB entries)
/// reach exactly `peers`.
pub async fn reconcile_routes(
    config: &NetworkConfig,
    peers: &BTreeSet<Peer>,
) -> anyhow::Result<()> {
    if config.backend == Backend::None {
        return Ok(());
    }
    let wanted: BTreeSet<String> = peers.iter().map(|peer| peer.pod_cidr.to_string()).collect();
    for peer in peers {
        let cidr = peer.pod_cidr.to_string();
        let via = peer.public_ip.to_string();
        match (config.backend, &peer.vtep_mac) {
            (Backend::Vxlan, Some(mac)) => {
                let gateway = peer.pod_cidr.vtep_address().to_string();
                let device = config.vxlan_device.as_str();
                run(
                    "ip",
                    &[
                        "neigh",
                        "replace",
                        &gateway,
                        "lladdr",
                        mac,
                        "dev",
                        device,
                        "nud",
                        "permanent",
                    ],
                )
                .await?;
                run(
                    "bridge",
                    &[
                        "fdb",
                        "replace",
                        mac,
                        "dev",
                        device,
                        "dst",
                        &via,
                        "self",
                        "permanent",
                    ],
                )
                .await?;
                run(
                    "ip",
                    &[
                        "route",
                        "replace",
                        &cidr,
                        "via",
                        &gateway,
                        "dev",
                        device,
                        "onlink",
                        "proto",
                        ROUTE_PROTOCOL,
                    ],
                )
                .await?;
            }
            _ => {
                run(
                    "ip",
                    &[
                        "route",
                        "replace",
                        &cidr,
                        "via",
                        &via,
                        "proto",
                        ROUTE_PROTOCOL,
                    ],
                )
                .await?;
            }
        }
    }
    for stale in owned_routes().await?.difference(&wanted) {
        run("ip", &["route", "del", stale, "proto", ROUTE_PROTOCOL]).await?;
    }
    Ok(())
}

/// Keeps routes to every other node until the informer ends.
pub async fn follow_nodes(
    informers: std::sync::Arc<client::Informers>,
    config: NetworkConfig,
) -> anyhow::Result<()> {
    let informer = informers.informer::<Node>();
    let mut changes = informer.subscribe();
    informer.wait_synced().await;
    let mut applied: Option<BTreeSet<Peer>> = None;
    loop {
        let nodes: Vec<Node> = informer
            .store()
            .state()
            .iter()
            .map(|node| node.as_ref().clone())
            .collect();
        let wanted = peers(&nodes, &config);
        if applied.as_ref() != Some(&wanted) {
            match reconcile_routes(&config, &wanted).await {
                Ok(()) => applied = Some(wanted),
                Err(error) => {
                    tracing::warn!(%error, "routing to other nodes' pods");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        if changes.recv().await.is_none() {
            return Ok(());
        }
        while changes.try_recv().is_ok() {}
    }
}

/// `krust agent --cleanup-network`: the VTEP, the agent's routes and its
/// netfilter table.
pub async fn cleanup(config: &NetworkConfig) -> anyhow::Result<()> {
    if run("ip", &["link", "show", &config.vxlan_device])
        .await
        .is_ok()
    {
        run("ip", &["link", "del", &config.vxlan_device]).await?;
    }
    for route in owned_routes().await? {
        run("ip", &["route", "del", &route, "proto", ROUTE_PROTOCOL]).await?;
    }
    let table = config.table_name();
    apply_nft(&format!("table ip {table} {{}}\ndelete table ip {table}\n")).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(backend: Backend) -> NetworkConfig {
        NetworkConfig {
            backend,
            node_name: "a".into(),
            node_ip: "192.168.5.1".parse().unwrap(),
            cluster_cidrs: vec!["10.42.0.0/16".into()],
            bridge: "krust0".into(),
            vxlan_device: "flannel.1".into(),
        }
    }

    fn node(name: &str, cidr: Option<&str>, ip: &str, annotations: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }))
        .unwrap()
    }

    #[test]
    fn cidrs_parse_to_their_network() {
        let cidr: Ipv4Cidr = "10.42.3.7/24".parse().unwrap();
        assert_eq!(cidr.to_string(), "10.42.3.0/24");
        assert_eq!(cidr.vtep_address(), Ipv4Addr::new(10, 42, 3, 0));
        assert!("10.42.3.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.42.3.0/33".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn host_gw_routes_to_every_other_node_with_a_pod_cidr() {
        let nodes = [
            node("a", Some("10.42.0.0/24"), "192.168.5.1", json!({})),
            node("b", Some("10.42.1.0/24"), "192.168.5.2", json!({})),
            node("c", None, "192.168.5.3", json!({})),
            node(
                "d",
                Some("10.42.2.0/24"),
                "192.168.5.4",
                json!({PUBLIC_IP_ANNOTATION: "192.168.9.4"}),
            ),
        ];
        let peers: Vec<Peer> = peers(&nodes, &config(Backend::HostGw))
            .into_iter()
            .collect();
        assert_eq!(
            peers
                .iter()
                .map(|peer| (peer.pod_cidr.to_string(), peer.public_ip.to_string()))
                .collect::<Vec<_>>(),
            [
                ("10.42.1.0/24".to_string(), "192.168.5.2".to_string()),
                ("10.42.2.0/24".to_string(), "192.168.9.4".to_string()),
            ]
        );
    }

    #[test]
    fn vxlan_needs_the_peer_vtep() {
        let nodes = [
            node(
                "b",
                Some("10.42.1.0/24"),
                "192.168.5.2",
                json!({
                    BACKEND_TYPE_ANNOTATION: "vxlan",
                    BACKEND_DATA_ANNOTATION: "{\"VNI\":1,\"VtepMAC\":\"aa:bb:cc:dd:ee:ff\"}",
                }),
            ),
            node("c", Some("10.42.2.0/24"), "192.168.5.3", json!({})),
        ];
        let peers: Vec<Peer> = peers(&nodes, &config(Backend::Vxlan)).into_iter().collect();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].vtep_mac.as_deref(), Some("aa:bb:cc:dd:ee:ff"));
    }

    #[test]
    fn egress_masquerades_only_traffic_leaving_the_pod_range() {
        let rules = egress_ruleset(&config(Backend::Vxlan));
        assert!(rules.contains("table ip krust-network-krust0 {\n"));
        assert!(rules.contains("ip saddr { 10.42.0.0/16 } ip daddr { 10.42.0.0/16 } return"));
        assert!(rules.contains("masquerade"));
        assert!(rules.find("return").unwrap() < rules.find("masquerade").unwrap());
    }

    #[test]
    fn backends_parse_by_their_flag_names() {
        assert_eq!("host-gw".parse::<Backend>(), Ok(Backend::HostGw));
        assert!(
            "wireguard"
                .parse::<Backend>()
                .unwrap_err()
                .contains("vxlan, host-gw, none")
        );
    }
}
