//! What /proc says about processes and mounts, and signals by PID.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One process as /proc shows it.
#[derive(Debug, Clone)]
pub(crate) struct ProcessInfo {
    pub pid: u32,
    pub parent_pid: u32,
    pub arguments: Vec<OsString>,
}

impl ProcessInfo {
    /// Whether one of the arguments is exactly `path`.
    pub fn has_argument(&self, path: &Path) -> bool {
        self.arguments
            .iter()
            .any(|argument| argument.as_os_str() == path.as_os_str())
    }

    /// Whether any argument contains `needle` (a path, typically).
    pub fn mentions(&self, needle: &Path) -> bool {
        let needle = needle.as_os_str().as_bytes();
        self.arguments.iter().any(|argument| {
            argument
                .as_bytes()
                .windows(needle.len())
                .any(|window| window == needle)
        })
    }
}

/// Every process that can be read right now (they come and go while we read).
pub(crate) fn all_processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, parent_pid) = parse_stat(&stat)?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let arguments = cmdline
                .split(|byte| *byte == 0)
                .filter(|argument| !argument.is_empty())
                .map(|argument| OsString::from_vec(argument.to_vec()))
                .collect();
            Some(ProcessInfo {
                pid,
                parent_pid,
                arguments,
            })
        })
        .collect()
}

/// The processes below `roots` in the parent tree, deepest last.
pub(crate) fn descendants(roots: &[u32], processes: &[ProcessInfo]) -> Vec<u32> {
    let mut found: Vec<u32> = Vec::new();
    let mut frontier: Vec<u32> = roots.to_vec();
    while let Some(parent) = frontier.pop() {
        for child in processes
            .iter()
            .filter(|process| process.parent_pid == parent)
        {
            if !found.contains(&child.pid) && !roots.contains(&child.pid) {
                found.push(child.pid);
                frontier.push(child.pid);
            }
        }
    }
    found
}

/// `(state, parent pid)` from a `/proc/PID/stat` line; the command name in
/// parentheses may itself contain spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent_pid = fields.next()?.parse().ok()?;
    Some((state, parent_pid))
}

/// A process that has exited counts as gone even before its parent reaps it.
pub(crate) fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => matches!(parse_stat(&stat), Some(('Z' | 'X', _)) | None),
        Err(_) => true,
    }
}

pub(crate) fn send_signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; a PID that has
    // gone away makes it fail with ESRCH, which is what we want to ignore.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Polls until every PID has exited or `timeout` passes; true when all exited.
pub(crate) fn wait_for_exit(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pids.iter().all(|pid| has_exited(*pid)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The cgroup directories a process belongs to, one per hierarchy (cgroup v1
/// controllers and the v2 tree), without the hierarchy roots.
pub(crate) fn cgroup_dirs_of(pid: u32) -> Vec<PathBuf> {
    let Ok(membership) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return Vec::new();
    };
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let hierarchies = cgroup_hierarchies(&mountinfo);
    membership
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let relative = path.strip_prefix('/')?;
            if relative.is_empty() {
                return None;
            }
            let wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
            let (mount_point, _) = hierarchies.iter().find(|(_, mounted)| {
                if wanted.is_empty() {
                    mounted.is_none()
                } else {
                    mounted
                        .as_ref()
                        .is_some_and(|mounted| wanted.iter().all(|c| mounted.contains(c)))
                }
            })?;
            Some(mount_point.join(relative))
        })
        .collect()
}

/// `(mount point, v1 controllers)` of every cgroup mount; `None` for cgroup2.
fn cgroup_hierarchies(mountinfo: &str) -> Vec<(PathBuf, Option<Vec<&str>>)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mount_point = before.split(' ').nth(4)?;
            let mut fields = after.split(' ');
            let filesystem = fields.next()?;
            let super_options = fields.nth(1)?;
            let mount_point = PathBuf::from(OsString::from_vec(unescape_mount_path(mount_point)));
            match filesystem {
                "cgroup2" => Some((mount_point, None)),
                "cgroup" => Some((mount_point, Some(super_options.split(',').collect()))),
                _ => None,
            }
        })
        .collect()
}

/// Mount points at or below `dir` in this mount namespace, deepest first.
pub(crate) fn mount_points_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mount_points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|escaped| PathBuf::from(OsString::from_vec(unescape_mount_path(escaped))))
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect();
    mount_points.sort_by_key(|mount_point| std::cmp::Reverse(mount_point.components().count()));
    mount_points.dedup();
    mount_points
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mount_path(escaped: &str) -> Vec<u8> {
    let bytes = escaped.as_bytes();
    let mut unescaped = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).and_then(|digits| {
            std::str::from_utf8(digits)
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
        });
        match (bytes[index], octal) {
            (b'\\', Some(value)) => {
                unescaped.push(value);
                index += 4;
            }
            (byte, _) => {
                unescaped.push(byte);
                index += 1;
            }
        }
    }
    unescaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parentheses_in_the_name() {
        assert_eq!(parse_stat("42 (a) b (c)) S 7 42 42 0 -1"), Some(('S', 7)));
        assert_eq!(parse_stat("9 (containerd) Z 1 9"), Some(('Z', 1)));
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/tmp/a\040b\134c"), b"/tmp/a b\\c");
        assert_eq!(unescape_mount_path(r"/plain"), b"/plain");
        assert_eq!(unescape_mount_path(r"/trailing\"), b"/trailing\\");
    }

    #[test]
    fn cgroup_mounts_of_a_hybrid_hierarchy() {
        let mountinfo = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                         35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                         40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
                         41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_hierarchies(mountinfo),
            vec![
                (
                    PathBuf::from("/sys/fs/cgroup/memory"),
                    Some(vec!["rw", "memory"])
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/systemd"),
                    Some(vec!["rw", "name=systemd"])
                ),
                (PathBuf::from("/sys/fs/cgroup/unified"), None),
            ]
        );
    }

    #[test]
    fn descendants_follow_the_parent_tree() {
        let process = |pid, parent_pid| ProcessInfo {
            pid,
            parent_pid,
            arguments: Vec::new(),
        };
        let processes = [
            process(10, 1),
            process(11, 10),
            process(12, 11),
            process(13, 1),
        ];
        let mut found = descendants(&[10], &processes);
        found.sort();
        assert_eq!(found, vec![11, 12]);
    }

    #[test]
    fn this_process_is_alive_and_mentions_its_own_binary() {
        let me = std::process::id();
        assert!(!has_exited(me));
        let processes = all_processes();
        let myself = processes.iter().find(|process| process.pid == me).unwrap();
        let executable = std::env::current_exe().unwrap();
        let name = executable.file_name().unwrap();
        assert!(myself.mentions(Path::new(name)));
        assert!(!myself.has_argument(Path::new(name)));
    }
}
