//! Starting containerd, waiting until CRI answers, and restarting it when it dies.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ContainerdSettings, render_config};
use crate::{install, probe, procs};

/// How long a fresh containerd may take to answer CRI calls. It takes about
/// 0.1 s here; the margin is for loaded CI machines.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
const LONGEST_RESTART_DELAY: Duration = Duration::from_secs(30);
/// A containerd that ran this long before dying is restarted promptly again,
/// rather than after the delay its earlier crashes had built up.
const STABLE_AFTER: Duration = Duration::from_secs(60);
const GRACEFUL_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A containerd started and watched over by this process.
///
/// containerd runs in its own process group (a Ctrl-C to the agent does not
/// reach it) and receives SIGKILL if the thread that started it dies, so an
/// agent that crashes does not leave it behind; containers survive either way
/// because their shims are separate processes. Dropping the handle stops
/// containerd in the background; [`ManagedContainerd::stop`] waits for it.
pub struct ManagedContainerd {
    settings: ContainerdSettings,
    current_pid: Arc<AtomicU32>,
    stop_requested: watch::Sender<bool>,
    supervisor: Option<JoinHandle<()>>,
}

impl ManagedContainerd {
    /// Writes the config under `settings.root`, starts containerd with its
    /// output appended to `settings.log_file`, waits until its CRI service
    /// answers, and from then on restarts it whenever it exits (after 1 s,
    /// doubling to 30 s while it keeps crashing).
    pub async fn start(settings: ContainerdSettings) -> anyhow::Result<ManagedContainerd> {
        settings.validate()?;
        let binary = install::find_containerd()?;
        refuse_a_second_instance(&settings)?;
        prepare_files(&settings)?;

        let started_at = Instant::now();
        let mut child = spawn_containerd(&binary, &settings)?;
        wait_until_ready(&mut child, &settings).await?;
        let pid = child.id().unwrap_or_default();
        tracing::info!(
            pid,
            socket = %settings.socket.display(),
            ready_after_ms = started_at.elapsed().as_millis(),
            "containerd is ready"
        );

        let current_pid = Arc::new(AtomicU32::new(pid));
        let (stop_requested, stop_watch) = watch::channel(false);
        let supervision = Supervision {
            binary,
            settings: settings.clone(),
            current_pid: Arc::clone(&current_pid),
            stop_watch,
            restart_delay: FIRST_RESTART_DELAY,
        };
        let supervisor = tokio::spawn(supervision.run(State::Running {
            child,
            since: started_at,
        }));
        Ok(ManagedContainerd {
            settings,
            current_pid,
            stop_requested,
            supervisor: Some(supervisor),
        })
    }

    /// The CRI endpoint: `unix:///path/to/containerd.sock`.
    pub fn endpoint(&self) -> String {
        self.settings.endpoint()
    }

    /// The gRPC socket path.
    pub fn socket(&self) -> &Path {
        &self.settings.socket
    }

    /// The settings containerd was started with.
    pub fn settings(&self) -> &ContainerdSettings {
        &self.settings
    }

    /// The PID of the containerd running now; `None` while it is being
    /// restarted. A new PID appears only once the new containerd answers.
    pub fn pid(&self) -> Option<u32> {
        match self.current_pid.load(Ordering::SeqCst) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Ends supervision and stops containerd: SIGTERM, then SIGKILL after 5 s.
    pub async fn stop(mut self) {
        self.stop_requested.send_replace(true);
        if let Some(supervisor) = self.supervisor.take()
            && let Err(error) = supervisor.await
        {
            tracing::warn!(%error, "containerd supervisor ended abnormally");
        }
    }

    /// Tells the supervisor not to restart containerd any more, without
    /// waiting; for cleanup paths that cannot await and stop containerd by PID.
    pub(crate) fn stop_restarting(&self) {
        self.stop_requested.send_replace(true);
    }
}

/// What the supervisor is doing: watching a running containerd, or waiting
/// to start a new one after the last one exited.
enum State {
    Running { child: Child, since: Instant },
    WaitingToRestart { delay: Duration },
}

struct Supervision {
    binary: PathBuf,
    settings: ContainerdSettings,
    current_pid: Arc<AtomicU32>,
    stop_watch: watch::Receiver<bool>,
    restart_delay: Duration,
}

impl Supervision {
    async fn run(mut self, mut state: State) {
        loop {
            state = match self.step(state).await {
                Some(next) => next,
                None => return,
            };
        }
    }

    /// One transition; `None` once supervision has ended.
    async fn step(&mut self, state: State) -> Option<State> {
        match state {
            State::Running { mut child, since } => {
                let exit = tokio::select! {
                    exit = child.wait() => exit,
                    () = stop_requested(&mut self.stop_watch) => {
                        terminate(child).await;
                        self.current_pid.store(0, Ordering::SeqCst);
                        return None;
                    }
                };
                self.current_pid.store(0, Ordering::SeqCst);
                if since.elapsed() >= STABLE_AFTER {
                    self.restart_delay = FIRST_RESTART_DELAY;
                }
                let delay = self.restart_delay;
                self.restart_delay = (delay * 2).min(LONGEST_RESTART_DELAY);
                match exit {
                    Ok(status) => tracing::warn!(
                        %status,
                        ran_for_ms = since.elapsed().as_millis(),
                        restart_in_ms = delay.as_millis(),
                        log = %self.settings.log_file.display(),
                        "containerd exited; restarting it"
                    ),
                    Err(error) => tracing::warn!(
                        %error,
                        restart_in_ms = delay.as_millis(),
                        "lost track of containerd; restarting it"
                    ),
                }
                Some(State::WaitingToRestart { delay })
            }
            State::WaitingToRestart { delay } => {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop_requested(&mut self.stop_watch) => return None,
                }
                self.restart().await
            }
        }
    }

