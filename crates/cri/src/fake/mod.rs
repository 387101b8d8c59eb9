//! An in-memory container runtime for unit tests of code that drives CRI:
//! sandboxes, containers and images with containerd 1.6's semantics and
//! error texts, plus knobs to inject failures and exits and a log of every
//! call.
//!
//! Nothing runs: containers change state only through CRI calls and the
//! knobs. Clones share one runtime, so a test can hand one clone to the code
//! under test and keep another to steer and inspect.

mod images;
mod reference;
mod runtime;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::api;
use crate::error::{CriError, ErrorCode};
use crate::service::ExecSyncOutput;

pub use reference::normalize as normalize_image_reference;

/// A CRI RPC, for recorded calls and injected failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Version,
    Status,
    RunPodSandbox,
    StopPodSandbox,
    RemovePodSandbox,
    PodSandboxStatus,
    ListPodSandbox,
    CreateContainer,
    StartContainer,
    StopContainer,
    RemoveContainer,
    ListContainers,
    ContainerStatus,
    UpdateContainerResources,
    ReopenContainerLog,
    ExecSync,
    Exec,
    Attach,
    PortForward,
    ContainerStats,
    ListContainerStats,
    PodSandboxStats,
    ListPodSandboxStats,
    ListImages,
    ImageStatus,
    PullImage,
    RemoveImage,
    ImageFsInfo,
}

impl Method {
    /// The RPC's name in CRI, as [`CriError::method`] gives it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Version => "Version",
            Method::Status => "Status",
            Method::RunPodSandbox => "RunPodSandbox",
            Method::StopPodSandbox => "StopPodSandbox",
            Method::RemovePodSandbox => "RemovePodSandbox",
            Method::PodSandboxStatus => "PodSandboxStatus",
            Method::ListPodSandbox => "ListPodSandbox",
            Method::CreateContainer => "CreateContainer",
            Method::StartContainer => "StartContainer",
            Method::StopContainer => "StopContainer",
            Method::RemoveContainer => "RemoveContainer",
            Method::ListContainers => "ListContainers",
            Method::ContainerStatus => "ContainerStatus",
            Method::UpdateContainerResources => "UpdateContainerResources",
            Method::ReopenContainerLog => "ReopenContainerLog",
            Method::ExecSync => "ExecSync",
            Method::Exec => "Exec",
            Method::Attach => "Attach",
            Method::PortForward => "PortForward",
            Method::ContainerStats => "ContainerStats",
            Method::ListContainerStats => "ListContainerStats",
            Method::PodSandboxStats => "PodSandboxStats",
            Method::ListPodSandboxStats => "ListPodSandboxStats",
            Method::ListImages => "ListImages",
            Method::ImageStatus => "ImageStatus",
            Method::PullImage => "PullImage",
            Method::RemoveImage => "RemoveImage",
            Method::ImageFsInfo => "ImageFsInfo",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// One call the fake received, failed ones included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedCall {
    pub method: Method,
    /// What the call was about: the sandbox's or container's metadata name
    /// for `RunPodSandbox` and `CreateContainer` (they have no id yet), the
    /// image for image calls, the sandbox or container id otherwise, empty
    /// for calls about everything (lists, `Version`).
    pub subject: String,
    /// The arguments that matter for assertions: the grace period in seconds
    /// for `StopContainer`, the command for `ExecSync` and `Exec`, the ports
    /// for `PortForward`; empty otherwise.
    pub detail: String,
}

/// Which stream a container wrote a log line to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// Answers `ExecSync` for a container (by its metadata name) and command.
pub type ExecHandler = dyn Fn(&str, &[String]) -> ExecSyncOutput + Send + Sync;

/// The in-memory runtime. See the module documentation.
#[derive(Clone, Default)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FakeRuntime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        formatter
            .debug_struct("FakeRuntime")
            .field("sandboxes", &state.sandboxes.len())
            .field("containers", &state.containers.len())
            .field("images", &state.images.len())
            .field("calls", &state.calls.len())
            .finish()
    }
}

/// How a container exits, when a knob makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Exit {
    code: i32,
    reason: String,
}

impl Exit {
    /// containerd's reasons: `Completed` for 0, `Error` otherwise, unless
    /// the runtime knows better (`OOMKilled`).
    fn new(code: i32, reason: Option<&str>) -> Exit {
        let default_reason = if code == 0 { "Completed" } else { "Error" };
        Exit {
            code,
            reason: reason.unwrap_or(default_reason).to_string(),
        }
    }
}

