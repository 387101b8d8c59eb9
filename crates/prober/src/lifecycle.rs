//! postStart and preStop hooks (exec, httpGet, sleep) run once, as upstream's lifecycle handler runner runs them, with its failure messages.
//!
//! Upstream's differences from probes carry over: an exec hook has no
//! timeout of its own, an httpGet hook fails only when no response comes
//! back (any status code will do), redirects to another host are not
//! followed, TLS is not verified, and an HTTPS hook answered in plain HTTP
//! is retried over HTTP.

use std::time::Duration;

use k8s_openapi::api::core::v1::{HTTPGetAction, LifecycleHandler, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubelet::spec::pod_full_name;
use tokio::time::{Instant, sleep, timeout_at};

use crate::go_text::quote;
use crate::http::{self, GetRequest, LIFECYCLE_CLIENT, MAX_BODY_BYTES};
use crate::{ActionTarget, ExecError, ExecRunner, exec};

/// The message of upstream's `FailedPostStartHook` event; the detailed
/// message is kept out of events so secrets do not leak, and goes into the
/// container's status instead.
pub const FAILED_POST_START_HOOK_MESSAGE: &str = "PostStartHook failed";
/// The message of upstream's `FailedPreStopHook` event.
pub const FAILED_PRE_STOP_HOOK_MESSAGE: &str = "PreStopHook failed";
/// The reason of the pod event recorded when an HTTPS hook was answered in
/// plain HTTP and the retry over HTTP succeeded.
pub const HTTP_FALLBACK_REASON: &str = "LifecycleHTTPFallback";

/// A warning event upstream records on the pod while running a hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    pub reason: &'static str,
    pub message: String,
}

/// What running a hook came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookOutcome {
    /// On failure, upstream's message (the container status' message for
    /// a postStart failure, a log line for preStop).
    pub result: Result<(), String>,
    pub pod_events: Vec<PodEvent>,
}

impl HookOutcome {
    fn finished(result: Result<(), String>) -> HookOutcome {
        HookOutcome {
            result,
            pod_events: Vec::new(),
        }
    }
}

/// Runs `handler` for the target container. `limit` is how long the hook
/// may take (the grace period for a preStop hook); without one it runs to
/// completion, as upstream's postStart does.
pub async fn run_handler(
    handler: &LifecycleHandler,
    target: &ActionTarget<'_>,
    runner: &dyn ExecRunner,
    limit: Option<Duration>,
) -> HookOutcome {
    let deadline = limit.map(|limit| Instant::now() + limit);
    let container = quote(&target.container.name);
    let pod = quote(pod_full_name(target.pod));
    if let Some(exec_action) = &handler.exec {
        let command = exec_action.command.clone().unwrap_or_default();
        return HookOutcome::finished(run_exec(&command, target, runner, deadline).await.map_err(
            |(error, output)| {
                format!(
                    "Exec lifecycle hook ([{}]) for Container {container} in Pod {pod} failed - error: {error}, message: {}",
                    command.join(" "),
                    quote(output)
                )
            },
        ));
    }
    if let Some(action) = &handler.http_get {
        let (result, pod_events) = run_http(action, target, deadline).await;
        return HookOutcome {
            result: result.map_err(|error| {
                format!(
                    "HTTP lifecycle hook ({}) for Container {container} in Pod {pod} failed - error: {error}",
                    action.path.as_deref().unwrap_or("")
                )
            }),
            pod_events,
        };
    }
    if let Some(sleep_action) = &handler.sleep {
        let seconds = sleep_action.seconds;
        let nap = sleep(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)));
        let finished = match deadline {
            Some(deadline) => timeout_at(deadline, nap).await.is_ok(),
            None => {
                nap.await;
                true
            }
        };
        return HookOutcome::finished(if finished {
            Ok(())
        } else {
            Err(format!(
                "Sleep lifecycle hook ({seconds}) for Container {container} in Pod {pod} failed - error: container terminated before sleep hook finished"
            ))
        });
    }
    HookOutcome::finished(Err(format!(
        "Cannot run handler: invalid handler: {}",
        go_handler_text(handler)
    )))
}

