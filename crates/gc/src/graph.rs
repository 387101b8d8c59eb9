//! The ownership graph (upstream's `GraphBuilder.uidToNode`): every observed object's owners and dependents, and what each observed change asks the collector to look at.
//!
//! Pure: changes go in, [`Effects`] (uids to attempt to delete or to orphan,
//! events to report) come out; the collector does the IO.

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::discovery::group_of;

pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// Where an object lives and which one it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Identity {
    /// The identity an owner reference gives its owner, seen from a dependent
    /// in `namespace`.
    pub fn of_owner(reference: &OwnerReference, namespace: &str) -> Identity {
        Identity {
            api_version: reference.api_version.clone(),
            kind: reference.kind.clone(),
            namespace: namespace.to_string(),
            name: reference.name.clone(),
            uid: reference.uid.clone(),
        }
    }
}

impl std::fmt::Display for Identity {
    /// Upstream's `objectReference` text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

/// The metadata of one object as a monitor saw it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub identity: Identity,
    /// The monitor's resource (`group/plural`), so a relist can find what
    /// vanished meanwhile.
    pub resource: String,
    pub owners: Vec<OwnerReference>,
    pub being_deleted: bool,
    pub finalizers: Vec<String>,
}

/// One change a monitor reports.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphChange {
    Upsert(Observed),
    Deleted {
        uid: String,
    },
    /// A (re)list of `resource` finished with exactly these uids.
    Relisted {
        resource: String,
        uids: HashSet<String>,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Node {
    /// For a virtual node, the coordinates its first dependent gave it.
    pub identity: Identity,
    /// False for a virtual node: known only as someone's owner.
    pub observed: bool,
    pub resource: String,
    pub owners: Vec<OwnerReference>,
    pub dependents: BTreeSet<String>,
    pub being_deleted: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    pub fn deleting_dependents(&self) -> bool {
        self.being_deleted && self.finalizers.iter().any(|f| f == FINALIZER_FOREGROUND)
    }

    fn orphaning(&self) -> bool {
        self.being_deleted && self.finalizers.iter().any(|f| f == FINALIZER_ORPHAN)
    }
}

/// A dependent whose owner reference points into another namespace (or at
/// a namespaced owner from a cluster-scoped object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOwnerReference {
    pub dependent: Identity,
    pub owner: Identity,
}

impl InvalidOwnerReference {
    /// Upstream's `OwnerRefInvalidNamespace` event message.
    pub fn message(&self) -> String {
        format!(
            "ownerRef {} does not exist in namespace {:?}",
            self.owner, self.dependent.namespace
        )
    }
}

/// What a change asks the collector to do.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    pub attempt_to_delete: Vec<String>,
    pub attempt_to_orphan: Vec<String>,
    /// Identities now known not to exist.
    pub absent: Vec<Identity>,
    pub invalid_references: Vec<InvalidOwnerReference>,
}

#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