/// A SIGTERM-ed process that does not catch it dies with 128 + 15.
const STOPPED_EXIT_CODE: i32 = 143;
/// What a forcibly removed (SIGKILL-ed) container exits with.
const KILLED_EXIT_CODE: i32 = 137;
/// Where streaming URLs point, like containerd's server on a random port.
const STREAMING_ADDRESS: &str = "http://127.0.0.1:10010";
/// The mount point the fake claims to keep images on.
const IMAGE_FILESYSTEM: &str = "/var/lib/fake-runtime/images";

#[derive(Default)]
struct State {
    sandboxes: BTreeMap<String, Sandbox>,
    containers: BTreeMap<String, Container>,
    images: Vec<Image>,
    /// Sandbox and container name keys (containerd's name index) to the id
    /// holding them, until removal.
    reserved_names: HashMap<String, String>,
    calls: Vec<RecordedCall>,
    injected_failures: HashMap<Method, VecDeque<CriError>>,
    pull_failures: HashMap<String, CriError>,
    exits_on_start: HashMap<String, Exit>,
    stop_exit_codes: HashMap<String, i32>,
    exec_handler: Option<Arc<ExecHandler>>,
    conditions: Vec<api::RuntimeCondition>,
    conditions_set: bool,
    /// Creation order, so that lists come out stable.
    next_serial: u64,
    last_timestamp: i64,
}

struct Sandbox {
    id: String,
    serial: u64,
    config: api::PodSandboxConfig,
    runtime_handler: String,
    state: api::PodSandboxState,
    created_at: i64,
    ip: String,
    name_key: String,
}

struct Container {
    id: String,
    serial: u64,
    sandbox_id: String,
    config: api::ContainerConfig,
    image: api::ImageSpec,
    image_ref: String,
    log_path: String,
    state: api::ContainerState,
    created_at: i64,
    started_at: i64,
    finished_at: i64,
    exit_code: i32,
    reason: String,
    message: String,
    resources: api::LinuxContainerResources,
    usage: ContainerUsage,
    name_key: String,
}

struct Image {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    size: u64,
}

/// The usage a container's stats report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerUsage {
    pub cpu_core_nanoseconds: u64,
    pub memory_working_set_bytes: u64,
}

impl FakeRuntime {
    /// An empty runtime: no sandboxes, containers or images; both runtime
    /// conditions true.
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    /// A runtime that already has `images` (tags, normalized like
    /// containerd: `busybox` is `docker.io/library/busybox:latest`).
    pub fn with_images(images: &[&str]) -> FakeRuntime {
        let runtime = FakeRuntime::new();
        for image in images {
            runtime.add_image(image);
        }
        runtime
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the fake from the others.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every call so far, in the order received.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.lock().calls.clone()
    }

    /// The calls of one method, in order.
    pub fn calls_of(&self, method: Method) -> Vec<RecordedCall> {
        self.lock()
            .calls
            .iter()
            .filter(|call| call.method == method)
            .cloned()
            .collect()
    }

