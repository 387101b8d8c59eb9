//! Service ClusterIP and NodePort allocation: each address or port is claimed by a create-if-absent storage key, so concurrent creates never share one.

use std::net::Ipv4Addr;

use rand::Rng;
use serde_json::{Value, json};
use storage::{DynStorage, Precondition, StorageError};

use crate::status::ApiError;

/// The NodePort range (kube-apiserver's default `--service-node-port-range`).
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// The service IP range, as given by `--service-cidr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceCidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl ServiceCidr {
    pub fn parse(cidr: &str) -> Result<ServiceCidr, String> {
        let (network, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("{cidr:?} is not a CIDR"))?;
        let network: Ipv4Addr = network
            .parse()
            .map_err(|_| format!("{cidr:?} is not an IPv4 CIDR"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("{cidr:?} needs a prefix length between 8 and 30"))?;
        let mask = u32::MAX << (32 - prefix);
        Ok(ServiceCidr {
            network: Ipv4Addr::from(u32::from(network) & mask),
            prefix,
        })
    }

    /// Usable addresses: the network and broadcast addresses are excluded.
    fn size(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The `offset`-th usable address (0 is the network address + 1).
    fn address(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1 + offset)
    }

    pub fn first(&self) -> Ipv4Addr {
        self.address(0)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let offset = u32::from(ip).wrapping_sub(u32::from(self.network));
        offset >= 1 && offset <= self.size()
    }
}

fn ip_key(ip: Ipv4Addr) -> String {
    format!("/registry/ranges/serviceips/{ip}")
}

fn port_key(port: u16) -> String {
    format!("/registry/ranges/servicenodeports/{port}")
}

fn invalid(field: &str, value: Value, detail: &str, name: &str) -> ApiError {
    let error = api::validation::FieldError::invalid(field, value, detail);
    ApiError::invalid(api::validation::invalid_status(
        "Service",
        "",
        name,
        &[error],
    ))
}

/// Claims `key` for `owner`; false when another service holds it.
async fn claim(storage: &DynStorage, key: &str, owner: &str) -> Result<bool, ApiError> {
    match storage
        .put(
            key,
            bytes::Bytes::from(owner.to_string()),
            Precondition::Absent,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(StorageError::PreconditionFailed { .. }) => Ok(false),
        Err(other) => Err(ApiError::internal(other.to_string())),
    }
}

/// Releases every address and port a service holds.
pub async fn release(storage: &DynStorage, service: &Value) {
    for ip in cluster_ips(service) {
        let _ = storage.delete(&ip_key(ip), Precondition::None).await;
    }
    for port in node_ports(service) {
        let _ = storage.delete(&port_key(port), Precondition::None).await;
    }
}

