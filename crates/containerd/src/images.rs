//! Images without a network: busybox-based image archives built by hand, and
//! importing image archives (k3s's `agent/images` airgap directory) with `ctr`.
//!
//! An archive is an OCI image layout in a tar (`oci-layout`, `index.json`,
//! `blobs/sha256/…`); the manifest's `io.containerd.image.name` annotation
//! names the image for `ctr images import`.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use flate2::read::GzDecoder;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::{BUSYBOX_IMAGE, K8S_NAMESPACE, PAUSE_IMAGE, install};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The pause image's entrypoint. As PID 1 the shell would ignore SIGTERM and
/// SIGINT (the kernel drops signals PID 1 has no handler for), so it traps
/// them; `wait` returns as soon as a trapped signal arrives, so stopping takes
/// milliseconds instead of the rest of the sleep.
const PAUSE_SCRIPT: &str = r#"#!/bin/sh
# krust's offline pause image: sleep until told to stop, then exit 0.
trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM INT
while :; do
  sleep 86400 &
  sleeper=$!
  wait "$sleeper"
done
"#;

const ETC_PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n";
const ETC_GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

/// `ctr` must not hang a node's startup; an import takes ~0.1 s.
const CTR_TIMEOUT: Duration = Duration::from_secs(120);

/// Writes [`BUSYBOX_IMAGE`]: `/bin/busybox` with a symlink per applet,
/// `/etc/passwd`, `/etc/group`, `/tmp`, `/root`; default command `sh`.
/// `busybox` must be statically linked (Debian's busybox-static).
pub fn write_busybox_image(out_tar: &Path, busybox: &Path) -> anyhow::Result<()> {
    write_busybox_image_as(out_tar, busybox, BUSYBOX_IMAGE)
}

/// The busybox image of [`write_busybox_image`] under another reference,
/// e.g. for tests that need an image nobody imported yet.
pub fn write_busybox_image_as(
    out_tar: &Path,
    busybox: &Path,
    reference: &str,
) -> anyhow::Result<()> {
    let rootfs = Rootfs::busybox(busybox)?;
    let process = ProcessDefaults {
        entrypoint: &[],
        cmd: &["sh"],
    };
    write_oci_archive(out_tar, reference, &rootfs, &process)
}

/// Writes [`PAUSE_IMAGE`]: the busybox root filesystem with `/pause`, a
/// shell script that sleeps until SIGTERM or SIGINT and then exits 0.
pub fn write_pause_image(out_tar: &Path, busybox: &Path) -> anyhow::Result<()> {
    let mut rootfs = Rootfs::busybox(busybox)?;
    rootfs.entries.push(RootfsEntry::File {
        path: "pause".to_string(),
        mode: 0o755,
        contents: PAUSE_SCRIPT.as_bytes().to_vec(),
    });
    let process = ProcessDefaults {
        entrypoint: &["/pause"],
        cmd: &[],
    };
    write_oci_archive(out_tar, PAUSE_IMAGE, &rootfs, &process)
}

/// Writes an image archive (`out_tar`) from a busybox binary.
type ImageBuilder = fn(&Path, &Path) -> anyhow::Result<()>;

/// Imports every `*.tar`, `*.tar.gz` and `*.tgz` in `dir` (in name order)
/// into containerd's `k8s.io` namespace; returns the imported references.
/// An archive that fails does not stop the others; the error names them all.
pub async fn import_archives(socket: &Path, dir: &Path) -> anyhow::Result<Vec<String>> {
    let archives = image_archives_in(dir)?;
    let socket = socket.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let ctr = find_ctr()?;
        let mut imported = Vec::new();
        let mut failures = Vec::new();
        for archive in &archives {
            let started = Instant::now();
            match import_archive(&ctr, &socket, archive) {
                Ok(references) => {
                    tracing::info!(
                        archive = %archive.display(),
                        images = ?references,
                        took_ms = started.elapsed().as_millis(),
                        "imported image archive"
                    );
                    imported.extend(references);
                }
                Err(error) => failures.push(format!("{}: {error:#}", archive.display())),
            }
        }
        if failures.is_empty() {
            Ok(imported)
        } else {
            bail!("importing image archives failed: {}", failures.join("; "))
        }
    })
    .await?
}

