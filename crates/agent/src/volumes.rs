//! A pod's volumes on the node, under `PODS/UID/volumes/PLUGIN/NAME` like kubelet's `/var/lib/kubelet/pods`: emptyDir and hostPath directories, and configMap, secret, downwardAPI and projected volumes written with upstream's atomic-writer layout (a timestamped payload dir, a `..data` symlink to it, and per entry a symlink through `..data`), so updates appear in place inside running containers.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};

/// The ConfigMaps and Secrets a pod's volumes read, fetched by the caller.
#[derive(Default)]
pub struct VolumeObjects {
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
}

/// One file of a rendered volume: relative path, content, mode.
type Payload = BTreeMap<String, (Vec<u8>, u32)>;

/// Names of the ConfigMaps and Secrets the pod's volumes refer to.
pub fn referenced_objects(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    for volume in pod
        .spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
    {
        if let Some(source) = &volume.config_map {
            config_maps.push(source.name.clone());
        }
        if let Some(source) = &volume.secret
            && let Some(name) = &source.secret_name
        {
            secrets.push(name.clone());
        }
        for projection in volume
            .projected
            .iter()
            .flat_map(|projected| projected.sources.iter().flatten())
        {
            if let Some(source) = &projection.config_map {
                config_maps.push(source.name.clone());
            }
            if let Some(source) = &projection.secret {
                secrets.push(source.name.clone());
            }
        }
    }
    config_maps.sort();
    config_maps.dedup();
    secrets.sort();
    secrets.dedup();
    (config_maps, secrets)
}

/// Whether the pod has volumes whose content follows API objects (and
/// needs refreshing now and then).
pub fn has_projected_content(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
        .any(|volume| {
            volume.config_map.is_some()
                || volume.secret.is_some()
                || volume.downward_api.is_some()
                || volume.projected.is_some()
        })
}

fn checked_relative(path: &str) -> Result<(), String> {
    let path = Path::new(path);
    if path.is_absolute()
        || path
            .components()
            .any(|component| matches!(component, Component::ParentDir))
    {
        return Err(format!(
            "must be a relative path without '..': {}",
            path.display()
        ));
    }
    Ok(())
}

/// Keys to files: the listed items, or every key.
fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    optional: bool,
    kind: &str,
    name: &str,
    namespace: &str,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                checked_relative(&item.path)?;
                match data.get(&item.key) {
                    Some(value) => {
                        let mode = item.mode.map_or(default_mode, |mode| mode as u32);
                        payload.insert(item.path.clone(), (value.clone(), mode));
                    }
                    None if optional => {}
                    None => {
                        return Err(format!(
                            "configuration error: key \"{}\" not found in {kind} {namespace}/{name}",
                            item.key
                        ));
                    }
                }
            }
        }
        _ => {
            for (key, value) in data {
                payload.insert(key.clone(), (value.clone(), default_mode));
            }
        }
    }
    Ok(payload)
}

fn config_map_data(config_map: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = config_map
        .data
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.as_bytes().to_vec()))
        .collect();
    for (key, value) in config_map.binary_data.iter().flatten() {
        data.insert(key.clone(), value.0.clone());
    }
    data
}

fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.0.clone()))
        .collect();
    for (key, value) in secret.string_data.iter().flatten() {
        data.insert(key.clone(), value.as_bytes().to_vec());
    }
    data
}

/// `key="value"` lines, sorted, as upstream renders labels and annotations.
fn format_map(map: Option<&BTreeMap<String, String>>) -> Vec<u8> {
    let mut lines: Vec<String> = map
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect();
    lines.sort();
    lines.join("\n").into_bytes()
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    for item in items {
        checked_relative(&item.path)?;
        let mode = item.mode.map_or(default_mode, |mode| mode as u32);
        let content = if let Some(field) = &item.field_ref {
            match field.field_path.as_str() {
                "metadata.name" => pod.metadata.name.clone().unwrap_or_default().into_bytes(),
                "metadata.namespace" => pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_default()
                    .into_bytes(),
                "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default().into_bytes(),
                "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
                "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
                path => {
                    let key = path
                        .strip_prefix("metadata.labels['")
                        .map(|rest| (rest, pod.metadata.labels.as_ref()))
                        .or_else(|| {
                            path.strip_prefix("metadata.annotations['")
                                .map(|rest| (rest, pod.metadata.annotations.as_ref()))
                        });
                    match key {
                        Some((rest, map)) => {
                            let key = rest.trim_end_matches("']");
                            map.and_then(|map| map.get(key))
                                .cloned()
                                .unwrap_or_default()
                                .into_bytes()
                        }
                        None => {
                            return Err(format!(
                                "unsupported fieldPath {path:?} in a downwardAPI volume"
                            ));
                        }
                    }
                }
            }
        } else {
            return Err(
                "resourceFieldRef in downwardAPI volumes is not supported by this agent yet".into(),
            );
        };
        payload.insert(item.path.clone(), (content, mode));
    }
    Ok(payload)
}