fn cluster_ips(service: &Value) -> Vec<Ipv4Addr> {
    service["spec"]["clusterIPs"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn node_ports(service: &Value) -> Vec<u16> {
    service["spec"]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn needs_node_ports(service: &Value) -> bool {
    match service["spec"]["type"].as_str() {
        Some("NodePort") => true,
        Some("LoadBalancer") => {
            service["spec"]["allocateLoadBalancerNodePorts"].as_bool() != Some(false)
        }
        _ => false,
    }
}

/// Gives a new (or changed) service its ClusterIP and NodePorts, keeping any
/// the caller chose if they are free. `owner` names the service in the
/// claims. On error nothing stays claimed.
pub async fn allocate(
    storage: &DynStorage,
    cidr: ServiceCidr,
    service: &mut Value,
    previous: Option<&Value>,
) -> Result<(), ApiError> {
    let name = service["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let owner = format!(
        "{}/{}",
        service["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default(),
        name
    );
    let mut claimed_ips = Vec::new();
    let mut claimed_ports = Vec::new();
    let result = allocate_claims(
        storage,
        cidr,
        service,
        previous,
        &owner,
        &name,
        &mut claimed_ips,
        &mut claimed_ports,
    )
    .await;
    if result.is_err() {
        for ip in claimed_ips {
            let _ = storage.delete(&ip_key(ip), Precondition::None).await;
        }
        for port in claimed_ports {
            let _ = storage.delete(&port_key(port), Precondition::None).await;
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn allocate_claims(
    storage: &DynStorage,
    cidr: ServiceCidr,
    service: &mut Value,
    previous: Option<&Value>,
    owner: &str,
    name: &str,
    claimed_ips: &mut Vec<Ipv4Addr>,
    claimed_ports: &mut Vec<u16>,
) -> Result<(), ApiError> {
    let external_name = service["spec"]["type"].as_str() == Some("ExternalName");
    let previous_ip = previous
        .and_then(|p| p["spec"]["clusterIP"].as_str())
        .map(str::to_string);
    let requested = service["spec"]["clusterIP"].as_str().map(str::to_string);
    match (&requested, &previous_ip) {
        // An update that omits the ClusterIP keeps the allocated one.
        (None, Some(old)) | (Some(_), Some(old))
            if requested.as_deref().is_none_or(str::is_empty) =>
        {
            service["spec"]["clusterIP"] = json!(old);
            service["spec"]["clusterIPs"] =
                previous.map_or(json!([old]), |p| p["spec"]["clusterIPs"].clone());
        }
        (Some(new), Some(old)) if new != old => {
            return Err(invalid(
                "spec.clusterIPs[0]",
                json!(new),
                "may not change once set",
                name,
            ));
        }
        (Some(_), Some(_)) => {}
        _ if external_name => {}
        (Some(none), None) if none == "None" => {
            service["spec"]["clusterIPs"] = json!(["None"]);
        }
        (Some(ip), None) if !ip.is_empty() => {
            let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                invalid(
                    "spec.clusterIPs[0]",
                    json!(ip),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    name,
                )
            })?;
            if !cidr.contains(parsed) {
                return Err(invalid(
                    "spec.clusterIPs",
                    json!([ip]),
                    &format!(
                        "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}/{}",
                        cidr.network, cidr.prefix
                    ),
                    name,
                ));
            }
            if !claim(storage, &ip_key(parsed), owner).await? {
                return Err(invalid(
                    "spec.clusterIPs",
                    json!([ip]),
                    &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                    name,
                ));
            }
            claimed_ips.push(parsed);
            service["spec"]["clusterIPs"] = json!([ip]);
        }
        _ => {
            let size = cidr.size();
            let start = rand::rng().random_range(0..size);
            let mut found = None;
            for step in 0..size {
                let ip = cidr.address((start + step) % size);
                if claim(storage, &ip_key(ip), owner).await? {
                    found = Some(ip);
                    break;
                }
            }
            let ip = found.ok_or_else(|| {
                invalid(
                    "spec.clusterIPs",
                    json!([]),
                    "failed to allocate IP: range is full",
                    name,
                )
            })?;
            claimed_ips.push(ip);
            service["spec"]["clusterIP"] = json!(ip.to_string());
            service["spec"]["clusterIPs"] = json!([ip.to_string()]);
        }
    }
    if !external_name && service["spec"]["clusterIP"].as_str() != Some("None") {
        service["spec"]["ipFamilies"] = json!(["IPv4"]);
        if service["spec"]["ipFamilyPolicy"].is_null() {
            service["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        }
    }
    if !needs_node_ports(service) {
        return Ok(());
    }
    let previous_ports = previous.map(node_ports).unwrap_or_default();
    let previous_by_port: Vec<(u64, String, u64)> = previous
        .and_then(|p| p["spec"]["ports"].as_array())
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| {
                    Some((
                        p["port"].as_u64()?,
                        p["protocol"].as_str().unwrap_or("TCP").to_string(),
                        p["nodePort"].as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let Some(ports) = service["spec"]["ports"].as_array_mut() else {
        return Ok(());
    };
    for (index, port) in ports.iter_mut().enumerate() {
        let protocol = port["protocol"].as_str().unwrap_or("TCP").to_string();
        if port["nodePort"].is_null()
            && let Some((_, _, kept)) = previous_by_port
                .iter()
                .find(|(p, proto, _)| Some(*p) == port["port"].as_u64() && *proto == protocol)
        {
            port["nodePort"] = json!(kept);
            continue;
        }
        match port["nodePort"].as_u64() {
            Some(requested) => {
                let requested_port = u16::try_from(requested)
                    .ok()
                    .filter(|p| NODE_PORTS.contains(p));
                let Some(requested_port) = requested_port else {
                    return Err(invalid(
                        &format!("spec.ports[{index}].nodePort"),
                        json!(requested),
                        &format!(
                            "provided port is not in the valid range. The range of valid ports is {}-{}",
                            NODE_PORTS.start(),
                            NODE_PORTS.end()
                        ),
                        name,
                    ));
                };
                if previous_ports.contains(&requested_port) {
                    continue;
                }
                if !claim(storage, &port_key(requested_port), owner).await? {
                    return Err(invalid(
                        &format!("spec.ports[{index}].nodePort"),
                        json!(requested),
                        "provided port is already allocated",
                        name,
                    ));
                }
                claimed_ports.push(requested_port);
            }
            None => {
                let span = u32::from(NODE_PORTS.end() - NODE_PORTS.start()) + 1;
                let start = rand::rng().random_range(0..span);
                let mut found = None;
                for step in 0..span {
                    let candidate = NODE_PORTS.start() + ((start + step) % span) as u16;
                    if claim(storage, &port_key(candidate), owner).await? {
                        found = Some(candidate);
                        break;
                    }
                }
                let candidate = found.ok_or_else(|| {
                    invalid(
                        &format!("spec.ports[{index}].nodePort"),
                        json!(0),
                        "range is full",
                        name,
                    )
                })?;
                claimed_ports.push(candidate);
                port["nodePort"] = json!(candidate);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_give_their_first_address_and_bounds() {
        let cidr = ServiceCidr::parse("10.43.0.0/16").unwrap();
        assert_eq!(cidr.first(), Ipv4Addr::new(10, 43, 0, 1));
        assert_eq!(cidr.size(), 65534);
        assert!(cidr.contains(Ipv4Addr::new(10, 43, 255, 254)));
        assert!(!cidr.contains(Ipv4Addr::new(10, 43, 255, 255)));
        assert!(!cidr.contains(Ipv4Addr::new(10, 44, 0, 1)));
        assert!(ServiceCidr::parse("10.43.0.0").is_err());
        assert!(ServiceCidr::parse("10.43.0.0/31").is_err());
    }

    #[tokio::test]
    async fn concurrent_services_never_share_an_address_or_port() {
        let storage: DynStorage = std::sync::Arc::new(storage::MemoryStore::new());
        // A /29 has six usable addresses: six services fit, a seventh does not.
        let cidr = ServiceCidr::parse("10.0.0.0/29").unwrap();
        let tasks: Vec<_> = (0..7)
            .map(|i| {
                let storage = storage.clone();
                tokio::spawn(async move {
                    let mut service = json!({"metadata": {"name": format!("s{i}"), "namespace": "d"},
                        "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
                    allocate(&storage, cidr, &mut service, None).await.map(|_| service)
                })
            })
            .collect();
        let mut ips = std::collections::HashSet::new();
        let mut ports = std::collections::HashSet::new();
        let mut failures = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(service) => {
                    assert!(ips.insert(service["spec"]["clusterIP"].as_str().unwrap().to_string()));
                    assert!(
                        ports.insert(service["spec"]["ports"][0]["nodePort"].as_u64().unwrap())
                    );
                }
                Err(error) => {
                    assert!(error.message.contains("range is full"), "{}", error.message);
                    failures += 1;
                }
            }
        }
        assert_eq!((ips.len(), failures), (6, 1));
        // The failed service released the node port it had not needed to keep.
        let held = storage
            .list(storage::ListRequest {
                prefix: "/registry/ranges/servicenodeports/".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(held.kvs.len(), 6);
    }
}