/// Makes the images a node needs without a network present in `k8s.io`:
/// first whatever archives `images_dir` holds (missing dir = none), then, for
/// [`PAUSE_IMAGE`] and [`BUSYBOX_IMAGE`] if still absent, archives built from
/// the local busybox into `work_dir`.
pub async fn ensure_offline_images(
    socket: &Path,
    images_dir: &Path,
    work_dir: &Path,
) -> anyhow::Result<()> {
    if images_dir.is_dir() {
        import_archives(socket, images_dir).await?;
    }
    let present = image_references(socket).await?;
    let builders: [(&str, ImageBuilder); 2] = [
        (PAUSE_IMAGE, write_pause_image),
        (BUSYBOX_IMAGE, write_busybox_image),
    ];
    let missing: Vec<_> = builders
        .into_iter()
        .filter(|(reference, _)| !present.contains(*reference))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let busybox = install::find_busybox().context(
        "busybox is needed to build the offline pause and busybox images: apt-get install busybox-static",
    )?;
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    for (reference, build) in missing {
        let archive_name = format!("{}.tar", reference.replace(['/', ':'], "_"));
        let archive = work_dir.join(archive_name);
        let started = Instant::now();
        build(&archive, &busybox).with_context(|| format!("building {reference}"))?;
        let built_after = started.elapsed();
        let socket = socket.to_path_buf();
        let archive_to_import = archive.clone();
        let imported = tokio::task::spawn_blocking(move || {
            import_archive(&find_ctr()?, &socket, &archive_to_import)
        })
        .await??;
        ensure!(
            imported.iter().any(|name| name == reference),
            "importing {} gave {imported:?}, not {reference}",
            archive.display()
        );
        tracing::info!(
            image = reference,
            build_ms = built_after.as_millis(),
            import_ms = (started.elapsed() - built_after).as_millis(),
            "built and imported offline image"
        );
    }
    Ok(())
}

/// The image references in containerd's `k8s.io` namespace.
pub async fn image_references(socket: &Path) -> anyhow::Result<BTreeSet<String>> {
    let socket = socket.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let ctr = find_ctr()?;
        let listing = run_ctr(
            Command::new(&ctr).arg("--address").arg(&socket).args([
                "-n",
                K8S_NAMESPACE,
                "images",
                "ls",
                "-q",
            ]),
            None,
        )?;
        Ok(listing.lines().map(str::to_string).collect())
    })
    .await?
}

fn find_ctr() -> anyhow::Result<PathBuf> {
    Ok(install::find_ctr(
        install::find_containerd().ok().as_deref(),
    )?)
}

fn image_archives_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && ArchiveKind::of(path).is_some())
        .collect();
    archives.sort();
    Ok(archives)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchiveKind {
    Tar,
    GzipTar,
}

impl ArchiveKind {
    fn of(path: &Path) -> Option<ArchiveKind> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".tar") {
            Some(ArchiveKind::Tar)
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(ArchiveKind::GzipTar)
        } else {
            None
        }
    }
}

/// One `ctr images import`; gzip archives are decompressed into its stdin
/// because ctr 1.6 reads only plain tar.
fn import_archive(ctr: &Path, socket: &Path, archive: &Path) -> anyhow::Result<Vec<String>> {
    let kind = ArchiveKind::of(archive)
        .with_context(|| format!("{} is not a .tar, .tar.gz or .tgz", archive.display()))?;
    let mut command = Command::new(ctr);
    command
        .arg("--address")
        .arg(socket)
        .args(["-n", K8S_NAMESPACE, "images", "import"]);
    let output = match kind {
        ArchiveKind::Tar => run_ctr(command.arg(archive), None)?,
        ArchiveKind::GzipTar => {
            let compressed =
                File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
            run_ctr(command.arg("-"), Some(Box::new(GzDecoder::new(compressed))))?
        }
    };
    let references = imported_references(&output);
    ensure!(
        !references.is_empty(),
        "ctr imported no image from {}: {output}",
        archive.display()
    );
    Ok(references)
}

