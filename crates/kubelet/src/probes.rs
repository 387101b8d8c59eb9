//! The probe state machine of one container and probe kind, like upstream's prober worker: when the next probe is due, thresholds, the published result, and when a failure asks for a restart; the shell runs the probe itself.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container, Probe};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl fmt::Display for ProbeKind {
    /// The capitalised names upstream's events start with.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        })
    }
}

/// A published probe result, as upstream's results managers hold them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure,
    Unknown,
}

/// The published results of every probe on the node, keyed by kind and by
/// runtime container id (without the `containerd://` prefix): a new
/// instance of a container starts from a clean slate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeResults {
    results: BTreeMap<(ProbeKind, String), ProbeResult>,
}

impl ProbeResults {
    pub fn get(&self, kind: ProbeKind, container_id: &str) -> Option<ProbeResult> {
        self.results.get(&(kind, container_id.to_string())).copied()
    }

    pub fn set(&mut self, kind: ProbeKind, container_id: &str, result: ProbeResult) {
        self.results
            .insert((kind, container_id.to_string()), result);
    }

    /// Publishes what a worker currently holds for its container.
    pub fn apply(&mut self, worker: &ProbeWorker) {
        if let (Some(id), Some(result)) = (worker.container_id(), worker.result()) {
            self.set(worker.kind(), id, result);
        }
    }

    /// Forgets the results of containers that no longer exist.
    pub fn retain_containers(&mut self, live_ids: &[&str]) {
        self.results
            .retain(|(_, id), _| live_ids.contains(&id.as_str()));
    }
}

/// A probe's timing and thresholds with the API defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSettings {
    pub initial_delay_seconds: i32,
    pub period_seconds: i32,
    /// The shell enforces it on the probe it runs.
    pub timeout_seconds: i32,
    pub success_threshold: i32,
    pub failure_threshold: i32,
    /// Overrides the pod's grace period when this probe kills the container.
    pub termination_grace_period_seconds: Option<i64>,
}

impl ProbeSettings {
    pub fn from_probe(probe: &Probe) -> ProbeSettings {
        ProbeSettings {
            initial_delay_seconds: probe.initial_delay_seconds.unwrap_or(0).max(0),
            period_seconds: probe.period_seconds.filter(|p| *p > 0).unwrap_or(10),
            timeout_seconds: probe.timeout_seconds.filter(|t| *t > 0).unwrap_or(1),
            success_threshold: probe.success_threshold.filter(|t| *t > 0).unwrap_or(1),
            failure_threshold: probe.failure_threshold.filter(|t| *t > 0).unwrap_or(3),
            termination_grace_period_seconds: probe.termination_grace_period_seconds,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.timeout_seconds).unwrap_or(1))
    }
}

pub fn probe_of(container: &Container, kind: ProbeKind) -> Option<&Probe> {
    match kind {
        ProbeKind::Liveness => container.liveness_probe.as_ref(),
        ProbeKind::Readiness => container.readiness_probe.as_ref(),
        ProbeKind::Startup => container.startup_probe.as_ref(),
    }
}

/// What one run of the probe said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    Success,
    /// Passed, with a remark (an HTTP redirect to another host...).
    Warning(String),
    Failure(String),
    /// The prober could not tell; counted as a failure.
    Unknown,
    /// The prober itself failed; the run is thrown away.
    Error(String),
}

/// The probed container as its latest API status shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// No instance created yet.
    Absent,
    Waiting,
    Running {
        started_at: Timestamp,
    },
    Terminated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeTarget<'a> {
    pub container_id: Option<&'a str>,
    pub state: TargetState,
    /// The container status' `started` flag.
    pub started: bool,
    pub pod_deleting: bool,
    pub pod_terminal: bool,
    pub restart_policy_never: bool,
}

/// What the worker wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeStep {
    /// Run the probe now and report with [`ProbeWorker::record`].
    ProbeNow,
    /// Nothing before this time.
    WaitUntil(Timestamp),
    /// Nothing until the container (or its started flag) changes.
    Idle,
    /// The worker is done for good.
    Stop,
}