    /// Just the methods called, in order: handy for ordering assertions.
    pub fn methods_called(&self) -> Vec<Method> {
        self.lock().calls.iter().map(|call| call.method).collect()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Makes the next call of `method` fail with `code` and `message`,
    /// without any effect. Several injections queue up.
    pub fn fail_next(&self, method: Method, code: ErrorCode, message: &str) {
        self.lock()
            .injected_failures
            .entry(method)
            .or_default()
            .push_back(CriError::new(method.name(), code, message));
    }

    /// Makes every pull of `image` fail with `code` and `message` until
    /// [`FakeRuntime::allow_pull`].
    pub fn fail_pull(&self, image: &str, code: ErrorCode, message: &str) {
        let key = reference::normalize(image).unwrap_or_else(|_| image.to_string());
        self.lock()
            .pull_failures
            .insert(key, CriError::new(Method::PullImage.name(), code, message));
    }

    /// Makes pulls of `image` fail as containerd's do for a tag the registry
    /// does not have.
    pub fn fail_pull_not_found(&self, image: &str) {
        let name = reference::normalize(image).unwrap_or_else(|_| image.to_string());
        let message = format!(
            "failed to pull and unpack image \"{name}\": failed to resolve reference \"{name}\": {name}: not found"
        );
        self.fail_pull(image, ErrorCode::NotFound, &message);
    }

    /// Undoes [`FakeRuntime::fail_pull`].
    pub fn allow_pull(&self, image: &str) {
        let key = reference::normalize(image).unwrap_or_else(|_| image.to_string());
        self.lock().pull_failures.remove(&key);
    }

    /// Makes a local image present, as if pulled. Returns its id.
    ///
    /// # Panics
    /// If `image` is not a valid reference: the test is wrong.
    pub fn add_image(&self, image: &str) -> String {
        let name = reference::normalize(image)
            .unwrap_or_else(|error| panic!("add_image({image:?}): {error}"));
        self.lock().add_image(&name)
    }

    /// From now on, every container with this metadata name exits right
    /// after it starts, with `exit_code` and `reason` (default: `Completed`
    /// for 0, `Error` otherwise), as a crashing program would.
    pub fn exit_on_start(&self, container_name: &str, exit_code: i32, reason: Option<&str>) {
        self.lock()
            .exits_on_start
            .insert(container_name.to_string(), Exit::new(exit_code, reason));
    }

    /// Undoes [`FakeRuntime::exit_on_start`]: the container keeps running.
    pub fn run_on_start(&self, container_name: &str) {
        self.lock().exits_on_start.remove(container_name);
    }

    /// The exit code `StopContainer` gives containers with this metadata name
    /// (default 143: the process died of SIGTERM).
    pub fn set_stop_exit_code(&self, container_name: &str, exit_code: i32) {
        self.lock()
            .stop_exit_codes
            .insert(container_name.to_string(), exit_code);
    }

    /// Makes a running container exit now, with `exit_code` and `reason`
    /// (`Some("OOMKilled")`, or the default for the code).
    ///
    /// # Panics
    /// If the container does not exist or is not running: the test is wrong.
    pub fn exit_container(&self, container_id: &str, exit_code: i32, reason: Option<&str>) {
        let mut state = self.lock();
        let now = state.now();
        let container = state
            .containers
            .get_mut(container_id)
            .unwrap_or_else(|| panic!("exit_container: no container {container_id}"));
        assert_eq!(
            container.state,
            api::ContainerState::ContainerRunning,
            "exit_container: container {container_id} is not running"
        );
        container.exit(now, &Exit::new(exit_code, reason));
    }

    /// Puts a container in CONTAINER_UNKNOWN, as containerd reports one
    /// whose shim died.
    ///
    /// # Panics
    /// If the container does not exist.
    pub fn lose_container(&self, container_id: &str) {
        let mut state = self.lock();
        let container = state
            .containers
            .get_mut(container_id)
            .unwrap_or_else(|| panic!("lose_container: no container {container_id}"));
        container.state = api::ContainerState::ContainerUnknown;
    }

    /// Sets what a container's stats report.
    ///
    /// # Panics
    /// If the container does not exist.
    pub fn set_container_usage(&self, container_id: &str, usage: ContainerUsage) {
        let mut state = self.lock();
        let container = state
            .containers
            .get_mut(container_id)
            .unwrap_or_else(|| panic!("set_container_usage: no container {container_id}"));
        container.usage = usage;
    }

    /// Answers every `ExecSync` from now on: given the container's metadata
    /// name and the command. Without one, commands succeed silently.
    pub fn set_exec_handler(
        &self,
        handler: impl Fn(&str, &[String]) -> ExecSyncOutput + Send + Sync + 'static,
    ) {
        self.lock().exec_handler = Some(Arc::new(handler));
    }

    /// Sets (or adds) a runtime condition that `Status` reports, such as
    /// `NetworkReady` false with reason `NetworkPluginNotReady`.
    pub fn set_condition(&self, condition_type: &str, status: bool, reason: &str, message: &str) {
        let mut state = self.lock();
        state.ensure_default_conditions();
        let condition = api::RuntimeCondition {
            r#type: condition_type.to_string(),
            status,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        match state
            .conditions
            .iter_mut()
            .find(|existing| existing.r#type == condition_type)
        {
            Some(existing) => *existing = condition,
            None => state.conditions.push(condition),
        }
    }

    /// Appends `line` to the container's log file in CRI log format, as the
    /// runtime would for a line the container printed.
    ///
    /// # Panics
    /// If the container does not exist or has no log path.
    pub fn write_log(
        &self,
        container_id: &str,
        stream: LogStream,
        line: &str,
    ) -> std::io::Result<()> {
        let (path, timestamp) = {
            let mut state = self.lock();
            let now = state.now();
            let container = state
                .containers
                .get(container_id)
                .unwrap_or_else(|| panic!("write_log: no container {container_id}"));
            assert!(
                !container.log_path.is_empty(),
                "write_log: container {container_id} has no log path"
            );
            (container.log_path.clone(), rfc3339_nanos(now))
        };
        let path = Path::new(&path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{timestamp} {} F {line}", stream.as_str())
    }
}

impl State {
    /// Records a call and hands out a failure injected for it.
    fn begin(&mut self, method: Method, subject: &str, detail: String) -> Result<(), CriError> {
        self.calls.push(RecordedCall {
            method,
            subject: subject.to_string(),
            detail,
        });
        match self
            .injected_failures
            .get_mut(&method)
            .and_then(VecDeque::pop_front)
        {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Nanoseconds since the epoch, strictly increasing, so that events the
    /// fake orders are ordered in their timestamps too.
    fn now(&mut self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.last_timestamp = wall.max(self.last_timestamp + 1);
        self.last_timestamp
    }

    fn next_serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }

    /// A new 64-hex-digit id like containerd's, distinct in its first digits
    /// so that prefixes identify it.
    fn new_id(&mut self) -> String {
        let serial = self.next_serial();
        let mut seed = serial;
        (0..4)
            .map(|_| format!("{:016x}", splitmix64(&mut seed)))
            .collect()
    }

    fn ensure_default_conditions(&mut self) {
        if !self.conditions_set {
            self.conditions_set = true;
            self.conditions = ["RuntimeReady", "NetworkReady"]
                .into_iter()
                .map(|condition_type| api::RuntimeCondition {
                    r#type: condition_type.to_string(),
                    status: true,
                    ..Default::default()
                })
                .collect();
        }
    }

    fn add_image(&mut self, name: &str) -> String {
        if let Some(image) = self
            .images
            .iter()
            .find(|image| image.repo_tags.iter().any(|tag| tag == name))
        {
            return image.id.clone();
        }
        let id = format!("sha256:{}", content_hash(name));
        let (repo_tags, repo_digests) = if name.contains('@') {
            (Vec::new(), vec![name.to_string()])
        } else {
            (vec![name.to_string()], Vec::new())
        };
        self.images.push(Image {
            id: id.clone(),
            repo_tags,
            repo_digests,
            // Deterministic and distinct per image, about a small image's size.
            size: 1_000_000 + name.len() as u64 * 1000,
        });
        id
    }
}

impl Container {
    fn exit(&mut self, now: i64, exit: &Exit) {
        self.state = api::ContainerState::ContainerExited;
        self.finished_at = now;
        self.exit_code = exit.code;
        self.reason.clone_from(&exit.reason);
    }
}

/// splitmix64: a well-mixed, deterministic sequence from a seed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut mixed = *state;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}

/// 64 hex digits derived from `text` (a stand-in for a digest: stable, not
/// cryptographic).
fn content_hash(text: &str) -> String {
    let mut seed = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (0..4)
        .map(|_| format!("{:016x}", splitmix64(&mut seed)))
        .collect()
}

/// A CRI-log timestamp: RFC 3339 with nanoseconds, UTC.
fn rfc3339_nanos(nanos_since_epoch: i64) -> String {
    let seconds = nanos_since_epoch.div_euclid(1_000_000_000);
    let nanos = nanos_since_epoch.rem_euclid(1_000_000_000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Every key and value of `selector` is among `labels`.
fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// The one id among `ids` that `wanted` is a prefix of (containerd accepts
/// unambiguous prefixes wherever it takes an id), or `wanted` itself.
fn resolve_id<'a>(ids: impl Iterator<Item = &'a String>, wanted: &str) -> String {
    if wanted.is_empty() {
        return String::new();
    }
    let mut matches = ids.filter(|id| id.starts_with(wanted));
    match (matches.next(), matches.next()) {
        (Some(only), None) => only.clone(),
        _ => wanted.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_cri_log_timestamps() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nanos(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            rfc3339_nanos(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn ids_look_like_containerds_and_differ_early() {
        let mut state = State::default();
        let first = state.new_id();
        let second = state.new_id();
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(first[..12], second[..12]);
    }

    #[test]
    fn resolves_unique_prefixes_only() {
        let ids = ["abc123".to_string(), "abd456".to_string()];
        assert_eq!(resolve_id(ids.iter(), "abc"), "abc123");
        assert_eq!(resolve_id(ids.iter(), "ab"), "ab");
        assert_eq!(resolve_id(ids.iter(), "zzz"), "zzz");
        assert_eq!(resolve_id(ids.iter(), ""), "");
    }
}
