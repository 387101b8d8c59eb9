//! Upstream's ControllerRefManager: an owner adopts matching orphans (after re-reading itself to be sure it is not being deleted) and releases owned objects that no longer match.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;

/// What an owner does with one candidate child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    Keep,
    Adopt,
    Release,
    Ignore,
}

/// Upstream's `ClaimObject` decision.
pub fn decide(child: &ObjectMeta, owner_uid: &str, owner_deleting: bool, matches: bool) -> Claim {
    match client::owners::controller_of(child) {
        Some(controller) if controller.uid == owner_uid => {
            if matches {
                Claim::Keep
            } else if owner_deleting {
                // A deleting owner keeps what it has until it is gone.
                Claim::Ignore
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None if owner_deleting || !matches || child.deletion_timestamp.is_some() => Claim::Ignore,
        None => Claim::Adopt,
    }
}

const PATCH_CONCURRENCY: usize = 32;

/// Adopts and releases as `decide` says and returns the children the owner
/// now controls; fails if any adoption or release failed (as upstream, the
/// sync is then retried).
pub async fn claim<O, C>(
    client: &Client,
    owner: &O,
    candidates: Vec<Arc<C>>,
    matches: impl Fn(&C) -> bool,
) -> anyhow::Result<Vec<Arc<C>>>
where
    O: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    C: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let owner_meta = owner.meta();
    let owner_uid = owner_meta.uid.clone().unwrap_or_default();
    let owner_deleting = owner_meta.deletion_timestamp.is_some();
    let mut claimed = Vec::with_capacity(candidates.len());
    let mut to_adopt = Vec::new();
    let mut to_release = Vec::new();
    for child in candidates {
        match decide(child.meta(), &owner_uid, owner_deleting, matches(&child)) {
            Claim::Keep => claimed.push(child),
            Claim::Adopt => to_adopt.push(child),
            Claim::Release => to_release.push(child),
            Claim::Ignore => {}
        }
    }
    let mut errors: Vec<String> = Vec::new();
    if !to_adopt.is_empty() {
        match can_adopt(client, owner).await {
            Ok(()) => {
                let reference = client::owners::controller_reference(owner);
                let results = futures::stream::iter(to_adopt)
                    .map(|child| {
                        let patch = json!({"metadata": {
                            "ownerReferences": [reference],
                            "uid": child.meta().uid,
                        }});
                        async move { (patch_child(client, &*child, patch).await, child) }
                    })
                    .buffer_unordered(PATCH_CONCURRENCY)
                    .collect::<Vec<_>>()
                    .await;
                for (result, child) in results {
                    match result {
                        Ok(true) => claimed.push(child),
                        Ok(false) => {}
                        Err(error) => errors.push(error),
                    }
                }
            }
            Err(error) => errors.push(error),
        }
    }
    let results = futures::stream::iter(to_release)
        .map(|child| {
            let patch = json!({"metadata": {
                "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
                "uid": child.meta().uid,
            }});
            async move { patch_child(client, &*child, patch).await }
        })
        .buffer_unordered(PATCH_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    errors.extend(results.into_iter().filter_map(Result::err));
    match errors.first() {
        None => Ok(claimed),
        Some(first) => Err(anyhow::anyhow!("{first}")),
    }
}

/// Re-reads the owner from the API: a cached copy may miss that it is
/// being deleted, and adopting then would orphan the child again.
async fn can_adopt<O>(client: &Client, owner: &O) -> Result<(), String>
where
    O: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let meta = owner.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let api: Api<O> = Api::namespaced(client.clone(), namespace);
    let fresh = api
        .get(name)
        .await
        .map_err(|error| format!("can't recheck DeletionTimestamp: {error}"))?;
    if fresh.meta().uid != meta.uid {
        return Err(format!(
            "original {} {namespace}/{name} is gone: got uid {}, wanted {}",
            O::kind(&()),
            fresh.meta().uid.as_deref().unwrap_or_default(),
            meta.uid.as_deref().unwrap_or_default()
        ));
    }
    if let Some(deleted) = &fresh.meta().deletion_timestamp {
        return Err(format!(
            "{} {namespace}/{name} has just been deleted at {}",
            O::kind(&()),
            deleted.0
        ));
    }
    Ok(())
}

/// Patches a child's owner references; `Ok(false)` when the child is gone
/// (or was replaced), which upstream ignores.
async fn patch_child<C>(
    client: &Client,
    child: &C,
    patch: serde_json::Value,
) -> Result<bool, String>
where
    C: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let meta = child.meta();
    let api: Api<C> = Api::namespaced(
        client.clone(),
        meta.namespace.as_deref().unwrap_or_default(),
    );
    let name = meta.name.as_deref().unwrap_or_default();
    match api
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 422 => Ok(false),
        Err(error) => Err(format!("{} {name}: {error}", C::kind(&()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    fn owned_by(uid: &str) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn owned_and_matching_is_kept_and_unmatching_released() {
        assert_eq!(decide(&owned_by("me"), "me", false, true), Claim::Keep);
        assert_eq!(decide(&owned_by("me"), "me", false, false), Claim::Release);
        assert_eq!(decide(&owned_by("me"), "me", true, false), Claim::Ignore);
        assert_eq!(decide(&owned_by("other"), "me", false, true), Claim::Ignore);
    }

    #[test]
    fn orphans_are_adopted_only_when_matching_and_alive() {
        let orphan = ObjectMeta::default();
        assert_eq!(decide(&orphan, "me", false, true), Claim::Adopt);
        assert_eq!(decide(&orphan, "me", false, false), Claim::Ignore);
        assert_eq!(decide(&orphan, "me", true, true), Claim::Ignore);
        let deleting = ObjectMeta {
            deletion_timestamp: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
            ..ObjectMeta::default()
        };
        assert_eq!(decide(&deleting, "me", false, true), Claim::Ignore);
    }
}
