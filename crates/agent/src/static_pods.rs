//! Static pods: one Pod manifest per file in `DATA_DIR/agent/pod-manifests`, run on this node and shown in the API as mirror pods (`NAME-NODE`, annotated `kubernetes.io/config.mirror`, owned by the Node).
//!
//! The mirror pod is what the pod sync runs (it is bound to this node), so
//! the manifest directory is reconciled against the API: a new file creates
//! its mirror pod, an edited file replaces it, a removed file deletes it,
//! and a mirror pod deleted through the API comes back while its file is
//! there. Unlike upstream's kubelet, the containers restart when the mirror
//! pod is replaced, and static pods need the API server to run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};

pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
/// How often the directory is read again (upstream's file check frequency
/// is 20 s; a short one keeps edits quick to take effect).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// A static pod as its file describes it.
#[derive(Clone, Debug)]
pub struct StaticPod {
    pub file: PathBuf,
    pub mirror: Pod,
    pub hash: String,
}

impl StaticPod {
    fn key(&self) -> (String, String) {
        key_of(&self.mirror)
    }
}

fn key_of(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// FNV-1a over the parts: a hash that stays the same across builds, so
/// mirror pods survive an upgrade of the agent.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Reads one manifest into the mirror pod the API should hold for it.
pub fn mirror_pod(
    file: &Path,
    text: &str,
    node_name: &str,
    node_uid: &str,
) -> Result<StaticPod, String> {
    let mut pod: Pod = serde_norway::from_str(text)
        .map_err(|error| format!("{}: not a Pod manifest: {error}", file.display()))?;
    if pod.metadata.name.as_deref().unwrap_or_default().is_empty() {
        return Err(format!("{}: the pod has no name", file.display()));
    }
    let hash = format!(
        "{:016x}",
        fnv1a(&[text.as_bytes(), b"\0", node_name.as_bytes()])
    );
    let name = format!(
        "{}-{node_name}",
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    pod.metadata.name = Some(name);
    if pod
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        pod.metadata.namespace = Some("default".to_string());
    }
    pod.metadata.uid = None;
    pod.metadata.resource_version = None;
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_SOURCE_ANNOTATION.into(), "file".into());
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), hash.clone());
    annotations.insert(CONFIG_MIRROR_ANNOTATION.into(), hash.clone());
    annotations.insert(
        CONFIG_SEEN_ANNOTATION.into(),
        jiff::Timestamp::now().to_string(),
    );
    pod.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node_name.to_string(),
        uid: node_uid.to_string(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name.to_string());
    // As upstream: static pods tolerate every NoExecute taint.
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let tolerate_all = Toleration {
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        ..Toleration::default()
    };
    if !tolerations.contains(&tolerate_all) {
        tolerations.push(tolerate_all);
    }
    pod.status = None;
    Ok(StaticPod {
        file: file.to_path_buf(),
        mirror: pod,
        hash,
    })
}

/// Every manifest in `dir` (hidden files and other extensions skipped);
/// unreadable ones are logged and left out.
pub fn read_manifests(dir: &Path, node_name: &str, node_uid: &str) -> Vec<StaticPod> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            !name.starts_with('.')
                && [".yaml", ".yml", ".json"]
                    .iter()
                    .any(|extension| name.ends_with(extension))
        })
        .collect();
    files.sort();
    let mut pods: Vec<StaticPod> = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match mirror_pod(&file, &text, node_name, node_uid) {
            Ok(pod) if pods.iter().any(|other| other.key() == pod.key()) => {
                tracing::warn!(file = %file.display(), "a static pod of the same name is already defined");
            }
            Ok(pod) => pods.push(pod),
            Err(error) => tracing::warn!(%error, "skipping a static pod manifest"),
        }
    }
    pods
}

/// What to do to make the API's mirror pods match the manifests.
#[derive(Debug, Default, PartialEq)]
pub struct MirrorPlan {
    pub create: Vec<(String, String)>,
    /// Outdated or orphaned mirror pods, by key and uid.
    pub delete: Vec<((String, String), String)>,
}

pub fn plan(wanted: &[StaticPod], existing: &[Pod]) -> MirrorPlan {
    let mut plan = MirrorPlan::default();
    let wanted_hashes: BTreeMap<(String, String), &str> = wanted
        .iter()
        .map(|pod| (pod.key(), pod.hash.as_str()))
        .collect();
    let mut current = BTreeSet::new();
    for pod in existing {
        let Some(hash) = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(CONFIG_MIRROR_ANNOTATION))
        else {
            continue;
        };
        let key = key_of(pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        if wanted_hashes.get(&key) == Some(&hash.as_str()) {
            current.insert(key);
        } else if !terminating {
            plan.delete
                .push((key.clone(), pod.metadata.uid.clone().unwrap_or_default()));
            current.insert(key);
        } else {
            current.insert(key);
        }
    }
    for pod in wanted {
        if !current.contains(&pod.key()) {
            plan.create.push(pod.key());
        }
    }
    plan
}