/// The references in `ctr images import` output: one
/// `unpacking REF (sha256:…)...done` line per image.
fn imported_references(ctr_output: &str) -> Vec<String> {
    ctr_output
        .lines()
        .filter_map(|line| line.strip_prefix("unpacking "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Runs ctr to completion (feeding `stdin` if given) and returns its stdout.
fn run_ctr(
    command: &mut Command,
    stdin: Option<Box<dyn std::io::Read + Send>>,
) -> anyhow::Result<String> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let described = format!("{command:?}");
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {described}"))?;
    let feeder = match (stdin, child.stdin.take()) {
        (Some(mut source), Some(mut sink)) => Some(std::thread::spawn(move || {
            std::io::copy(&mut source, &mut sink).map(|_| ())
        })),
        _ => None,
    };
    let collectors = [
        child.stdout.take().map(read_to_end_in_thread),
        child.stderr.take().map(read_to_end_in_thread),
    ];
    let status = wait_with_timeout(&mut child, CTR_TIMEOUT)
        .with_context(|| format!("waiting for {described}"))?;
    let [stdout, stderr] = collectors.map(|collector| {
        collector
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default()
    });
    if let Some(feeder) = feeder {
        match feeder.join() {
            Ok(Err(error)) if status.success() => {
                return Err(error).context("feeding the archive to ctr");
            }
            _ => {}
        }
    }
    ensure!(
        status.success(),
        "{described} failed ({status}): {}",
        stderr.trim()
    );
    Ok(stdout)
}

/// Drains a pipe on its own thread so that a chatty child never blocks on a full pipe.
fn read_to_end_in_thread(
    mut pipe: impl std::io::Read + Send + 'static,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

fn wait_with_timeout(
    child: &mut std::process::Child,
    timeout: Duration,
) -> anyhow::Result<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("no result after {timeout:?}; killed it");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the container runs unless the pod says otherwise.
struct ProcessDefaults<'a> {
    entrypoint: &'a [&'a str],
    cmd: &'a [&'a str],
}

/// A root filesystem as the entries of a single layer.
struct Rootfs {
    entries: Vec<RootfsEntry>,
    /// Every entry's modification time: the busybox binary's, so that the
    /// same busybox always gives the same image digest.
    mtime: u64,
    platform: Platform,
}

enum RootfsEntry {
    Directory {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        contents: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Rootfs {
    fn busybox(busybox: &Path) -> anyhow::Result<Rootfs> {
        let binary =
            std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
        let platform = Platform::of_static_executable(&binary)
            .with_context(|| format!("{} cannot run in an image", busybox.display()))?;
        let mtime = std::fs::metadata(busybox)?.mtime().max(0).unsigned_abs();
        let applets = busybox_applets(busybox)?;

        let directory = |path: &str, mode| RootfsEntry::Directory {
            path: path.to_string(),
            mode,
        };
        let mut entries = vec![
            directory("bin", 0o755),
            directory("dev", 0o755),
            directory("etc", 0o755),
            directory("home", 0o755),
            directory("proc", 0o555),
            directory("root", 0o700),
            directory("sys", 0o555),
            directory("tmp", 0o1777),
            directory("var", 0o755),
            RootfsEntry::File {
                path: "bin/busybox".to_string(),
                mode: 0o755,
                contents: binary,
            },
            RootfsEntry::File {
                path: "etc/passwd".to_string(),
                mode: 0o644,
                contents: ETC_PASSWD.as_bytes().to_vec(),
            },
            RootfsEntry::File {
                path: "etc/group".to_string(),
                mode: 0o644,
                contents: ETC_GROUP.as_bytes().to_vec(),
            },
        ];
        entries.extend(applets.into_iter().map(|applet| RootfsEntry::Symlink {
            path: format!("bin/{applet}"),
            target: "busybox".to_string(),
        }));
        Ok(Rootfs {
            entries,
            mtime,
            platform,
        })
    }

    /// The uncompressed layer tar, everything owned by root.
    fn layer_tar(&self) -> anyhow::Result<Vec<u8>> {
        let mut layer = tar::Builder::new(Vec::new());
        for entry in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(self.mtime);
            let contents: &[u8] = match entry {
                RootfsEntry::Directory { path, mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_path(format!("{path}/"))?;
                    header.set_mode(*mode);
                    &[]
                }
                RootfsEntry::File {
                    path,
                    mode,
                    contents,
                } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_path(path)?;
                    header.set_mode(*mode);
                    contents
                }
                RootfsEntry::Symlink { path, target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_path(path)?;
                    header.set_link_name(target)?;
                    header.set_mode(0o777);
                    &[]
                }
            };
            header.set_size(contents.len() as u64);
            header.set_cksum();
            layer.append(&header, contents)?;
        }
        Ok(layer.into_inner()?)
    }
}