    /// Starts a new containerd; `None` if a stop was requested meanwhile.
    async fn restart(&mut self) -> Option<State> {
        let since = Instant::now();
        let mut child = match spawn_containerd(&self.binary, &self.settings) {
            Ok(child) => child,
            Err(error) => return Some(self.restart_failed(error)),
        };
        let ready = tokio::select! {
            ready = wait_until_ready(&mut child, &self.settings) => ready,
            () = stop_requested(&mut self.stop_watch) => {
                terminate(child).await;
                return None;
            }
        };
        if let Err(error) = ready {
            terminate(child).await;
            return Some(self.restart_failed(error));
        }
        let pid = child.id().unwrap_or_default();
        self.current_pid.store(pid, Ordering::SeqCst);
        tracing::info!(
            pid,
            ready_after_ms = since.elapsed().as_millis(),
            "containerd restarted and ready"
        );
        Some(State::Running { child, since })
    }

    fn restart_failed(&mut self, error: anyhow::Error) -> State {
        let delay = self.restart_delay;
        self.restart_delay = (delay * 2).min(LONGEST_RESTART_DELAY);
        tracing::warn!(
            error = format!("{error:#}"),
            retry_in_ms = delay.as_millis(),
            "containerd restart failed"
        );
        State::WaitingToRestart { delay }
    }
}

/// Resolves once a stop is requested or the handle is gone.
async fn stop_requested(stop_watch: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: nobody owns containerd any more.
    let _ = stop_watch.wait_for(|stop| *stop).await;
}

async fn terminate(mut child: Child) {
    let Some(pid) = child.id() else {
        return;
    };
    procs::send_signal(pid, libc::SIGTERM);
    match tokio::time::timeout(GRACEFUL_STOP_TIMEOUT, child.wait()).await {
        Ok(_) => tracing::info!(pid, "containerd stopped"),
        Err(_) => {
            tracing::warn!(pid, "containerd ignored SIGTERM for 5 s; killing it");
            let _ = child.kill().await;
        }
    }
}

fn refuse_a_second_instance(settings: &ContainerdSettings) -> anyhow::Result<()> {
    let config_file = settings.config_file();
    let own_pid = std::process::id();
    if let Some(other) = procs::all_processes()
        .into_iter()
        .find(|process| process.pid != own_pid && process.has_argument(&config_file))
    {
        bail!(
            "containerd (pid {}) already runs with {}; stop it first",
            other.pid,
            config_file.display()
        );
    }
    Ok(())
}

fn prepare_files(settings: &ContainerdSettings) -> anyhow::Result<()> {
    for dir in [
        &settings.root,
        &settings.state,
        &settings.cni_conf_dir,
        &settings.registry_config_dir,
    ] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for file in [&settings.socket, &settings.log_file] {
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    write_atomically(&settings.config_file(), render_config(settings).as_bytes())
}

/// Writes via a temporary file and a rename, so a reader never sees half a file.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let mut temporary = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    temporary
        .write_all(contents)
        .with_context(|| format!("writing {}", path.display()))?;
    temporary
        .persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

fn spawn_containerd(binary: &Path, settings: &ContainerdSettings) -> anyhow::Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&settings.log_file)
        .with_context(|| format!("opening {}", settings.log_file.display()))?;
    let mut command = Command::new(binary);
    command
        .arg("--config")
        .arg(settings.config_file())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    let supervisor_pid = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid); it allocates nothing
    // on the success path.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if u32::try_from(libc::getppid()) != Ok(supervisor_pid) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

async fn wait_until_ready(child: &mut Child, settings: &ContainerdSettings) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "containerd exited ({status}) before it was ready: {}",
                last_errors(&settings.log_file)
            );
        }
        let answer = probe::cri_answers(&settings.socket, PROBE_TIMEOUT).await;
        match answer {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= deadline => bail!(
                "containerd did not answer on {} within {READY_TIMEOUT:?} ({error}): {}",
                settings.socket.display(),
                last_errors(&settings.log_file)
            ),
            Err(_) => tokio::time::sleep(PROBE_INTERVAL).await,
        }
    }
}

/// The last error lines containerd logged, for a startup failure message.
fn last_errors(log_file: &Path) -> String {
    let Ok(log) = std::fs::read_to_string(log_file) else {
        return format!("no log at {}", log_file.display());
    };
    let errors: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("level=error") || line.contains("level=fatal"))
        .collect();
    let tail = &errors[errors.len().saturating_sub(3)..];
    if tail.is_empty() {
        format!("see {}", log_file.display())
    } else {
        format!("{} (log: {})", tail.join(" | "), log_file.display())
    }
}
