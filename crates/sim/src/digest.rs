//! Stable fake digests: hex strings derived from a name, for image IDs, container IDs and machine IDs that look real and stay the same across restarts.

use std::fmt::Write;
use std::hash::{Hash, Hasher};

/// `len` lowercase hex digits determined by `seed`.
pub fn hex(seed: &str, len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut round: u64 = 0;
    while out.len() < len {
        // DefaultHasher::new() has fixed keys, so the digits are stable.
        let mut hasher = std::hash::DefaultHasher::new();
        round.hash(&mut hasher);
        seed.hash(&mut hasher);
        let _ = write!(out, "{:016x}", hasher.finish());
        round += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn stable_and_distinct() {
        assert_eq!(super::hex("nginx", 64), super::hex("nginx", 64));
        assert_eq!(super::hex("nginx", 64).len(), 64);
        assert_ne!(super::hex("nginx", 64), super::hex("redis", 64));
        assert!(super::hex("a", 40).chars().all(|c| c.is_ascii_hexdigit()));
    }
}
