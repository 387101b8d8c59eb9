//! Which pods the agent works on and when: a watch of the pods bound to this node, one worker per pod UID that syncs on every change, runtime event (from a 1 s relist, as containerd 1.6 has no event stream) or requested wake-up, and ends once the pod is gone from both the API and the runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often the runtime is listed for changes (upstream's PLEG relist period).
pub const RELIST_PERIOD: Duration = Duration::from_secs(1);

/// What a sync asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Sync again at this time even if nothing changes (backoff, probes,
    /// grace periods).
    WakeAt(Instant),
    /// Nothing to do until something changes.
    Idle,
    /// The pod is gone from the API and the runtime: the worker ends.
    Finished,
}

/// The work itself; the shell here only decides when it runs.
#[async_trait::async_trait]
pub trait PodSyncer: Send + Sync + 'static {
    /// Brings the runtime and the pod's status in line with `pod` (`None`:
    /// deleted from the API, so anything left in the runtime goes).
    async fn sync(&self, uid: &str, pod: Option<Arc<Pod>>) -> SyncOutcome;

    /// A fingerprint of each pod UID's runtime state (sandboxes and
    /// containers with their states); a changed one wakes its worker.
    async fn runtime_fingerprints(&self) -> anyhow::Result<HashMap<String, u64>>;
}

/// The pods bound to this node, by UID, as last seen.
#[derive(Clone, Default)]
pub struct PodStore(Arc<Mutex<HashMap<String, Arc<Pod>>>>);

impl PodStore {
    pub fn get(&self, uid: &str) -> Option<Arc<Pod>> {
        self.lock().get(uid).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Pod>> {
        self.lock().values().cloned().collect()
    }

    /// Finds a pod by namespace and name.
    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.lock()
            .values()
            .find(|pod| {
                pod.metadata.namespace.as_deref() == Some(namespace)
                    && pod.metadata.name.as_deref() == Some(name)
            })
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pod>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn uid_of(pod: &Pod) -> Option<&str> {
    pod.metadata.uid.as_deref().filter(|uid| !uid.is_empty())
}

/// Runs until the watch fails for good: keeps `store` to the pods bound to
/// `node_name` and one worker per pod UID (and per UID the runtime still
/// holds) calling `syncer`.
pub async fn run(
    client: kube::Client,
    node_name: String,
    store: PodStore,
    syncer: Arc<dyn PodSyncer>,
) -> anyhow::Result<()> {
    let (wake_tx, mut wake_rx) = mpsc::unbounded_channel::<String>();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<String>();
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let mut events = std::pin::pin!(watcher(pods, config));
    let mut relist = tokio::time::interval(RELIST_PERIOD);
    relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut fingerprints: HashMap<String, u64> = HashMap::new();
    let mut workers: HashMap<String, mpsc::Sender<()>> = HashMap::new();
    // Pods seen during a relist of the watch, to drop the ones it no longer has.
    let mut relisted: Option<Vec<String>> = None;

    let wake = |workers: &mut HashMap<String, mpsc::Sender<()>>, uid: &str| {
        if let Some(worker) = workers.get(uid) {
            match worker.try_send(()) {
                // A full queue already holds a wake-up; one sync covers both.
                Ok(()) | Err(mpsc::error::TrySendError::Full(())) => return,
                // The worker has just ended: a new one takes over.
                Err(mpsc::error::TrySendError::Closed(())) => {}
            }
        }
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(());
        workers.insert(uid.to_string(), tx);
        tokio::spawn(work(
            uid.to_string(),
            store.clone(),
            syncer.clone(),
            rx,
            ended_tx.clone(),
        ));
    };

    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { anyhow::bail!("the pod watch ended") };
                match event {
                    Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod)) => {
                        let Some(uid) = uid_of(&pod).map(str::to_string) else { continue };
                        if let Some(seen) = relisted.as_mut() {
                            seen.push(uid.clone());
                        }
                        store.lock().insert(uid.clone(), Arc::new(pod));
                        wake(&mut workers, &uid);
                    }
                    Ok(watcher::Event::Delete(pod)) => {
                        let Some(uid) = uid_of(&pod).map(str::to_string) else { continue };
                        store.lock().remove(&uid);
                        wake(&mut workers, &uid);
                    }
                    Ok(watcher::Event::Init) => relisted = Some(Vec::new()),
                    Ok(watcher::Event::InitDone) => {
                        let seen: std::collections::HashSet<String> =
                            relisted.take().unwrap_or_default().into_iter().collect();
                        let gone: Vec<String> = store
                            .lock()
                            .keys()
                            .filter(|uid| !seen.contains(*uid))
                            .cloned()
                            .collect();
                        for uid in gone {
                            store.lock().remove(&uid);
                            wake(&mut workers, &uid);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "watching this node's pods");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            _ = relist.tick() => {
                match syncer.runtime_fingerprints().await {
                    Ok(current) => {
                        for (uid, fingerprint) in &current {
                            if fingerprints.get(uid) != Some(fingerprint) {
                                wake(&mut workers, uid);
                            }
                        }
                        for uid in fingerprints.keys() {
                            if !current.contains_key(uid) {
                                let uid = uid.clone();
                                wake(&mut workers, &uid);
                            }
                        }
                        fingerprints = current;
                    }
                    Err(error) => tracing::warn!(error = %format!("{error:#}"), "listing the runtime"),
                }
            }
            Some(uid) = wake_rx.recv() => wake(&mut workers, &uid),
            Some(uid) = ended_rx.recv() => {
                if workers.get(&uid).is_some_and(mpsc::Sender::is_closed) {
                    workers.remove(&uid);
                }
                // Changed between the worker's last sync and its end: restart it.
                if store.get(&uid).is_some() {
                    let _ = wake_tx.send(uid);
                }
            }
        }
    }
}

/// One pod's worker: syncs when woken or when the last sync asked to be.
async fn work(
    uid: String,
    store: PodStore,
    syncer: Arc<dyn PodSyncer>,
    mut wakes: mpsc::Receiver<()>,
    ended: mpsc::UnboundedSender<String>,
) {
    while wakes.recv().await.is_some() {
        loop {
            let outcome = syncer.sync(&uid, store.get(&uid)).await;
            let wake_at = match outcome {
                SyncOutcome::Finished => {
                    let _ = ended.send(uid);
                    return;
                }
                SyncOutcome::Idle => None,
                SyncOutcome::WakeAt(at) => Some(at),
            };
            match wake_at {
                None => break,
                Some(at) => {
                    tokio::select! {
                        woken = wakes.recv() => if woken.is_none() { return },
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
            }
        }
    }
}
