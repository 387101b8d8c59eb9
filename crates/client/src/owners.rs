//! Owner references: the controller reference a controller stamps on what it creates, and finding an object's controller.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|owner| owner.controller == Some(true))
}

/// Whether `meta`'s controller is the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|owner| owner.uid == uid)
}

/// A controller reference to `owner` as upstream's `NewControllerRef` makes
/// it: controller and blockOwnerDeletion set.
pub fn controller_reference<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;

    #[test]
    fn a_controller_reference_names_the_owner_and_is_found_again() {
        let mut owner = ReplicaSet::default();
        owner.metadata.name = Some("web-abc".into());
        owner.metadata.uid = Some("u-1".into());
        let reference = controller_reference(&owner);
        assert_eq!(
            (reference.api_version.as_str(), reference.kind.as_str()),
            ("apps/v1", "ReplicaSet")
        );
        let child = ObjectMeta {
            owner_references: Some(vec![reference]),
            ..ObjectMeta::default()
        };
        assert!(is_controlled_by(&child, "u-1"));
        assert!(!is_controlled_by(&child, "u-2"));
    }
}