/// Keeps the mirror pods equal to the manifests in `dir`, forever.
pub async fn run(client: kube::Client, node_name: String, node_uid: String, dir: PathBuf) {
    if let Err(error) = std::fs::create_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), %error, "no static pod directory");
    }
    let pods: Api<Pod> = Api::all(client.clone());
    loop {
        if let Err(error) = sync_once(&client, &pods, &node_name, &node_uid, &dir).await {
            tracing::warn!(%error, "syncing static pods");
        }
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

async fn sync_once(
    client: &kube::Client,
    pods: &Api<Pod>,
    node_name: &str,
    node_uid: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    let wanted = read_manifests(dir, node_name, node_uid);
    let listed = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node_name}")))
        .await?;
    let plan = plan(&wanted, &listed.items);
    for ((namespace, name), uid) in &plan.delete {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        if let Err(error) = api.delete(name, &params).await {
            tracing::warn!(pod = %name, %error, "deleting an outdated mirror pod");
        }
    }
    for key in &plan.create {
        let Some(pod) = wanted.iter().find(|pod| &pod.key() == key) else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), &key.0);
        match api.create(&PostParams::default(), &pod.mirror).await {
            Ok(_) => tracing::info!(pod = %key.1, file = %pod.file.display(), "mirror pod created"),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => tracing::warn!(pod = %key.1, %error, "creating a mirror pod"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c, image: busybox}]\n";

    #[test]
    fn a_manifest_becomes_a_mirror_pod_owned_by_the_node() {
        let pod = mirror_pod(Path::new("/m/web.yaml"), MANIFEST, "node-1", "uid-1").unwrap();
        let mirror = &pod.mirror;
        assert_eq!(mirror.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(mirror.metadata.namespace.as_deref(), Some("default"));
        let annotations = mirror.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[CONFIG_SOURCE_ANNOTATION], "file");
        assert_eq!(annotations[CONFIG_MIRROR_ANNOTATION], pod.hash);
        let owner = &mirror.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "uid-1"));
        let spec = mirror.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert!(spec.tolerations.as_ref().unwrap().iter().any(|toleration| {
            toleration.operator.as_deref() == Some("Exists")
                && toleration.effect.as_deref() == Some("NoExecute")
        }));
        let edited = mirror_pod(
            Path::new("/m/web.yaml"),
            &MANIFEST.replace("busybox", "nginx"),
            "node-1",
            "uid-1",
        )
        .unwrap();
        assert_ne!(edited.hash, pod.hash);
        assert!(mirror_pod(Path::new("/m/x.yaml"), "kind: Pod\n", "n", "u").is_err());
    }

    #[test]
    fn the_plan_creates_missing_replaces_edited_and_removes_orphaned_mirrors() {
        let web = mirror_pod(Path::new("/m/web.yaml"), MANIFEST, "n", "u").unwrap();
        let db = mirror_pod(
            Path::new("/m/db.yaml"),
            &MANIFEST.replace("name: web", "name: db"),
            "n",
            "u",
        )
        .unwrap();
        let with = |pod: &StaticPod, hash: &str, uid: &str| -> Pod {
            let mut mirror = pod.mirror.clone();
            mirror.metadata.uid = Some(uid.into());
            mirror
                .metadata
                .annotations
                .as_mut()
                .unwrap()
                .insert(CONFIG_MIRROR_ANNOTATION.into(), hash.into());
            mirror
        };
        let mut orphan = with(&web, "old", "u-orphan");
        orphan.metadata.name = Some("gone-n".into());
        let regular: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "other", "namespace": "default", "uid": "u-x"}}),
        )
        .unwrap();
        let plan = plan(
            &[web.clone(), db.clone()],
            &[
                with(&web, &web.hash, "u-web"),
                with(&db, "stale", "u-db"),
                orphan,
                regular,
            ],
        );
        assert_eq!(plan.create, Vec::<(String, String)>::new());
        assert_eq!(
            plan.delete,
            [
                (("default".into(), "db-n".into()), "u-db".into()),
                (("default".into(), "gone-n".into()), "u-orphan".into()),
            ]
        );
        let fresh = super::plan(std::slice::from_ref(&web), &[]);
        assert_eq!(fresh.create, [("default".to_string(), "web-n".to_string())]);
    }
}
