//! IPv4 addresses of simulated nodes and their pods: each node's InternalIP, its pod range, and a per-node pool that hands out pod IPs.

use std::net::Ipv4Addr;

/// Nodes' InternalIPs come from 172.16.0.0/12, away from the pod ranges
/// (10.0.0.0/8) and the default Service range (10.43.0.0/16).
const NODE_NETWORK: u32 = u32::from_be_bytes([172, 16, 0, 0]);
/// Hosts per /24 the node addresses use: .1 to .250, so no node ever gets a
/// network or broadcast-looking address.
const NODES_PER_SUBNET: u32 = 250;
/// Upstream's usual cluster CIDR; node `i` gets its `i`-th /24, continuing
/// past 10.244.255.0 through the rest of 10.0.0.0/8.
const FALLBACK_POD_NETWORK: u32 = u32::from_be_bytes([10, 244, 0, 0]);
/// A pool never tracks more addresses than this, whatever the CIDR's size:
/// a node holds at most a few hundred pods.
const MAX_POOL_SIZE: u32 = 1 << 16;

/// The InternalIP of the node with this index: 172.16.0.1, 172.16.0.2, ...
pub fn node_internal_ip(index: usize) -> Ipv4Addr {
    let index = index as u32;
    let subnet = index / NODES_PER_SUBNET;
    let host = index % NODES_PER_SUBNET + 1;
    Ipv4Addr::from(NODE_NETWORK.wrapping_add((subnet << 8) | host))
}