/// Whether a reference names the same kind and name as an observed identity
/// (versions of one group name the same objects).
fn reference_matches(reference: &OwnerReference, identity: &Identity) -> bool {
    reference.kind == identity.kind
        && reference.name == identity.name
        && group_of(&reference.api_version) == group_of(&identity.api_version)
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents whose reference to `uid` blocks its deletion, with
    /// whether each is itself deleting its dependents.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<(String, bool)> {
        let Some(node) = self.nodes.get(uid) else {
            return Vec::new();
        };
        node.dependents
            .iter()
            .filter_map(|dependent| {
                let dependent_node = self.nodes.get(dependent)?;
                let blocks = dependent_node
                    .owners
                    .iter()
                    .any(|owner| owner.uid == uid && owner.block_owner_deletion == Some(true));
                blocks.then(|| (dependent.clone(), dependent_node.deleting_dependents()))
            })
            .collect()
    }

    pub fn apply(&mut self, change: GraphChange) -> Effects {
        let mut effects = Effects::default();
        match change {
            GraphChange::Upsert(observed) => self.upsert(observed, &mut effects),
            GraphChange::Deleted { uid } => self.delete(&uid, &mut effects),
            GraphChange::Relisted { resource, uids } => {
                let vanished: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|(uid, node)| {
                        node.observed && node.resource == resource && !uids.contains(*uid)
                    })
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in vanished {
                    self.delete(&uid, &mut effects);
                }
            }
        }
        effects
    }

    fn upsert(&mut self, observed: Observed, effects: &mut Effects) {
        let uid = observed.identity.uid.clone();
        let previous = self.nodes.get(&uid).cloned();
        let was_observed = previous.as_ref().is_some_and(|node| node.observed);
        let (was_deleting_dependents, was_orphaning) = previous
            .as_ref()
            .filter(|node| node.observed)
            .map_or((false, false), |node| {
                (node.deleting_dependents(), node.orphaning())
            });
        let dependents = previous
            .as_ref()
            .map(|node| node.dependents.clone())
            .unwrap_or_default();
        if !was_observed {
            // A virtual node becomes real: dependents that named it by other
            // coordinates (or from another namespace) must be checked.
            for dependent in &dependents {
                let Some(dependent_node) = self.nodes.get(dependent) else {
                    continue;
                };
                let Some(reference) = dependent_node.owners.iter().find(|o| o.uid == uid) else {
                    continue;
                };
                let namespace_mismatch = !observed.identity.namespace.is_empty()
                    && dependent_node.identity.namespace != observed.identity.namespace;
                if namespace_mismatch {
                    effects.invalid_references.push(InvalidOwnerReference {
                        dependent: dependent_node.identity.clone(),
                        owner: Identity::of_owner(reference, &dependent_node.identity.namespace),
                    });
                }
                if namespace_mismatch || !reference_matches(reference, &observed.identity) {
                    effects.attempt_to_delete.push(dependent.clone());
                }
            }
        }
        let old_owners = previous
            .as_ref()
            .filter(|node| node.observed)
            .map(|node| node.owners.clone())
            .unwrap_or_default();
        let node = Node {
            identity: observed.identity.clone(),
            observed: true,
            resource: observed.resource,
            owners: observed.owners.clone(),
            dependents,
            being_deleted: observed.being_deleted,
            finalizers: observed.finalizers,
        };
        let deleting_dependents = node.deleting_dependents();
        let orphaning = node.orphaning();
        self.nodes.insert(uid.clone(), node);

        for owner in &observed.owners {
            match old_owners.iter().find(|old| old.uid == owner.uid) {
                None => self.add_dependent_to_owner(&observed.identity, owner, effects),
                Some(old) => {
                    let unblocked = old.block_owner_deletion == Some(true)
                        && owner.block_owner_deletion != Some(true);
                    if unblocked {
                        self.wake_deleting_owner(&owner.uid, effects);
                    }
                }
            }
        }
        for old in &old_owners {
            if !observed.owners.iter().any(|owner| owner.uid == old.uid) {
                self.remove_dependent_from_owner(&uid, &old.uid);
                self.wake_deleting_owner(&old.uid, effects);
            }
        }

        if deleting_dependents && !was_deleting_dependents {
            let node = &self.nodes[&uid];
            effects
                .attempt_to_delete
                .extend(node.dependents.iter().cloned());
            effects.attempt_to_delete.push(uid.clone());
        }
        if orphaning && !was_orphaning {
            effects.attempt_to_orphan.push(uid);
        }
    }

    fn add_dependent_to_owner(
        &mut self,
        dependent: &Identity,
        owner: &OwnerReference,
        effects: &mut Effects,
    ) {
        match self.nodes.get_mut(&owner.uid) {
            None => {
                // Unknown owner: a virtual node, verified against the API.
                self.nodes.insert(
                    owner.uid.clone(),
                    Node {
                        identity: Identity::of_owner(owner, &dependent.namespace),
                        observed: false,
                        dependents: BTreeSet::from([dependent.uid.clone()]),
                        ..Node::default()
                    },
                );
                effects.attempt_to_delete.push(owner.uid.clone());
            }
            Some(owner_node) => {
                owner_node.dependents.insert(dependent.uid.clone());
                if !owner_node.observed {
                    return;
                }
                let owner_namespaced = !owner_node.identity.namespace.is_empty();
                if owner_namespaced && owner_node.identity.namespace != dependent.namespace {
                    effects.invalid_references.push(InvalidOwnerReference {
                        dependent: dependent.clone(),
                        owner: Identity::of_owner(owner, &dependent.namespace),
                    });
                    effects.attempt_to_delete.push(dependent.uid.clone());
                } else if !reference_matches(owner, &owner_node.identity) {
                    effects.attempt_to_delete.push(dependent.uid.clone());
                } else if owner_node.deleting_dependents() {
                    // A dependent appearing under an owner deleted in the
                    // foreground is deleted too.
                    effects.attempt_to_delete.push(dependent.uid.clone());
                }
            }
        }
    }

    fn remove_dependent_from_owner(&mut self, dependent: &str, owner: &str) {
        if let Some(owner_node) = self.nodes.get_mut(owner) {
            owner_node.dependents.remove(dependent);
            if !owner_node.observed && owner_node.dependents.is_empty() {
                self.nodes.remove(owner);
            }
        }
    }

    fn wake_deleting_owner(&self, owner: &str, effects: &mut Effects) {
        if self
            .nodes
            .get(owner)
            .is_some_and(|node| node.deleting_dependents())
        {
            effects.attempt_to_delete.push(owner.to_string());
        }
    }

    fn delete(&mut self, uid: &str, effects: &mut Effects) {
        let Some(node) = self.nodes.remove(uid) else {
            return;
        };
        if !node.dependents.is_empty() {
            effects.absent.push(node.identity.clone());
        }
        effects
            .attempt_to_delete
            .extend(node.dependents.iter().cloned());
        for owner in &node.owners {
            self.remove_dependent_from_owner(uid, &owner.uid);
            self.wake_deleting_owner(&owner.uid, effects);
        }
    }

    /// Removes a virtual node the API says does not exist: its dependents
    /// are to be checked (upstream's virtual delete event).
    pub fn remove_virtual(&mut self, uid: &str) -> Effects {
        let mut effects = Effects::default();
        if self.nodes.get(uid).is_some_and(|node| !node.observed) {
            self.delete(uid, &mut effects);
        }
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(kind: &str, namespace: &str, name: &str, uid: &str) -> Identity {
        Identity {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn reference(kind: &str, name: &str, uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            block_owner_deletion: block.then_some(true),
            controller: None,
        }
    }

    fn observed(identity: Identity, owners: Vec<OwnerReference>) -> GraphChange {
        GraphChange::Upsert(Observed {
            resource: format!("/{}s", identity.kind.to_lowercase()),
            identity,
            owners,
            ..Observed::default()
        })
    }

    #[test]
    fn an_unknown_owner_becomes_a_virtual_node_to_verify() {
        let mut graph = Graph::default();
        let effects = graph.apply(observed(
            identity("ConfigMap", "a", "child", "c"),
            vec![reference("ConfigMap", "parent", "p", false)],
        ));
        assert_eq!(effects.attempt_to_delete, vec!["p".to_string()]);
        let owner = graph.get("p").unwrap();
        assert!(!owner.observed);
        assert_eq!(owner.identity.namespace, "a");
        // The owner shows up: nothing to do, it is real now.
        let effects = graph.apply(observed(identity("ConfigMap", "a", "parent", "p"), vec![]));
        assert_eq!(effects, Effects::default());
        assert!(graph.get("p").unwrap().observed);
        assert!(graph.get("p").unwrap().dependents.contains("c"));
    }

    #[test]
    fn a_deleted_owner_sends_its_dependents_to_be_checked() {
        let mut graph = Graph::default();
        graph.apply(observed(identity("ConfigMap", "a", "parent", "p"), vec![]));
        graph.apply(observed(
            identity("Secret", "a", "child", "c"),
            vec![reference("ConfigMap", "parent", "p", false)],
        ));
        let effects = graph.apply(GraphChange::Deleted { uid: "p".into() });
        assert_eq!(effects.attempt_to_delete, vec!["c".to_string()]);
        assert_eq!(
            effects.absent,
            vec![identity("ConfigMap", "a", "parent", "p")]
        );
        assert!(graph.get("p").is_none());
    }

    #[test]
    fn foreground_deletion_checks_every_dependent_and_the_owner_and_waits_for_blockers() {
        let mut graph = Graph::default();
        graph.apply(observed(identity("ConfigMap", "a", "parent", "p"), vec![]));
        graph.apply(observed(
            identity("Secret", "a", "blocking", "b"),
            vec![reference("ConfigMap", "parent", "p", true)],
        ));
        graph.apply(observed(
            identity("Secret", "a", "loose", "l"),
            vec![reference("ConfigMap", "parent", "p", false)],
        ));
        let effects = graph.apply(GraphChange::Upsert(Observed {
            identity: identity("ConfigMap", "a", "parent", "p"),
            resource: "/configmaps".into(),
            being_deleted: true,
            finalizers: vec![FINALIZER_FOREGROUND.into()],
            ..Observed::default()
        }));
        assert_eq!(effects.attempt_to_delete, vec!["b", "l", "p"]);
        assert_eq!(
            graph.blocking_dependents("p"),
            vec![("b".to_string(), false)]
        );
        // The blocking dependent goes: the owner is looked at again.
        let effects = graph.apply(GraphChange::Deleted { uid: "b".into() });
        assert_eq!(effects.attempt_to_delete, vec!["p".to_string()]);
        assert!(graph.blocking_dependents("p").is_empty());
    }

    #[test]
    fn orphan_finalizer_asks_for_orphaning_once() {
        let mut graph = Graph::default();
        let deleting = GraphChange::Upsert(Observed {
            identity: identity("ConfigMap", "a", "parent", "p"),
            being_deleted: true,
            finalizers: vec![FINALIZER_ORPHAN.into()],
            ..Observed::default()
        });
        assert_eq!(
            graph.apply(deleting.clone()).attempt_to_orphan,
            vec!["p".to_string()]
        );
        assert!(graph.apply(deleting).attempt_to_orphan.is_empty());
    }

    #[test]
    fn an_owner_in_another_namespace_is_reported_and_the_dependent_checked() {
        let mut graph = Graph::default();
        graph.apply(observed(identity("ConfigMap", "a", "parent", "p"), vec![]));
        let effects = graph.apply(observed(
            identity("Secret", "b", "child", "c"),
            vec![reference("ConfigMap", "parent", "p", false)],
        ));
        assert_eq!(effects.attempt_to_delete, vec!["c".to_string()]);
        assert_eq!(
            effects.invalid_references[0].message(),
            "ownerRef [v1/ConfigMap, namespace: b, name: parent, uid: p] does not exist in namespace \"b\""
        );
    }

    #[test]
    fn a_relist_deletes_what_vanished_while_the_watch_was_down() {
        let mut graph = Graph::default();
        graph.apply(observed(identity("ConfigMap", "a", "parent", "p"), vec![]));
        graph.apply(observed(
            identity("Secret", "a", "child", "c"),
            vec![reference("ConfigMap", "parent", "p", false)],
        ));
        let effects = graph.apply(GraphChange::Relisted {
            resource: "/configmaps".into(),
            uids: HashSet::new(),
        });
        assert_eq!(effects.attempt_to_delete, vec!["c".to_string()]);
        assert!(graph.get("p").is_none());
        assert!(graph.get("c").is_some());
    }

    #[test]
    fn dropping_the_last_reference_to_a_virtual_owner_forgets_it() {
        let mut graph = Graph::default();
        graph.apply(observed(
            identity("Secret", "a", "child", "c"),
            vec![reference("ConfigMap", "ghost", "g", false)],
        ));
        assert!(graph.get("g").is_some());
        graph.apply(observed(identity("Secret", "a", "child", "c"), vec![]));
        assert!(graph.get("g").is_none());
    }
}