/// The files of a config-like volume, or `None` for a directory volume.
fn render(
    pod: &Pod,
    volume: &Volume,
    objects: &VolumeObjects,
) -> Result<Option<(&'static str, Payload)>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(source) = &volume.config_map {
        let optional = source.optional.unwrap_or(false);
        let mode = source.default_mode.unwrap_or(0o644) as u32;
        let payload = match objects.config_maps.get(&source.name) {
            Some(config_map) => key_files(
                &config_map_data(config_map),
                source.items.as_ref(),
                mode,
                optional,
                "ConfigMap",
                &source.name,
                namespace,
            )?,
            None if optional => Payload::new(),
            None => return Err(format!("configmap \"{}\" not found", source.name)),
        };
        return Ok(Some(("kubernetes.io~configmap", payload)));
    }
    if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        let optional = source.optional.unwrap_or(false);
        let mode = source.default_mode.unwrap_or(0o644) as u32;
        let payload = match objects.secrets.get(&name) {
            Some(secret) => key_files(
                &secret_data(secret),
                source.items.as_ref(),
                mode,
                optional,
                "Secret",
                &name,
                namespace,
            )?,
            None if optional => Payload::new(),
            None => return Err(format!("secret \"{name}\" not found")),
        };
        return Ok(Some(("kubernetes.io~secret", payload)));
    }
    if let Some(source) = &volume.downward_api {
        let mode = source.default_mode.unwrap_or(0o644) as u32;
        let items = source.items.clone().unwrap_or_default();
        return Ok(Some((
            "kubernetes.io~downward-api",
            downward_files(pod, &items, mode)?,
        )));
    }
    if let Some(source) = &volume.projected {
        let mode = source.default_mode.unwrap_or(0o644) as u32;
        let mut payload = Payload::new();
        for projection in source.sources.iter().flatten() {
            if let Some(source) = &projection.config_map {
                let optional = source.optional.unwrap_or(false);
                match objects.config_maps.get(&source.name) {
                    Some(config_map) => payload.extend(key_files(
                        &config_map_data(config_map),
                        source.items.as_ref(),
                        mode,
                        optional,
                        "ConfigMap",
                        &source.name,
                        namespace,
                    )?),
                    None if optional => {}
                    None => return Err(format!("configmap \"{}\" not found", source.name)),
                }
            } else if let Some(source) = &projection.secret {
                let optional = source.optional.unwrap_or(false);
                match objects.secrets.get(&source.name) {
                    Some(secret) => payload.extend(key_files(
                        &secret_data(secret),
                        source.items.as_ref(),
                        mode,
                        optional,
                        "Secret",
                        &source.name,
                        namespace,
                    )?),
                    None if optional => {}
                    None => return Err(format!("secret \"{}\" not found", source.name)),
                }
            } else if let Some(source) = &projection.downward_api {
                payload.extend(downward_files(
                    pod,
                    source.items.as_deref().unwrap_or_default(),
                    mode,
                )?);
            } else {
                return Err(
                    "projected volume source (serviceAccountToken or clusterTrustBundle) is not supported by this agent yet"
                        .into(),
                );
            }
        }
        return Ok(Some(("kubernetes.io~projected", payload)));
    }
    Ok(None)
}