/// The applet names `busybox --list` prints (`sh`, `ls`, `[`, …).
fn busybox_applets(busybox: &Path) -> anyhow::Result<Vec<String>> {
    let output = Command::new(busybox)
        .arg("--list")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --list", busybox.display()))?;
    ensure!(
        output.status.success(),
        "{} --list failed ({})",
        busybox.display(),
        output.status
    );
    let mut applets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|applet| !applet.is_empty() && !applet.contains('/') && *applet != "busybox")
        .map(str::to_string)
        .collect();
    applets.sort();
    applets.dedup();
    ensure!(
        applets.iter().any(|applet| applet == "sh"),
        "{} has no sh applet",
        busybox.display()
    );
    Ok(applets)
}

/// The OCI platform of an executable, which must not need a dynamic loader.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Platform {
    architecture: &'static str,
}

impl Platform {
    fn of_static_executable(elf: &[u8]) -> anyhow::Result<Platform> {
        const PT_INTERP: u32 = 3;
        ensure!(elf.starts_with(b"\x7fELF"), "not an ELF executable");
        ensure!(
            elf.get(4) == Some(&2) && elf.get(5) == Some(&1),
            "not a 64-bit little-endian ELF executable"
        );
        let u16_at = |offset: usize| -> anyhow::Result<u16> {
            let bytes = elf
                .get(offset..offset + 2)
                .context("truncated ELF header")?;
            Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
        };
        let u32_at = |offset: usize| -> anyhow::Result<u32> {
            let bytes = elf
                .get(offset..offset + 4)
                .context("truncated ELF header")?;
            Ok(u32::from_le_bytes(bytes.try_into()?))
        };
        let u64_at = |offset: usize| -> anyhow::Result<u64> {
            let bytes = elf
                .get(offset..offset + 8)
                .context("truncated ELF header")?;
            Ok(u64::from_le_bytes(bytes.try_into()?))
        };
        let architecture = match u16_at(0x12)? {
            62 => "amd64",
            183 => "arm64",
            243 => "riscv64",
            21 => "ppc64le",
            22 => "s390x",
            machine => bail!("unknown ELF machine {machine}"),
        };
        let program_headers = usize::try_from(u64_at(0x20)?)?;
        let header_size = usize::from(u16_at(0x36)?);
        let header_count = usize::from(u16_at(0x38)?);
        for index in 0..header_count {
            if u32_at(program_headers + index * header_size)? == PT_INTERP {
                bail!("it is dynamically linked; install busybox-static");
            }
        }
        Ok(Platform { architecture })
    }
}

