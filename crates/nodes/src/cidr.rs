//! Pod CIDR allocation for nodes, as upstream's cidrset: a cluster CIDR cut into equal per-node subnets, handed out round-robin from the last allocation.

use std::net::IpAddr;

/// Upstream's limit on how many subnets one cluster CIDR may be cut into (2^16).
const MAX_PREFIX_DIFFERENCE: u8 = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    /// The text is not `address/prefix`.
    #[error("invalid CIDR {0:?}")]
    Invalid(String),
    /// The node mask is shorter than the cluster's or too much longer.
    #[error(
        "node mask /{node} does not fit cluster CIDR {cluster} (at most {MAX_PREFIX_DIFFERENCE} bits longer and not shorter)"
    )]
    MaskSize { cluster: String, node: u8 },
    /// Every subnet is taken.
    #[error(
        "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
    )]
    Exhausted,
    /// The CIDR lies outside the cluster CIDR or is of the other family.
    #[error("cidr {cidr} is out the range of cluster cidr {cluster}")]
    OutOfRange { cidr: String, cluster: String },
}

/// An address family's address as a number, with its width.
#[derive(Clone, Copy, Debug)]
struct Network {
    base: u128,
    prefix: u8,
    bits: u8,
}

fn parse(cidr: &str) -> Result<Network, CidrError> {
    let invalid = || CidrError::Invalid(cidr.to_string());
    let (address, prefix) = cidr.split_once('/').ok_or_else(invalid)?;
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    let (value, bits) = match address {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    if prefix > bits {
        return Err(invalid());
    }
    Ok(Network {
        base: value & mask(prefix, bits),
        prefix,
        bits,
    })
}

fn mask(prefix: u8, bits: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    all & !((1u128 << (bits - prefix)) - 1) & all
}

fn format(network: Network) -> String {
    let address = if network.bits == 32 {
        IpAddr::from(std::net::Ipv4Addr::from(network.base as u32))
    } else {
        IpAddr::from(std::net::Ipv6Addr::from(network.base))
    };
    format!("{address}/{}", network.prefix)
}

/// One cluster CIDR and which of its node subnets are taken.
#[derive(Debug)]
pub struct CidrSet {
    cluster: Network,
    node_prefix: u8,
    used: Vec<bool>,
    next_candidate: usize,
}

impl CidrSet {
    pub fn new(cluster_cidr: &str, node_prefix: u8) -> Result<CidrSet, CidrError> {
        let cluster = parse(cluster_cidr)?;
        if node_prefix < cluster.prefix
            || node_prefix > cluster.bits
            || node_prefix - cluster.prefix > MAX_PREFIX_DIFFERENCE
        {
            return Err(CidrError::MaskSize {
                cluster: cluster_cidr.to_string(),
                node: node_prefix,
            });
        }
        Ok(CidrSet {
            cluster,
            node_prefix,
            used: vec![false; 1usize << (node_prefix - cluster.prefix)],
            next_candidate: 0,
        })
    }

    pub fn is_ipv6(&self) -> bool {
        self.cluster.bits == 128
    }

    fn subnet(&self, index: usize) -> String {
        format(Network {
            base: self.cluster.base + ((index as u128) << (self.cluster.bits - self.node_prefix)),
            prefix: self.node_prefix,
            bits: self.cluster.bits,
        })
    }

    /// The next free subnet after the last one handed out.
    pub fn allocate_next(&mut self) -> Result<String, CidrError> {
        let count = self.used.len();
        let free = (0..count)
            .map(|offset| (self.next_candidate + offset) % count)
            .find(|&candidate| !self.used[candidate])
            .ok_or(CidrError::Exhausted)?;
        self.used[free] = true;
        self.next_candidate = (free + 1) % count;
        Ok(self.subnet(free))
    }

    /// The subnet indices `cidr` covers (a larger CIDR covers several, a
    /// smaller one the subnet containing it).
    fn indices(&self, cidr: &str) -> Result<std::ops::Range<usize>, CidrError> {
        let out_of_range = || CidrError::OutOfRange {
            cidr: cidr.to_string(),
            cluster: format(self.cluster),
        };
        let network = parse(cidr)?;
        if network.bits != self.cluster.bits
            || network.prefix < self.cluster.prefix
            || network.base & mask(self.cluster.prefix, self.cluster.bits) != self.cluster.base
        {
            return Err(out_of_range());
        }
        let shift = self.cluster.bits - self.node_prefix;
        let offset = network.base - self.cluster.base;
        let first = (offset >> shift) as usize;
        let span = if network.prefix >= self.node_prefix {
            1
        } else {
            1usize << (self.node_prefix - network.prefix)
        };
        Ok(first..first + span)
    }

    /// Marks `cidr` taken (a node already carries it).
    pub fn occupy(&mut self, cidr: &str) -> Result<(), CidrError> {
        for index in self.indices(cidr)? {
            self.used[index] = true;
        }
        Ok(())
    }

    /// Returns `cidr` to the pool.
    pub fn release(&mut self, cidr: &str) -> Result<(), CidrError> {
        for index in self.indices(cidr)? {
            self.used[index] = false;
        }
        Ok(())
    }

    pub fn allocated(&self) -> usize {
        self.used.iter().filter(|used| **used).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_handed_out_in_order_and_rotate_past_released_ones() {
        let mut set = CidrSet::new("10.42.0.0/16", 24).unwrap();
        assert_eq!(set.allocate_next().unwrap(), "10.42.0.0/24");
        assert_eq!(set.allocate_next().unwrap(), "10.42.1.0/24");
        assert_eq!(set.allocate_next().unwrap(), "10.42.2.0/24");
        set.release("10.42.1.0/24").unwrap();
        // Like upstream, the search continues after the last allocation.
        assert_eq!(set.allocate_next().unwrap(), "10.42.3.0/24");
        assert_eq!(set.allocated(), 3);
    }

    #[test]
    fn an_exhausted_set_reuses_released_subnets() {
        let mut set = CidrSet::new("10.42.0.0/23", 24).unwrap();
        assert_eq!(set.allocate_next().unwrap(), "10.42.0.0/24");
        assert_eq!(set.allocate_next().unwrap(), "10.42.1.0/24");
        assert_eq!(set.allocate_next(), Err(CidrError::Exhausted));
        set.release("10.42.0.0/24").unwrap();
        assert_eq!(set.allocate_next().unwrap(), "10.42.0.0/24");
    }

    #[test]
    fn occupied_subnets_are_skipped_and_foreign_ones_refused() {
        let mut set = CidrSet::new("10.42.0.0/16", 24).unwrap();
        set.occupy("10.42.0.0/24").unwrap();
        set.occupy("10.42.2.0/23").unwrap();
        assert_eq!(set.allocate_next().unwrap(), "10.42.1.0/24");
        assert_eq!(set.allocate_next().unwrap(), "10.42.4.0/24");
        assert!(matches!(
            set.occupy("10.43.0.0/24"),
            Err(CidrError::OutOfRange { .. })
        ));
        assert!(matches!(
            set.occupy("fd00::/64"),
            Err(CidrError::OutOfRange { .. })
        ));
    }

    #[test]
    fn ipv6_and_mask_limits() {
        let mut set = CidrSet::new("fd00:10:42::/56", 64).unwrap();
        assert!(set.is_ipv6());
        assert_eq!(set.allocate_next().unwrap(), "fd00:10:42::/64");
        assert_eq!(set.allocate_next().unwrap(), "fd00:10:42:1::/64");
        assert!(CidrSet::new("fd00::/48", 80).is_err());
        assert!(CidrSet::new("10.42.0.0/16", 8).is_err());
        assert!(CidrSet::new("10.42.0.0/16x", 24).is_err());
    }
}