/// An event the shell records on the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeEvent {
    /// "Unhealthy" or "ProbeWarning".
    pub reason: &'static str,
    pub message: String,
    pub warning: bool,
}

/// What recording one probe run changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRecord {
    pub event: Option<ProbeEvent>,
    /// The published result after this run, when it changed.
    pub published: Option<ProbeResult>,
    /// A liveness or startup failure crossed its threshold: the container
    /// must be killed and restarted (by the next pod sync).
    pub restart_requested: bool,
}

/// The probe state machine for one container and one probe kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeWorker {
    kind: ProbeKind,
    settings: ProbeSettings,
    container_id: Option<String>,
    published: Option<ProbeResult>,
    last_result: Option<ProbeResult>,
    result_run: i32,
    /// After a liveness/startup kill request, nothing is probed until a new
    /// instance appears: probing a dying container can wedge runtimes.
    on_hold: bool,
    last_probe_at: Option<Timestamp>,
    stopped: bool,
}

impl ProbeWorker {
    pub fn new(kind: ProbeKind, probe: &Probe) -> ProbeWorker {
        ProbeWorker {
            kind,
            settings: ProbeSettings::from_probe(probe),
            container_id: None,
            published: None,
            last_result: None,
            result_run: 0,
            on_hold: false,
            last_probe_at: None,
            stopped: false,
        }
    }

    /// Readiness starts as not ready, liveness as alive, startup as unknown.
    pub fn initial_result(kind: ProbeKind) -> ProbeResult {
        match kind {
            ProbeKind::Readiness => ProbeResult::Failure,
            ProbeKind::Liveness => ProbeResult::Success,
            ProbeKind::Startup => ProbeResult::Unknown,
        }
    }

    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    pub fn container_id(&self) -> Option<&str> {
        self.container_id.as_deref()
    }

    /// The result currently published for the container.
    pub fn result(&self) -> Option<ProbeResult> {
        self.published
    }

    /// Decides what to do at `now` for the container as it is now.
    pub fn step(&mut self, target: &ProbeTarget<'_>, now: Timestamp) -> ProbeStep {
        if self.stopped {
            return ProbeStep::Stop;
        }
        if target.pod_terminal {
            self.stopped = true;
            return ProbeStep::Stop;
        }
        let Some(container_id) = target.container_id.filter(|id| !id.is_empty()) else {
            return ProbeStep::Idle;
        };
        if self.container_id.as_deref() != Some(container_id) {
            self.container_id = Some(container_id.to_string());
            self.published = Some(ProbeWorker::initial_result(self.kind));
            self.on_hold = false;
            self.last_probe_at = None;
        }
        if self.on_hold {
            return ProbeStep::Idle;
        }
        let started_at = match target.state {
            TargetState::Running { started_at } => started_at,
            other => {
                self.published = Some(ProbeResult::Failure);
                if other == TargetState::Terminated && target.restart_policy_never {
                    self.stopped = true;
                    return ProbeStep::Stop;
                }
                return ProbeStep::Idle;
            }
        };
        if target.pod_deleting && matches!(self.kind, ProbeKind::Liveness | ProbeKind::Startup) {
            // A last success keeps the shutdown quiet: no kill during termination.
            self.published = Some(ProbeResult::Success);
            self.stopped = true;
            return ProbeStep::Stop;
        }
        let ready_at = started_at
            .checked_add(SignedDuration::from_secs(i64::from(
                self.settings.initial_delay_seconds,
            )))
            .unwrap_or(started_at);
        // Upstream compares whole seconds since start with the delay.
        let whole_seconds_running = now.duration_since(started_at).as_secs();
        if whole_seconds_running < i64::from(self.settings.initial_delay_seconds) {
            return ProbeStep::WaitUntil(ready_at);
        }
        match (self.kind, target.started) {
            (ProbeKind::Startup, true) => return ProbeStep::Idle,
            (ProbeKind::Liveness | ProbeKind::Readiness, false) => return ProbeStep::Idle,
            _ => {}
        }
        if let Some(last) = self.last_probe_at {
            let due = last
                .checked_add(SignedDuration::from_secs(i64::from(
                    self.settings.period_seconds,
                )))
                .unwrap_or(last);
            if now < due {
                return ProbeStep::WaitUntil(due);
            }
        }
        ProbeStep::ProbeNow
    }

