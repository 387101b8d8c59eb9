//! Small helpers over kube's client: status codes of errors, requests whose response body is not needed, and error logging that does not flood.

use std::time::{Duration, Instant};

use kube::core::Request;
use kube::core::params::{DeleteParams, Patch, PatchParams, Preconditions};
use serde::de::IgnoredAny;

/// Whether the API answered with this HTTP status.
pub fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// Worth trying again: the request did not reach a verdict (connection
/// trouble, timeouts, overload) rather than being refused.
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// Merge-patches an object's status subresource. The response (the whole
/// object) is read but not decoded: at thousands of pods a second, decoding
/// it would cost as much as everything else the simulator does.
pub async fn patch_status(
    client: &kube::Client,
    collection: &str,
    name: &str,
    patch: &impl serde::Serialize,
) -> Result<(), kube::Error> {
    let request = Request::new(collection)
        .patch_subresource(
            "status",
            name,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .map_err(kube::Error::BuildRequest)?;
    client.request::<IgnoredAny>(request).await.map(drop)
}

/// Merge-patches an object, ignoring the response body.
pub async fn patch(
    client: &kube::Client,
    collection: &str,
    name: &str,
    patch: &serde_json::Value,
) -> Result<(), kube::Error> {
    let request = Request::new(collection)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .map_err(kube::Error::BuildRequest)?;
    client.request::<IgnoredAny>(request).await.map(drop)
}

/// Deletes an object at once, but only the incarnation with `uid`.
pub async fn delete_now(
    client: &kube::Client,
    collection: &str,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let request = Request::new(collection)
        .delete(name, &params)
        .map_err(kube::Error::BuildRequest)?;
    client.request::<IgnoredAny>(request).await.map(drop)
}

/// `/api/v1/namespaces/NS/pods`.
pub fn pods_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/pods")
}

pub const NODE_LEASES_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

/// Logs the first failure of a kind at once and then at most one summary
/// per window, so an unreachable API server costs a line every few seconds
/// rather than one per node and pod.
pub struct FailureLog {
    what: &'static str,
    window: Duration,
    window_start: Option<Instant>,
    suppressed: u64,
}

impl FailureLog {
    pub fn new(what: &'static str) -> FailureLog {
        FailureLog {
            what,
            window: Duration::from_secs(10),
            window_start: None,
            suppressed: 0,
        }
    }

    pub fn record(&mut self, subject: &str, error: &dyn std::fmt::Display) {
        let now = Instant::now();
        match self.window_start {
            Some(start) if now.duration_since(start) < self.window => {
                self.suppressed += 1;
            }
            _ => {
                tracing::warn!(
                    what = self.what,
                    %subject,
                    %error,
                    "request failed; {} more since the last report",
                    self.suppressed
                );
                self.window_start = Some(now);
                self.suppressed = 0;
            }
        }
    }
}