/// An IPv4 network, e.g. `10.244.3.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    /// Parses `a.b.c.d/n`; host bits are cleared. `None` for IPv6 or anything malformed.
    pub fn parse(text: &str) -> Option<Ipv4Cidr> {
        let (address, prefix) = text.split_once('/')?;
        let address: Ipv4Addr = address.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        Some(Ipv4Cidr {
            network: u32::from(address) & mask(prefix),
            prefix,
        })
    }

    /// The /24 a node without `spec.podCIDR` takes its pod IPs from.
    pub fn fallback_for_node(index: usize) -> Ipv4Cidr {
        // Stay inside 10.0.0.0/8 by wrapping the /24's number at 2^16.
        let subnet = ((FALLBACK_POD_NETWORK >> 8) & 0xffff).wrapping_add(index as u32) & 0xffff;
        Ipv4Cidr {
            network: u32::from_be_bytes([10, 0, 0, 0]) | (subnet << 8),
            prefix: 24,
        }
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.prefix) == self.network
    }

    fn size(&self) -> u32 {
        if self.prefix == 0 {
            u32::MAX
        } else {
            1u32 << (32 - self.prefix)
        }
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

/// The pod IPs of one node. Like the host-local IPAM plugin it skips the
/// network address, the gateway (.1) and the broadcast address, and hands
/// addresses out round-robin so a deleted pod's IP is not reused at once.
#[derive(Debug)]
pub struct PodIpPool {
    range: Ipv4Cidr,
    /// Offsets from the network address; bit set = in use.
    used: Vec<u64>,
    first: u32,
    /// One past the last usable offset.
    end: u32,
    next: u32,
}

impl PodIpPool {
    pub fn new(range: Ipv4Cidr) -> PodIpPool {
        let size = range.size().min(MAX_POOL_SIZE);
        let (first, end) = if range.prefix >= 31 {
            // Point-to-point and single-host ranges have no reserved addresses.
            (0, size)
        } else {
            (2, size - u32::from(range.size() <= MAX_POOL_SIZE))
        };
        PodIpPool {
            range,
            used: vec![0; size.div_ceil(64) as usize],
            first,
            end,
            next: first,
        }
    }

    /// The next free address, or `None` when the range is full.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let span = self.end.checked_sub(self.first)?;
        for step in 0..span {
            let offset = self.first + (self.next - self.first + step) % span;
            if !self.is_used(offset) {
                self.set(offset, true);
                self.next = if offset + 1 >= self.end {
                    self.first
                } else {
                    offset + 1
                };
                return Some(Ipv4Addr::from(self.range.network + offset));
            }
        }
        None
    }

    /// Marks an address a pod already holds (e.g. from before a restart) as
    /// used. Addresses outside the pool are ignored.
    pub fn claim(&mut self, address: Ipv4Addr) {
        if let Some(offset) = self.offset(address) {
            self.set(offset, true);
        }
    }

    pub fn release(&mut self, address: Ipv4Addr) {
        if let Some(offset) = self.offset(address) {
            self.set(offset, false);
        }
    }

    fn offset(&self, address: Ipv4Addr) -> Option<u32> {
        if !self.range.contains(address) {
            return None;
        }
        let offset = u32::from(address) - self.range.network;
        (offset < self.end).then_some(offset)
    }

    fn is_used(&self, offset: u32) -> bool {
        self.used[(offset / 64) as usize] & (1 << (offset % 64)) != 0
    }

    fn set(&mut self, offset: u32, used: bool) {
        let word = &mut self.used[(offset / 64) as usize];
        if used {
            *word |= 1 << (offset % 64);
        } else {
            *word &= !(1 << (offset % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ips_are_distinct_and_skip_network_and_broadcast() {
        assert_eq!(node_internal_ip(0), Ipv4Addr::new(172, 16, 0, 1));
        assert_eq!(node_internal_ip(249), Ipv4Addr::new(172, 16, 0, 250));
        assert_eq!(node_internal_ip(250), Ipv4Addr::new(172, 16, 1, 1));
        let ips: std::collections::HashSet<_> = (0..100_000).map(node_internal_ip).collect();
        assert_eq!(ips.len(), 100_000);
    }

    #[test]
    fn fallback_ranges_start_at_10_244_and_stay_in_10_slash_8() {
        assert_eq!(Ipv4Cidr::fallback_for_node(0).to_string(), "10.244.0.0/24");
        assert_eq!(Ipv4Cidr::fallback_for_node(1).to_string(), "10.244.1.0/24");
        assert_eq!(
            Ipv4Cidr::fallback_for_node(256).to_string(),
            "10.245.0.0/24"
        );
        assert_eq!(Ipv4Cidr::fallback_for_node(3072).to_string(), "10.0.0.0/24");
        let ranges: std::collections::HashSet<_> = (0..10_000)
            .map(|i| Ipv4Cidr::fallback_for_node(i).to_string())
            .collect();
        assert_eq!(ranges.len(), 10_000);
    }

    #[test]
    fn parse_clears_host_bits_and_refuses_ipv6() {
        assert_eq!(
            Ipv4Cidr::parse("10.42.3.7/24")
                .map(|c| c.to_string())
                .as_deref(),
            Some("10.42.3.0/24")
        );
        assert_eq!(Ipv4Cidr::parse("fd00::/64"), None);
        assert_eq!(Ipv4Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Ipv4Cidr::parse("10.0.0.0"), None);
    }

    #[test]
    fn pool_skips_reserved_addresses_and_runs_out() {
        let range = Ipv4Cidr::parse("10.244.7.0/24").expect("valid");
        let mut pool = PodIpPool::new(range);
        let first = pool.allocate();
        assert_eq!(first, Some(Ipv4Addr::new(10, 244, 7, 2)));
        let mut count = 1;
        while let Some(address) = pool.allocate() {
            assert!(range.contains(address));
            assert_ne!(address, Ipv4Addr::new(10, 244, 7, 255));
            count += 1;
        }
        assert_eq!(count, 253);
    }

    #[test]
    fn pool_reuses_released_addresses_only_after_a_full_round() {
        let mut pool = PodIpPool::new(Ipv4Cidr::parse("10.1.0.0/29").expect("valid"));
        let a = pool.allocate().expect("free");
        let b = pool.allocate().expect("free");
        pool.release(a);
        let c = pool.allocate().expect("free");
        assert_ne!(c, a, "round-robin moves on");
        assert_ne!(c, b);
        pool.claim(Ipv4Addr::new(10, 1, 0, 5));
        pool.claim(Ipv4Addr::new(10, 1, 0, 6));
        let d = pool.allocate().expect("free");
        assert_eq!(
            d, a,
            "wrapped around to the released address past the claimed one"
        );
        assert_eq!(pool.allocate(), None);
    }
}
