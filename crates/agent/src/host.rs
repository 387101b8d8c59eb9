//! What the agent reads about its machine for the Node: CPUs, memory, disk, kernel, OS image, machine and boot ids, and the node's IP.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::Path;

/// Facts about this machine, read once at start (and the disk again on
/// each status update).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    pub hostname: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub system_uuid: String,
    pub architecture: String,
}

impl HostFacts {
    /// Reads the facts; `data_dir`'s filesystem is the node's ephemeral storage.
    pub fn read(data_dir: &Path) -> HostFacts {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_string())
                .unwrap_or_default()
        };
        let machine_id = read("/etc/machine-id");
        let system_uuid = match read("/sys/class/dmi/id/product_uuid") {
            uuid if !uuid.is_empty() => uuid,
            // VMs without DMI: upstream reports what cadvisor finds, often
            // empty; the machine id is at least stable per machine.
            _ => machine_id.clone(),
        };
        HostFacts {
            hostname: hostname(),
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes: parse_meminfo_total(&read("/proc/meminfo")).unwrap_or(0),
            ephemeral_storage_bytes: filesystem_bytes(data_dir).unwrap_or(0),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            os_image: parse_os_release_pretty_name(&read("/etc/os-release"))
                .unwrap_or_else(|| "Linux".into()),
            machine_id,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            system_uuid,
            architecture: go_architecture(std::env::consts::ARCH).to_string(),
        }
    }
}

/// The host name, lowercased as a Node name must be.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_ascii_lowercase())
        .unwrap_or_else(|_| "localhost".into())
}

/// `MemTotal` from /proc/meminfo, in bytes.
pub fn parse_meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => Some(value * 1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// `PRETTY_NAME` from /etc/os-release, unquoted.
pub fn parse_os_release_pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))?;
    Some(
        value
            .trim()
            .trim_matches('"')
            .trim_matches('\'')
            .to_string(),
    )
}

/// Go's name for an architecture, as Nodes report it.
pub fn go_architecture(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The size of the filesystem holding `path`, in bytes.
pub fn filesystem_bytes(path: &Path) -> Option<u64> {
    statvfs(path).map(|stats| stats.capacity_bytes)
}

/// Space and inodes of the filesystem holding a path.
#[derive(Clone, Copy, Debug, Default)]
pub struct FilesystemStats {
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    /// Free to unprivileged users.
    pub available_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// [`FilesystemStats`] of `path`'s filesystem (zeros if it cannot be read).
pub fn filesystem_stats(path: &Path) -> FilesystemStats {
    statvfs(path).unwrap_or_default()
}

fn statvfs(path: &Path) -> Option<FilesystemStats> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stats` points
    // to writable memory of the right type; statvfs fills it on success.
    let result = unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if result != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised the struct.
    let stats = unsafe { stats.assume_init() };
    Some(FilesystemStats {
        capacity_bytes: stats.f_blocks * stats.f_frsize,
        free_bytes: stats.f_bfree * stats.f_frsize,
        available_bytes: stats.f_bavail * stats.f_frsize,
        inodes: stats.f_files,
        inodes_free: stats.f_ffree,
    })
}

/// The address other machines reach this one on: the source address of
/// the default route (no packet is sent), else loopback.
pub fn default_node_ip() -> IpAddr {
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|socket| {
            // A connected UDP socket only picks a route and source address.
            socket.connect((Ipv4Addr::new(10, 255, 255, 255), 1))?;
            socket.local_addr()
        })
        .map(|address| address.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_read_in_bytes() {
        let meminfo = "MemTotal:       24568320 kB\nMemFree:        1000 kB\n";
        assert_eq!(parse_meminfo_total(meminfo), Some(24_568_320 * 1024));
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo_total("MemTotal: 1 MB\n"), None);
    }

    #[test]
    fn os_image_is_the_pretty_name_unquoted() {
        let release = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            parse_os_release_pretty_name(release).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(parse_os_release_pretty_name("NAME=x\n"), None);
    }

    #[test]
    fn architectures_use_go_names() {
        assert_eq!(go_architecture("x86_64"), "amd64");
        assert_eq!(go_architecture("aarch64"), "arm64");
        assert_eq!(go_architecture("riscv64"), "riscv64");
    }

    #[test]
    fn this_machine_has_cpus_memory_and_disk() {
        let facts = HostFacts::read(Path::new("/"));
        assert!(facts.cpus >= 1);
        assert!(facts.memory_bytes > 0);
        assert!(facts.ephemeral_storage_bytes > 0);
        assert!(!facts.kernel_version.is_empty());
    }
}