/// Writes `payload` into `dir` with the atomic-writer layout; does nothing
/// when the current payload is the same.
pub fn write_atomically(dir: &Path, payload: &Payload) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link) {
        let current_dir = dir.join(&current);
        let same = payload.iter().all(|(path, (content, mode))| {
            let file = current_dir.join(path);
            std::fs::read(&file).is_ok_and(|existing| &existing == content)
                && std::fs::metadata(&file).is_ok_and(|m| m.permissions().mode() & 0o7777 == *mode)
        }) && count_files(&current_dir) == payload.len();
        if same {
            return Ok(());
        }
    }
    let stamp = k8s_openapi::jiff::Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let payload_dir = dir.join(&stamp);
    std::fs::create_dir_all(&payload_dir)?;
    for (path, (content, mode)) in payload {
        let file = payload_dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, content)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))?;
    }
    let temporary = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&temporary);
    symlink(&stamp, &temporary)?;
    std::fs::rename(&temporary, &data_link)?;
    // Top-level entries point through ..data; stale ones and old payloads go.
    let top: std::collections::BTreeSet<String> = payload
        .keys()
        .map(|path| path.split('/').next().unwrap_or(path).to_string())
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(name), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name == "..data" || name == stamp {
            continue;
        }
        if name.starts_with("..") {
            let _ = std::fs::remove_dir_all(entry.path());
        } else if !top.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        count_files(&entry.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Prepares (or refreshes) volume `volume` of `pod` under `pod_dir`; returns
/// the host directory containers mount.
pub fn prepare(
    pod: &Pod,
    volume: &Volume,
    pod_dir: &Path,
    objects: &VolumeObjects,
) -> Result<PathBuf, String> {
    let failed = |error: std::io::Error| {
        format!(
            "MountVolume.SetUp failed for volume \"{}\" : {error}",
            volume.name
        )
    };
    if let Some(dir) = &volume.empty_dir {
        let path = pod_dir
            .join("volumes/kubernetes.io~empty-dir")
            .join(&volume.name);
        std::fs::create_dir_all(&path).map_err(failed)?;
        // As upstream: world-writable, whatever user the containers run as.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).map_err(failed)?;
        match dir.medium.as_deref().unwrap_or_default() {
            "" => {}
            "Memory" => {
                let size = match &dir.size_limit {
                    Some(limit) => Some(
                        kubelet::quantity::Quantity::from_api(limit)
                            .map_err(|error| {
                                format!(
                                    "MountVolume.SetUp failed for volume \"{}\" : invalid sizeLimit: {error}",
                                    volume.name
                                )
                            })?
                            .value(),
                    ),
                    None => None,
                };
                ensure_tmpfs(&path, size).map_err(failed)?;
            }
            other => {
                return Err(format!(
                    "MountVolume.SetUp failed for volume \"{}\" : emptyDir medium {other:?} is not supported by this agent",
                    volume.name
                ));
            }
        }
        return Ok(path);
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "MountVolume.SetUp failed for volume \"{}\" : hostPath type check failed: {} is not a {what}",
                    volume.name, host.path
                ))
            }
        };
        match host.type_.as_deref().unwrap_or("") {
            "" => {}
            "DirectoryOrCreate" => std::fs::create_dir_all(&path).map_err(failed)?,
            "Directory" => check(path.is_dir(), "directory")?,
            "FileOrCreate" => {
                if !path.exists() {
                    std::fs::write(&path, b"").map_err(failed)?;
                }
            }
            "File" => check(path.is_file(), "file")?,
            other => {
                return Err(format!(
                    "MountVolume.SetUp failed for volume \"{}\" : hostPath type {other:?} is not supported by this agent yet",
                    volume.name
                ));
            }
        }
        return Ok(path);
    }
    match render(pod, volume, objects) {
        Ok(Some((plugin, payload))) => {
            let path = pod_dir.join("volumes").join(plugin).join(&volume.name);
            // As upstream: secrets (alone or projected) never touch the disk.
            if plugin == "kubernetes.io~secret" || plugin == "kubernetes.io~projected" {
                std::fs::create_dir_all(&path).map_err(failed)?;
                ensure_tmpfs(&path, None).map_err(failed)?;
            }
            write_atomically(&path, &payload).map_err(failed)?;
            Ok(path)
        }
        Ok(None) => Err(format!(
            "Unable to attach or mount volumes: unmounted volumes=[{}]: this volume type is not supported by this agent yet",
            volume.name
        )),
        Err(message) => Err(format!(
            "MountVolume.SetUp failed for volume \"{}\" : {message}",
            volume.name
        )),
    }
}

/// Whether `path` is the root of a mount (its device differs from its
/// parent's).
fn is_mount_point(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let parent = path.parent().unwrap_or(path);
    Ok(std::fs::metadata(path)?.dev() != std::fs::metadata(parent)?.dev())
}

