//! Locating the containerd, ctr and busybox executables on this machine.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// containerd (or a tool that comes with it) is not on this machine.
///
/// The message is one line so that the agent can print it as its only error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{program} is not installed: apt-get install containerd runc containernetworking-plugins (or pass --container-runtime-endpoint)"
)]
pub struct NotInstalled {
    /// The executable that was looked for, e.g. `containerd`.
    pub program: String,
}

/// The `containerd` executable on `$PATH`.
pub fn find_containerd() -> Result<PathBuf, NotInstalled> {
    find_containerd_in(std::env::var_os("PATH").as_deref())
}

/// The `containerd` executable on the given search path (a `$PATH`-style,
/// colon-separated list; `None` searches nothing).
pub fn find_containerd_in(search_path: Option<&OsStr>) -> Result<PathBuf, NotInstalled> {
    find_program_in("containerd", search_path)
}

/// The `ctr` client that ships with containerd: next to `containerd` when
/// given, else on `$PATH`.
pub fn find_ctr(containerd: Option<&Path>) -> Result<PathBuf, NotInstalled> {
    if let Some(sibling) = containerd.and_then(Path::parent).map(|dir| dir.join("ctr"))
        && is_executable(&sibling)
    {
        return Ok(sibling);
    }
    find_program_in("ctr", std::env::var_os("PATH").as_deref())
}

/// A busybox binary to build the offline images from: Debian's
/// busybox-static installs `/usr/bin/busybox`; otherwise the one on `$PATH`.
pub(crate) fn find_busybox() -> Option<PathBuf> {
    let debian = Path::new("/usr/bin/busybox");
    if is_executable(debian) {
        return Some(debian.to_path_buf());
    }
    find_program_in("busybox", std::env::var_os("PATH").as_deref()).ok()
}

fn find_program_in(program: &str, search_path: Option<&OsStr>) -> Result<PathBuf, NotInstalled> {
    search_path
        .into_iter()
        .flat_map(std::env::split_paths)
        // An empty $PATH entry means the working directory; a daemon should
        // not pick up binaries from wherever it happens to be started.
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| NotInstalled {
            program: program.to_string(),
        })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_containerd_is_one_line_with_the_install_hint() {
        let empty_dir = tempfile::tempdir().unwrap();
        let error = find_containerd_in(Some(empty_dir.path().as_os_str())).unwrap_err();
        assert_eq!(
            error.to_string(),
            "containerd is not installed: apt-get install containerd runc containernetworking-plugins (or pass --container-runtime-endpoint)"
        );
        assert!(find_containerd_in(None).is_err());
    }

    #[test]
    fn finds_an_executable_on_the_search_path_but_not_a_plain_file() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let not_executable = first.path().join("containerd");
        std::fs::write(&not_executable, "").unwrap();
        let executable = second.path().join("containerd");
        std::fs::write(&executable, "").unwrap();
        std::fs::set_permissions(&executable, std::fs::Permissions::from_mode(0o755)).unwrap();

        let search_path = std::env::join_paths([first.path(), second.path()]).unwrap();
        assert_eq!(find_containerd_in(Some(&search_path)).unwrap(), executable);
    }

    #[test]
    fn relative_path_entries_are_ignored() {
        assert!(find_containerd_in(Some(OsStr::new("relative/dir:."))).is_err());
    }
}