    /// Counts one probe run against the thresholds.
    pub fn record(&mut self, outcome: ProbeOutcome, now: Timestamp) -> ProbeRecord {
        self.last_probe_at = Some(now);
        let kind = self.kind;
        let (result, event) = match outcome {
            ProbeOutcome::Success => (ProbeResult::Success, None),
            ProbeOutcome::Warning(output) => (
                ProbeResult::Success,
                Some(ProbeEvent {
                    reason: "ProbeWarning",
                    message: format!("{kind} probe warning: {output}"),
                    warning: true,
                }),
            ),
            ProbeOutcome::Failure(output) => (
                ProbeResult::Failure,
                Some(ProbeEvent {
                    reason: "Unhealthy",
                    message: format!("{kind} probe failed: {output}"),
                    warning: true,
                }),
            ),
            ProbeOutcome::Unknown => (ProbeResult::Failure, None),
            ProbeOutcome::Error(error) => {
                return ProbeRecord {
                    event: Some(ProbeEvent {
                        reason: "Unhealthy",
                        message: format!(
                            "{kind} probe errored and resulted in unknown state: {error}"
                        ),
                        warning: true,
                    }),
                    published: None,
                    restart_requested: false,
                };
            }
        };
        if self.last_result == Some(result) {
            self.result_run = self.result_run.saturating_add(1);
        } else {
            self.last_result = Some(result);
            self.result_run = 1;
        }
        let below_threshold = match result {
            ProbeResult::Failure => self.result_run < self.settings.failure_threshold,
            ProbeResult::Success => self.result_run < self.settings.success_threshold,
            ProbeResult::Unknown => false,
        };
        if below_threshold {
            return ProbeRecord {
                event,
                published: None,
                restart_requested: false,
            };
        }
        let changed = self.published != Some(result);
        self.published = Some(result);
        let restart_requested = result == ProbeResult::Failure
            && matches!(kind, ProbeKind::Liveness | ProbeKind::Startup);
        if restart_requested {
            self.on_hold = true;
            self.result_run = 0;
        }
        ProbeRecord {
            event,
            published: changed.then_some(result),
            restart_requested,
        }
    }
}

/// The container status' `started` flag, like upstream's probe manager: a
/// running container is started once its startup probe passed, or at once
/// when it has none.
pub fn container_started(
    container: &Container,
    running: bool,
    container_id: Option<&str>,
    results: &ProbeResults,
) -> bool {
    if !running {
        return false;
    }
    if let Some(result) = container_id.and_then(|id| results.get(ProbeKind::Startup, id)) {
        return result == ProbeResult::Success;
    }
    container.startup_probe.is_none()
}

