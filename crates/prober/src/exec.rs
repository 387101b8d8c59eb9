//! The exec probe: the command (with the container's static `$(VAR)`s expanded) run through the caller's [`ExecRunner`], judged by its exit code as upstream's exec prober does.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ExecAction};
use kubelet::probes::ProbeOutcome;

use crate::go_text::quote;
use crate::{ExecError, ExecOutput, ExecRunner};

/// Upstream keeps at most this much of an exec probe's output.
pub const MAX_OUTPUT_BYTES: usize = 10 * 1024;

/// `ExpandContainerCommandOnlyStatic`: `$(VAR)` from the container's `env`
/// values as written; a variable set from a source (`valueFrom`) counts as
/// empty, as upstream has it.
pub fn expand_command(command: &[String], container: &Container) -> Vec<String> {
    let variables: BTreeMap<String, String> = container
        .env
        .iter()
        .flatten()
        .map(|variable| {
            (
                variable.name.clone(),
                variable.value.clone().unwrap_or_default(),
            )
        })
        .collect();
    command
        .iter()
        .map(|part| kubelet::expansion::expand_with(part, &variables))
        .collect()
}

/// Stdout then stderr, as upstream's `RunInContainer` joins them.
pub fn combined_output(output: &ExecOutput) -> Vec<u8> {
    let mut combined = output.stdout.clone();
    combined.extend_from_slice(&output.stderr);
    combined
}

/// Runs an exec probe: exit code 0 passes, any other fails with the
/// output, a timeout fails (upstream's behaviour since 1.20), and a
/// runtime error leaves the result unknown.
pub async fn probe(
    action: &ExecAction,
    container: &Container,
    container_id: &str,
    timeout: Duration,
    runner: &dyn ExecRunner,
) -> ProbeOutcome {
    let command = expand_command(action.command.as_deref().unwrap_or_default(), container);
    match runner
        .exec_sync(container_id, command.clone(), timeout)
        .await
    {
        Ok(output) if output.exit_code == 0 => ProbeOutcome::Success,
        Ok(output) => {
            let mut combined = combined_output(&output);
            combined.truncate(MAX_OUTPUT_BYTES);
            ProbeOutcome::Failure(String::from_utf8_lossy(&combined).into_owned())
        }
        Err(ExecError::Timeout) => {
            ProbeOutcome::Failure(format!("command {} timed out", quote(command.join(" "))))
        }
        Err(ExecError::Runtime(message)) => ProbeOutcome::Error(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};

    #[test]
    fn only_static_values_expand() {
        let container = Container {
            env: Some(vec![
                EnvVar {
                    name: "PORT".into(),
                    value: Some("8080".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "NODE".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "spec.nodeName".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                EnvVar {
                    name: "PORT".into(),
                    value: Some("9090".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let command = [
            "curl",
            "localhost:$(PORT)",
            "[$(NODE)]",
            "$(MISSING)",
            "$$(PORT)",
        ]
        .map(String::from);
        assert_eq!(
            expand_command(&command, &container),
            ["curl", "localhost:9090", "[]", "$(MISSING)", "$(PORT)"]
        );
    }
}