/// Mounts a tmpfs on `path` unless one is there already; `size` in bytes.
fn ensure_tmpfs(path: &Path, size: Option<i64>) -> std::io::Result<()> {
    if is_mount_point(path)? {
        return Ok(());
    }
    let mut options = String::from("mode=0777");
    if let Some(size) = size.filter(|size| *size > 0) {
        options.push_str(&format!(",size={size}"));
    }
    let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    let options = std::ffi::CString::new(options).map_err(std::io::Error::other)?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the
    // call; tmpfs takes its options as a string.
    let result = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            options.as_ptr().cast(),
        )
    };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Detaches every mount under `dir` (a gone pod's tmpfs volumes), deepest
/// first, so the directory can be removed.
pub fn unmount_all_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(point.replace("\\040", " ")))
        .filter(|point| point.starts_with(dir))
        .collect();
    mounts.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    for point in mounts {
        let Ok(target) = std::ffi::CString::new(point.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: `target` is a NUL-terminated path that outlives the call.
        let result = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        if result != 0 {
            tracing::warn!(mount = %point.display(), error = %std::io::Error::last_os_error(), "unmounting a volume");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod directory whose tmpfs volumes are unmounted when dropped.
    struct PodDir(tempfile::TempDir);

    impl PodDir {
        fn new() -> PodDir {
            PodDir(tempfile::tempdir().unwrap())
        }

        fn path(&self) -> &Path {
            self.0.path()
        }
    }

    impl Drop for PodDir {
        fn drop(&mut self) {
            unmount_all_under(self.0.path());
        }
    }

    fn filesystem_type(path: &Path) -> (i64, u64) {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let mut stats = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: `c_path` is NUL-terminated and `stats` is written by statfs
        // before it is read.
        let stats = unsafe {
            assert_eq!(libc::statfs(c_path.as_ptr(), stats.as_mut_ptr()), 0);
            stats.assume_init()
        };
        (stats.f_type as i64, stats.f_blocks * stats.f_bsize as u64)
    }

    const TMPFS_MAGIC: i64 = 0x0102_1994;

    #[test]
    fn secrets_and_memory_empty_dirs_live_on_tmpfs() {
        let dir = PodDir::new();
        let pod = pod(json!([
            {"name": "secret", "secret": {"secretName": "creds"}},
            {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
            {"name": "disk", "emptyDir": {}},
        ]));
        let volumes = pod.spec.as_ref().unwrap().volumes.clone().unwrap();
        let secret = prepare(&pod, &volumes[0], dir.path(), &objects()).unwrap();
        assert_eq!(filesystem_type(&secret).0, TMPFS_MAGIC);
        // A refresh keeps the one mount.
        prepare(&pod, &volumes[0], dir.path(), &objects()).unwrap();
        let scratch = prepare(&pod, &volumes[1], dir.path(), &objects()).unwrap();
        assert_eq!(filesystem_type(&scratch), (TMPFS_MAGIC, 8 << 20));
        let disk = prepare(&pod, &volumes[2], dir.path(), &objects()).unwrap();
        assert_ne!(filesystem_type(&disk).0, TMPFS_MAGIC);
        for path in [&scratch, &disk] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o777, "{}", path.display());
        }
        let mounts = |root: &Path| {
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .filter(|line| line.contains(root.to_str().unwrap()))
                .count()
        };
        assert_eq!(mounts(dir.path()), 2);
        unmount_all_under(dir.path());
        assert_eq!(mounts(dir.path()), 0);
        std::fs::remove_dir_all(dir.path().join("volumes")).unwrap();
    }

    #[test]
    fn unknown_empty_dir_media_are_refused() {
        let dir = PodDir::new();
        let pod = pod(json!([{"name": "huge", "emptyDir": {"medium": "HugePages"}}]));
        let volumes = pod.spec.as_ref().unwrap().volumes.clone().unwrap();
        let error = prepare(&pod, &volumes[0], dir.path(), &objects()).unwrap_err();
        assert!(error.contains("emptyDir medium \"HugePages\""), "{error}");
    }

    fn pod(volumes: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "c"}], "volumes": volumes},
        }))
        .unwrap()
    }

    fn objects() -> VolumeObjects {
        let mut objects = VolumeObjects::default();
        objects.config_maps.insert(
            "settings".into(),
            serde_json::from_value(
                json!({"metadata": {"name": "settings"}, "data": {"mode": "fast", "level": "3"}}),
            )
            .unwrap(),
        );
        objects.secrets.insert(
            "creds".into(),
            serde_json::from_value(
                json!({"metadata": {"name": "creds"}, "data": {"password": "aHVudGVyMg=="}}),
            )
            .unwrap(),
        );
        objects
    }

    #[test]
    fn config_maps_and_secrets_become_files_through_data() {
        let dir = PodDir::new();
        let pod = pod(json!([
            {"name": "config", "configMap": {"name": "settings", "items": [{"key": "mode", "path": "sub/mode", "mode": 0o600}]}},
            {"name": "secret", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        ]));
        let volumes = pod.spec.as_ref().unwrap().volumes.clone().unwrap();
        let config = prepare(&pod, &volumes[0], dir.path(), &objects()).unwrap();
        assert_eq!(
            std::fs::read_to_string(config.join("sub/mode")).unwrap(),
            "fast"
        );
        assert_eq!(
            std::fs::read_link(config.join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        let mode = std::fs::metadata(config.join("sub/mode"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!config.join("level").exists(), "only the listed items");
        let secret = prepare(&pod, &volumes[1], dir.path(), &objects()).unwrap();
        assert_eq!(
            std::fs::read_to_string(secret.join("password")).unwrap(),
            "hunter2"
        );
    }

    #[test]
    fn an_update_swaps_the_payload_in_place() {
        let dir = PodDir::new();
        let pod = pod(json!([{"name": "config", "configMap": {"name": "settings"}}]));
        let volume = &pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        let mut objects = objects();
        let path = prepare(&pod, volume, dir.path(), &objects).unwrap();
        let first = std::fs::read_link(path.join("..data")).unwrap();
        // Unchanged: no new payload.
        prepare(&pod, volume, dir.path(), &objects).unwrap();
        assert_eq!(std::fs::read_link(path.join("..data")).unwrap(), first);
        objects.config_maps.insert(
            "settings".into(),
            serde_json::from_value(
                json!({"metadata": {"name": "settings"}, "data": {"mode": "slow"}}),
            )
            .unwrap(),
        );
        prepare(&pod, volume, dir.path(), &objects).unwrap();
        assert_eq!(std::fs::read_to_string(path.join("mode")).unwrap(), "slow");
        assert!(!path.join("level").exists(), "a deleted key disappears");
        assert!(!path.join(&first).exists(), "the old payload is removed");
    }

    #[test]
    fn missing_objects_fail_unless_optional() {
        let dir = PodDir::new();
        let pod = pod(json!([
            {"name": "a", "configMap": {"name": "absent"}},
            {"name": "b", "configMap": {"name": "absent", "optional": true}},
            {"name": "c", "secret": {"secretName": "creds", "items": [{"key": "nope", "path": "x"}]}},
        ]));
        let volumes = pod.spec.as_ref().unwrap().volumes.clone().unwrap();
        let error = prepare(&pod, &volumes[0], dir.path(), &objects()).unwrap_err();
        assert!(error.ends_with("configmap \"absent\" not found"), "{error}");
        let empty = prepare(&pod, &volumes[1], dir.path(), &objects()).unwrap();
        assert_eq!(count_files(&empty.join("..data")), 0);
        let error = prepare(&pod, &volumes[2], dir.path(), &objects()).unwrap_err();
        assert!(
            error.contains("key \"nope\" not found in Secret ns/creds"),
            "{error}"
        );
    }

    #[test]
    fn downward_api_renders_identity_and_labels() {
        let dir = PodDir::new();
        let pod = pod(json!([{"name": "info", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "a", "fieldRef": {"fieldPath": "metadata.labels['a']"}},
        ]}}]));
        let volume = &pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        let path = prepare(&pod, volume, dir.path(), &VolumeObjects::default()).unwrap();
        assert_eq!(std::fs::read_to_string(path.join("name")).unwrap(), "p");
        assert_eq!(
            std::fs::read_to_string(path.join("labels")).unwrap(),
            "a=\"1\"\nb=\"2\""
        );
        assert_eq!(std::fs::read_to_string(path.join("a")).unwrap(), "1");
    }

    #[test]
    fn escaping_paths_are_refused() {
        let dir = PodDir::new();
        let pod = pod(
            json!([{"name": "config", "configMap": {"name": "settings", "items": [{"key": "mode", "path": "../evil"}]}}]),
        );
        let volume = &pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        assert!(prepare(&pod, volume, dir.path(), &objects()).is_err());
    }
}
