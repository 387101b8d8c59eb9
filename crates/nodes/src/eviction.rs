//! The taint eviction controller: deletes Pods from nodes with NoExecute taints they do not tolerate, at once or when their tolerationSeconds run out, marking them with the DisruptionTarget condition first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use client::{Change, EventRecorder, Informers};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::taints::{self, NO_EXECUTE};

const DELETE_ATTEMPTS: usize = 5;
const EVICTION_REASON: &str = "TaintManagerEviction";

/// A deletion waiting for its time.
struct Scheduled {
    id: u64,
    created_at: Instant,
    fire_at: Instant,
    timer: AbortHandle,
}

struct TaintEviction {
    client: Client,
    recorder: EventRecorder,
    pods: client::Informer<Pod>,
    /// NoExecute taints of each tainted node.
    tainted: HashMap<String, Vec<Taint>>,
    scheduled: HashMap<(String, String), Scheduled>,
    next_id: u64,
    fired: mpsc::UnboundedSender<((String, String), u64)>,
}

fn no_execute_taints(node: &Node) -> Vec<Taint> {
    taints::node_taints(node)
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .cloned()
        .collect()
}

fn pod_key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

impl TaintEviction {
    fn cancel(&mut self, key: &(String, String), pod: Option<&Pod>) {
        if let Some(scheduled) = self.scheduled.remove(key) {
            scheduled.timer.abort();
            if let Some(pod) = pod {
                self.recorder.normal(
                    pod,
                    EVICTION_REASON,
                    format!("Cancelling deletion of Pod {}/{}", key.0, key.1),
                );
            }
        }
    }

    /// Upstream's processPodOnNode.
    fn process_pod(&mut self, pod: &Pod, taints: &[Taint]) {
        let key = pod_key(pod);
        if taints.is_empty() {
            self.cancel(&key, Some(pod));
            return;
        }
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let now = Instant::now();
        let start = match taints::toleration_time(taints, tolerations) {
            None => {
                self.cancel(&key, Some(pod));
                return;
            }
            Some(Duration::ZERO) => {
                self.cancel(&key, Some(pod));
                self.schedule(key, now, now);
                return;
            }
            Some(wait) => {
                let start = self.scheduled.get(&key).map_or(now, |s| s.created_at);
                if self
                    .scheduled
                    .get(&key)
                    .is_some_and(|s| s.fire_at == start + wait)
                {
                    return;
                }
                (start, start + wait)
            }
        };
        if let Some(previous) = self.scheduled.remove(&key) {
            previous.timer.abort();
        }
        self.schedule(key, start.0, start.1);
    }

    fn schedule(&mut self, key: (String, String), created_at: Instant, fire_at: Instant) {
        self.next_id += 1;
        let id = self.next_id;
        let (client, recorder, fired) = (
            self.client.clone(),
            self.recorder.clone(),
            self.fired.clone(),
        );
        let task_key = key.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep_until(fire_at).await;
            if let Err(error) = evict(&client, &recorder, &task_key.0, &task_key.1).await {
                tracing::warn!(pod = %format!("{}/{}", task_key.0, task_key.1), %error, "taint eviction failed");
            }
            let _ = fired.send((task_key, id));
        })
        .abort_handle();
        self.scheduled.insert(
            key,
            Scheduled {
                id,
                created_at,
                fire_at,
                timer,
            },
        );
    }

    fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods
            .store()
            .state()
            .into_iter()
            .filter(|pod| node_of(pod) == Some(node))
            .collect()
    }

    fn node_changed(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let taints = no_execute_taints(node);
        let before = self.tainted.get(&name).cloned().unwrap_or_default();
        if before == taints {
            return;
        }
        if taints.is_empty() {
            self.tainted.remove(&name);
        } else {
            self.tainted.insert(name.clone(), taints.clone());
        }
        for pod in self.pods_on(&name) {
            self.process_pod(&pod, &taints);
        }
    }

    fn pod_changed(&mut self, old: Option<&Pod>, pod: &Pod) {
        if let Some(old) = old {
            let tolerations = |p: &Pod| p.spec.as_ref().and_then(|s| s.tolerations.clone());
            if tolerations(old) == tolerations(pod) && node_of(old) == node_of(pod) {
                return;
            }
        }
        let Some(node) = node_of(pod) else { return };
        let Some(taints) = self.tainted.get(node).cloned() else {
            return;
        };
        self.process_pod(pod, &taints);
    }
}

/// Upstream's addConditionAndDeletePod, retried a few times.
async fn evict(
    client: &Client,
    recorder: &EventRecorder,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut last_error = None;
    for attempt in 0..DELETE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let pod = match api.get_opt(name).await {
            Ok(Some(pod)) => pod,
            Ok(None) => return Ok(()),
            Err(error) => {
                last_error = Some(error);
                continue;
            }
        };
        if attempt == 0 {
            recorder.normal(
                &pod,
                EVICTION_REASON,
                format!("Marking for deletion Pod {namespace}/{name}"),
            );
        }
        let marked = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions.iter().any(|c| {
                    c.type_ == "DisruptionTarget"
                        && c.status == "True"
                        && c.reason.as_deref() == Some("DeletionByTaintManager")
                })
            });
        if !marked {
            let condition = json!({"status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": jiff::Timestamp::now().to_string(),
            }]}});
            if let Err(error) = api
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(condition))
                .await
            {
                last_error = Some(error);
                continue;
            }
        }
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.map_or_else(
        || anyhow::anyhow!("eviction of {namespace}/{name} failed"),
        Into::into,
    ))
}

/// Runs the taint eviction controller until dropped.
pub async fn run_taint_eviction(client: Client, informers: Arc<Informers>) -> anyhow::Result<()> {
    let nodes = informers.informer::<Node>();
    let pods = informers.informer::<Pod>();
    let mut node_changes = nodes.subscribe();
    let mut pod_changes = pods.subscribe();
    nodes.wait_synced().await;
    pods.wait_synced().await;
    let (fired, mut fired_receiver) = mpsc::unbounded_channel();
    let mut controller = TaintEviction {
        recorder: EventRecorder::new(client.clone(), "taint-eviction-controller"),
        client,
        pods,
        tainted: HashMap::new(),
        scheduled: HashMap::new(),
        next_id: 0,
        fired,
    };
    loop {
        tokio::select! {
            change = node_changes.recv() => match change {
                Some(Change::Applied { new, .. }) => controller.node_changed(&new),
                Some(Change::Deleted(node)) => {
                    controller.tainted.remove(node.metadata.name.as_deref().unwrap_or_default());
                }
                None => break,
            },
            change = pod_changes.recv() => match change {
                Some(Change::Applied { old, new }) => controller.pod_changed(old.as_deref(), &new),
                Some(Change::Deleted(pod)) => controller.cancel(&pod_key(&pod), None),
                None => break,
            },
            Some((key, id)) = fired_receiver.recv() => {
                if controller.scheduled.get(&key).is_some_and(|s| s.id == id) {
                    controller.scheduled.remove(&key);
                }
            }
        }
    }
    Ok(())
}

impl Drop for TaintEviction {
    /// Pending deletions die with the controller: a stopped controller
    /// must not delete Pods.
    fn drop(&mut self) {
        for scheduled in self.scheduled.values() {
            scheduled.timer.abort();
        }
    }
}