/// A content-addressed blob of the image layout.
struct Blob {
    digest: String,
    bytes: Vec<u8>,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Blob {
        Blob {
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    fn descriptor(&self, media_type: &str) -> serde_json::Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

fn write_oci_archive(
    out_tar: &Path,
    reference: &str,
    rootfs: &Rootfs,
    process: &ProcessDefaults<'_>,
) -> anyhow::Result<()> {
    let tag = reference_tag(reference)
        .with_context(|| format!("{reference} is not a tagged image reference"))?;
    let layer_tar = rootfs.layer_tar()?;
    let diff_id = sha256_digest(&layer_tar);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&layer_tar)?;
    let layer = Blob::new(gzip.finish()?);

    let mut process_config = serde_json::Map::new();
    process_config.insert("Env".to_string(), json!([DEFAULT_PATH]));
    if !process.entrypoint.is_empty() {
        process_config.insert("Entrypoint".to_string(), json!(process.entrypoint));
    }
    if !process.cmd.is_empty() {
        process_config.insert("Cmd".to_string(), json!(process.cmd));
    }
    let config = Blob::new(serde_json::to_vec(&json!({
        "architecture": rootfs.platform.architecture,
        "os": "linux",
        "config": process_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "krust: offline image from the local busybox"}],
    }))?);
    let manifest = Blob::new(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(OCI_CONFIG),
        "layers": [layer.descriptor(OCI_LAYER_GZIP)],
    }))?);
    let mut manifest_descriptor = manifest.descriptor(OCI_MANIFEST);
    manifest_descriptor["platform"] =
        json!({"architecture": rootfs.platform.architecture, "os": "linux"});
    manifest_descriptor["annotations"] = json!({
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": tag,
    });
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [manifest_descriptor],
    }))?;

    let dir = out_tar
        .parent()
        .with_context(|| format!("{} has no parent directory", out_tar.display()))?;
    let temporary = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let mut archive = tar::Builder::new(std::io::BufWriter::new(temporary));
    let mut append = |path: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_path(path)?;
        header.set_mode(0o644);
        header.set_mtime(rootfs.mtime);
        header.set_size(bytes.len() as u64);
        header.set_cksum();
        archive.append(&header, bytes)?;
        Ok(())
    };
    append("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    append("index.json", &index)?;
    for blob in [&layer, &config, &manifest] {
        let hex = blob.digest.trim_start_matches("sha256:");
        append(&format!("blobs/sha256/{hex}"), &blob.bytes)?;
    }
    let temporary = archive
        .into_inner()?
        .into_inner()
        .map_err(|error| error.into_error())?;
    temporary
        .persist(out_tar)
        .with_context(|| format!("writing {}", out_tar.display()))?;
    Ok(())
}

/// The tag of `name:tag` (a registry port is not a tag).
fn reference_tag(reference: &str) -> Option<&str> {
    let (_, tag) = reference.rsplit_once(':')?;
    (!tag.contains('/') && !tag.is_empty()).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_of_references() {
        assert_eq!(reference_tag(PAUSE_IMAGE), Some("3.10"));
        assert_eq!(reference_tag(BUSYBOX_IMAGE), Some("latest"));
        assert_eq!(reference_tag("127.0.0.1:5000/busybox"), None);
        assert_eq!(reference_tag("127.0.0.1:5000/busybox:v1"), Some("v1"));
    }

    #[test]
    fn ctr_import_output_names_the_images() {
        let output = "unpacking docker.io/library/busybox:latest (sha256:0a1b)...done\n\
                      unpacking registry.k8s.io/pause:3.10 (sha256:2c3d)...done\n";
        assert_eq!(
            imported_references(output),
            vec![
                "docker.io/library/busybox:latest",
                "registry.k8s.io/pause:3.10"
            ]
        );
    }

    #[test]
    fn archive_kinds_by_name() {
        assert_eq!(
            ArchiveKind::of(Path::new("a/b.tar")),
            Some(ArchiveKind::Tar)
        );
        assert_eq!(
            ArchiveKind::of(Path::new("b.tar.gz")),
            Some(ArchiveKind::GzipTar)
        );
        assert_eq!(
            ArchiveKind::of(Path::new("b.tgz")),
            Some(ArchiveKind::GzipTar)
        );
        assert_eq!(ArchiveKind::of(Path::new("b.tar.zst")), None);
        assert_eq!(ArchiveKind::of(Path::new("notes.txt")), None);
    }

    #[test]
    fn a_dynamically_linked_executable_is_refused() {
        let dynamic = std::fs::read("/proc/self/exe").unwrap();
        let error = Platform::of_static_executable(&dynamic).unwrap_err();
        assert!(error.to_string().contains("dynamically linked"), "{error}");
        assert!(Platform::of_static_executable(b"#!/bin/sh\n").is_err());
    }
}