/// The error text and the command's output of a failed exec hook.
async fn run_exec(
    command: &[String],
    target: &ActionTarget<'_>,
    runner: &dyn ExecRunner,
    deadline: Option<Instant>,
) -> Result<(), (String, Vec<u8>)> {
    // Upstream passes no timeout to the runtime for hooks.
    let run = runner.exec_sync(target.container_id, command.to_vec(), Duration::ZERO);
    let ran = match deadline {
        Some(deadline) => timeout_at(deadline, run)
            .await
            .unwrap_or(Err(ExecError::Timeout)),
        None => run.await,
    };
    let joined = command.join(" ");
    match ran {
        Ok(output) if output.exit_code == 0 => Ok(()),
        Ok(output) => Err((
            format!(
                "command '{joined}' exited with {}: {}",
                output.exit_code,
                String::from_utf8_lossy(&output.stderr)
            ),
            exec::combined_output(&output),
        )),
        Err(ExecError::Timeout) => {
            Err((format!("command {} timed out", quote(&joined)), Vec::new()))
        }
        Err(ExecError::Runtime(message)) => Err((message, Vec::new())),
    }
}

async fn run_http(
    action: &HTTPGetAction,
    target: &ActionTarget<'_>,
    deadline: Option<Instant>,
) -> (Result<(), String>, Vec<PodEvent>) {
    let explicit_host = action.host.as_deref().filter(|host| !host.is_empty());
    let Some(host) = explicit_host.or(target.pod_ip.filter(|ip| !ip.is_empty())) else {
        return (
            Err("failed to find networking container: the pod has no IP".to_string()),
            Vec::new(),
        );
    };
    let request = match GetRequest::for_action(action, target.container, host, "lifecycle") {
        Ok(request) => request,
        Err(error) => return (Err(error), Vec::new()),
    };
    let error = match get_and_discard(&request, deadline).await {
        Ok(()) => return (Ok(()), Vec::new()),
        Err(error) => error,
    };
    if request.url.scheme == "https"
        && error
            .cause
            .contains("server gave HTTP response to HTTPS client")
    {
        let mut plain = request.clone();
        plain.url.scheme = "http".to_string();
        plain.headers.remove("Authorization");
        if get_and_discard(&plain, deadline).await.is_ok() {
            let event = PodEvent {
                reason: HTTP_FALLBACK_REASON,
                message: format!(
                    "request to HTTPS lifecycle hook {} got HTTP response, retry with HTTP succeeded",
                    plain.url.authority()
                ),
            };
            return (Ok(()), vec![event]);
        }
    }
    (Err(error.to_string()), Vec::new())
}

/// The GET, then at most 10 KiB of the body read and thrown away, as
/// upstream drains it; only a missing response is a failure.
async fn get_and_discard(
    request: &GetRequest,
    deadline: Option<Instant>,
) -> Result<(), http::GetError> {
    let mut response = http::get(request, &LIFECYCLE_CLIENT, deadline).await?;
    if response
        .content_length
        .is_none_or(|length| length <= MAX_BODY_BYTES as u64)
    {
        let drain = http::read_at_most(&mut response.body, MAX_BODY_BYTES);
        match deadline {
            Some(deadline) => {
                let _ = timeout_at(deadline, drain).await;
            }
            None => {
                let _ = drain.await;
            }
        }
    }
    Ok(())
}

/// The handler as Go's generated `String()` prints it; only reached when
/// none of the runnable actions is set, so those always print as nil.
fn go_handler_text(handler: &LifecycleHandler) -> String {
    let tcp = handler
        .tcp_socket
        .as_ref()
        .map_or_else(|| "nil".to_string(), go_tcp_socket_text);
    format!("&LifecycleHandler{{Exec:nil,HTTPGet:nil,TCPSocket:{tcp},Sleep:nil,}}")
}

fn go_tcp_socket_text(action: &TCPSocketAction) -> String {
    let port = match &action.port {
        IntOrString::Int(number) => format!("{{0 {number} }}"),
        IntOrString::String(name) => format!("{{1 0 {name}}}"),
    };
    format!(
        "&TCPSocketAction{{Port:{port},Host:{},}}",
        action.host.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_handlers_print_like_go() {
        let handler = LifecycleHandler {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(80),
                host: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            go_handler_text(&handler),
            "&LifecycleHandler{Exec:nil,HTTPGet:nil,TCPSocket:&TCPSocketAction{Port:{0 80 },Host:,},Sleep:nil,}"
        );
        assert_eq!(
            go_handler_text(&LifecycleHandler::default()),
            "&LifecycleHandler{Exec:nil,HTTPGet:nil,TCPSocket:nil,Sleep:nil,}"
        );
    }
}