/// The container status' `ready` flag for a started container: ready once
/// its readiness probe passed, or at once when it has none.
pub fn container_ready(
    container: &Container,
    running: bool,
    container_id: Option<&str>,
    results: &ProbeResults,
) -> bool {
    if !running {
        return false;
    }
    if container_id.and_then(|id| results.get(ProbeKind::Readiness, id))
        == Some(ProbeResult::Success)
    {
        return true;
    }
    container.readiness_probe.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    fn running_target(id: &str, started: bool) -> ProbeTarget<'_> {
        ProbeTarget {
            container_id: Some(id),
            state: TargetState::Running { started_at: at(0) },
            started,
            pod_deleting: false,
            pod_terminal: false,
            restart_policy_never: false,
        }
    }

    fn probe(initial_delay: i32, period: i32, success: i32, failure: i32) -> Probe {
        Probe {
            initial_delay_seconds: Some(initial_delay),
            period_seconds: Some(period),
            success_threshold: Some(success),
            failure_threshold: Some(failure),
            ..Default::default()
        }
    }

    #[test]
    fn scheduling_follows_initial_delay_period_and_startup_gate() {
        struct Case {
            name: &'static str,
            kind: ProbeKind,
            started: bool,
            last_probe: Option<i64>,
            now: i64,
            expected: ProbeStep,
        }
        let cases = [
            Case {
                name: "before initial delay",
                kind: ProbeKind::Liveness,
                started: true,
                last_probe: None,
                now: 4,
                expected: ProbeStep::WaitUntil(at(5)),
            },
            Case {
                name: "initial delay over",
                kind: ProbeKind::Liveness,
                started: true,
                last_probe: None,
                now: 5,
                expected: ProbeStep::ProbeNow,
            },
            Case {
                name: "within period",
                kind: ProbeKind::Readiness,
                started: true,
                last_probe: Some(6),
                now: 8,
                expected: ProbeStep::WaitUntil(at(9)),
            },
            Case {
                name: "period over",
                kind: ProbeKind::Readiness,
                started: true,
                last_probe: Some(6),
                now: 9,
                expected: ProbeStep::ProbeNow,
            },
            Case {
                name: "liveness waits for startup",
                kind: ProbeKind::Liveness,
                started: false,
                last_probe: None,
                now: 30,
                expected: ProbeStep::Idle,
            },
            Case {
                name: "readiness waits for startup",
                kind: ProbeKind::Readiness,
                started: false,
                last_probe: None,
                now: 30,
                expected: ProbeStep::Idle,
            },
            Case {
                name: "startup probes until started",
                kind: ProbeKind::Startup,
                started: false,
                last_probe: None,
                now: 30,
                expected: ProbeStep::ProbeNow,
            },
            Case {
                name: "startup idles once started",
                kind: ProbeKind::Startup,
                started: true,
                last_probe: None,
                now: 30,
                expected: ProbeStep::Idle,
            },
        ];
        for case in cases {
            let mut worker = ProbeWorker::new(case.kind, &probe(5, 3, 1, 3));
            assert_ne!(
                worker.step(&running_target("c1", case.started), at(0)),
                ProbeStep::Stop
            );
            if let Some(last) = case.last_probe {
                worker.record(ProbeOutcome::Success, at(last));
            }
            assert_eq!(
                worker.step(&running_target("c1", case.started), at(case.now)),
                case.expected,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn thresholds_decide_what_is_published() {
        struct Case {
            name: &'static str,
            kind: ProbeKind,
            success_threshold: i32,
            failure_threshold: i32,
            outcomes: Vec<ProbeOutcome>,
            expected: ProbeResult,
            expected_restart: bool,
        }
        let fail = || ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into());
        let cases = vec![
            Case {
                name: "readiness starts not ready",
                kind: ProbeKind::Readiness,
                success_threshold: 1,
                failure_threshold: 3,
                outcomes: vec![],
                expected: ProbeResult::Failure,
                expected_restart: false,
            },
            Case {
                name: "liveness starts alive",
                kind: ProbeKind::Liveness,
                success_threshold: 1,
                failure_threshold: 3,
                outcomes: vec![],
                expected: ProbeResult::Success,
                expected_restart: false,
            },
            Case {
                name: "startup starts unknown",
                kind: ProbeKind::Startup,
                success_threshold: 1,
                failure_threshold: 3,
                outcomes: vec![],
                expected: ProbeResult::Unknown,
                expected_restart: false,
            },
            Case {
                name: "two failures under threshold three",
                kind: ProbeKind::Liveness,
                success_threshold: 1,
                failure_threshold: 3,
                outcomes: vec![fail(), fail()],
                expected: ProbeResult::Success,
                expected_restart: false,
            },
            Case {
                name: "third failure restarts",
                kind: ProbeKind::Liveness,
                success_threshold: 1,
                failure_threshold: 3,
                outcomes: vec![fail(), fail(), fail()],
                expected: ProbeResult::Failure,
                expected_restart: true,
            },
            Case {
                name: "a success breaks the run",
                kind: ProbeKind::Liveness,
                success_threshold: 1,
                failure_threshold: 3,
                outcomes: vec![fail(), fail(), ProbeOutcome::Success, fail()],
                expected: ProbeResult::Success,
                expected_restart: false,
            },
            Case {
                name: "readiness needs two successes",
                kind: ProbeKind::Readiness,
                success_threshold: 2,
                failure_threshold: 1,
                outcomes: vec![ProbeOutcome::Success],
                expected: ProbeResult::Failure,
                expected_restart: false,
            },
            Case {
                name: "readiness after two successes",
                kind: ProbeKind::Readiness,
                success_threshold: 2,
                failure_threshold: 1,
                outcomes: vec![
                    ProbeOutcome::Success,
                    ProbeOutcome::Warning("redirect".into()),
                ],
                expected: ProbeResult::Success,
                expected_restart: false,
            },
            Case {
                name: "readiness failure never restarts",
                kind: ProbeKind::Readiness,
                success_threshold: 1,
                failure_threshold: 1,
                outcomes: vec![ProbeOutcome::Success, fail()],
                expected: ProbeResult::Failure,
                expected_restart: false,
            },
            Case {
                name: "unknown counts as failure",
                kind: ProbeKind::Startup,
                success_threshold: 1,
                failure_threshold: 1,
                outcomes: vec![ProbeOutcome::Unknown],
                expected: ProbeResult::Failure,
                expected_restart: true,
            },
            Case {
                name: "prober errors are thrown away",
                kind: ProbeKind::Liveness,
                success_threshold: 1,
                failure_threshold: 1,
                outcomes: vec![ProbeOutcome::Error("timeout".into())],
                expected: ProbeResult::Success,
                expected_restart: false,
            },
        ];
        for case in cases {
            let mut worker = ProbeWorker::new(
                case.kind,
                &probe(0, 1, case.success_threshold, case.failure_threshold),
            );
            let started = case.kind != ProbeKind::Startup;
            worker.step(&running_target("c1", started), at(0));
            let mut restart = false;
            for (i, outcome) in case.outcomes.into_iter().enumerate() {
                restart |= worker.record(outcome, at(i as i64)).restart_requested;
            }
            assert_eq!(worker.result(), Some(case.expected), "{}", case.name);
            assert_eq!(restart, case.expected_restart, "{}", case.name);
        }
    }

    #[test]
    fn a_restart_request_holds_until_a_new_instance() {
        let mut worker = ProbeWorker::new(ProbeKind::Liveness, &probe(0, 1, 1, 1));
        assert_eq!(
            worker.step(&running_target("c1", true), at(0)),
            ProbeStep::ProbeNow
        );
        let record = worker.record(ProbeOutcome::Failure("boom".into()), at(0));
        assert!(record.restart_requested);
        assert_eq!(record.published, Some(ProbeResult::Failure));
        assert_eq!(
            worker.step(&running_target("c1", true), at(10)),
            ProbeStep::Idle
        );
        // The restarted instance is alive again and probed afresh.
        assert_eq!(
            worker.step(&running_target("c2", true), at(10)),
            ProbeStep::ProbeNow
        );
        assert_eq!(worker.result(), Some(ProbeResult::Success));
        assert_eq!(worker.container_id(), Some("c2"));
    }

    #[test]
    fn non_running_deleting_and_terminal_targets() {
        let mut worker = ProbeWorker::new(ProbeKind::Readiness, &probe(0, 1, 1, 1));
        worker.step(&running_target("c1", true), at(0));
        worker.record(ProbeOutcome::Success, at(0));
        let mut exited = running_target("c1", false);
        exited.state = TargetState::Terminated;
        assert_eq!(worker.step(&exited, at(1)), ProbeStep::Idle);
        assert_eq!(worker.result(), Some(ProbeResult::Failure));
        exited.restart_policy_never = true;
        assert_eq!(worker.step(&exited, at(2)), ProbeStep::Stop);

        let mut liveness = ProbeWorker::new(ProbeKind::Liveness, &probe(0, 1, 1, 1));
        let mut deleting = running_target("c1", true);
        deleting.pod_deleting = true;
        assert_eq!(liveness.step(&deleting, at(0)), ProbeStep::Stop);
        assert_eq!(liveness.result(), Some(ProbeResult::Success));

        let mut startup = ProbeWorker::new(ProbeKind::Startup, &probe(0, 1, 1, 1));
        let mut terminal = running_target("c1", false);
        terminal.pod_terminal = true;
        assert_eq!(startup.step(&terminal, at(0)), ProbeStep::Stop);
        let mut absent = running_target("c1", false);
        absent.container_id = None;
        let mut fresh = ProbeWorker::new(ProbeKind::Startup, &probe(0, 1, 1, 1));
        assert_eq!(fresh.step(&absent, at(0)), ProbeStep::Idle);
    }

    #[test]
    fn event_texts_match_upstream() {
        let cases = [
            (
                ProbeKind::Liveness,
                ProbeOutcome::Failure("Get \"http://10.0.0.5:80/\": EOF".into()),
                "Unhealthy",
                "Liveness probe failed: Get \"http://10.0.0.5:80/\": EOF",
            ),
            (
                ProbeKind::Readiness,
                ProbeOutcome::Warning("Probe terminated redirects".into()),
                "ProbeWarning",
                "Readiness probe warning: Probe terminated redirects",
            ),
            (
                ProbeKind::Startup,
                ProbeOutcome::Error("rpc error".into()),
                "Unhealthy",
                "Startup probe errored and resulted in unknown state: rpc error",
            ),
        ];
        for (kind, outcome, reason, message) in cases {
            let mut worker = ProbeWorker::new(kind, &probe(0, 1, 1, 3));
            let event = worker.record(outcome, at(0)).event.unwrap();
            assert_eq!((event.reason, event.message.as_str()), (reason, message));
        }
    }

    #[test]
    fn started_and_ready_flags() {
        let plain = Container::default();
        let with_probes = Container {
            startup_probe: Some(Probe::default()),
            readiness_probe: Some(Probe::default()),
            ..Default::default()
        };
        let mut results = ProbeResults::default();
        // (container, running, startup result, readiness result, started, ready)
        let cases = [
            (&plain, true, None, None, true, true),
            (&plain, false, None, None, false, false),
            (&with_probes, true, None, None, false, false),
            (
                &with_probes,
                true,
                Some(ProbeResult::Unknown),
                None,
                false,
                false,
            ),
            (
                &with_probes,
                true,
                Some(ProbeResult::Success),
                Some(ProbeResult::Failure),
                true,
                false,
            ),
            (
                &with_probes,
                true,
                Some(ProbeResult::Success),
                Some(ProbeResult::Success),
                true,
                true,
            ),
        ];
        for (i, (container, running, startup, readiness, started, ready)) in
            cases.into_iter().enumerate()
        {
            results = ProbeResults::default();
            if let Some(r) = startup {
                results.set(ProbeKind::Startup, "c", r);
            }
            if let Some(r) = readiness {
                results.set(ProbeKind::Readiness, "c", r);
            }
            assert_eq!(
                container_started(container, running, Some("c"), &results),
                started,
                "case {i}"
            );
            assert_eq!(
                container_ready(container, running, Some("c"), &results),
                ready,
                "case {i}"
            );
        }
        results.retain_containers(&[]);
        assert_eq!(results, ProbeResults::default());
    }
}
