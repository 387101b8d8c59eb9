//! Node Leases in `kube-node-lease`, as kubelet keeps them: held by the node, owned by the Node object, renewed well inside their 40 s duration.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use serde_json::json;

use crate::api;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Upstream kubelet's `nodeLeaseDurationSeconds`.
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// The Lease of `node`, owned by the Node (uid `node_uid`) so it goes with it.
pub fn lease_object(node: &str, node_uid: &str, renew_time: &MicroTime) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "Node".to_string(),
                name: node.to_string(),
                uid: node_uid.to_string(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(renew_time.clone()),
            ..LeaseSpec::default()
        }),
    }
}

/// Renews the Lease, creating it when it does not exist. With `take_over`
/// the owner reference is rewritten too, for a Lease left by an earlier
/// Node of the same name.
pub async fn renew(
    client: &kube::Client,
    node: &str,
    node_uid: &str,
    renew_time: &MicroTime,
    take_over: bool,
) -> Result<(), kube::Error> {
    let lease = lease_object(node, node_uid, renew_time);
    let mut patch = json!({ "spec": lease.spec });
    if take_over {
        patch["metadata"] = json!({ "ownerReferences": lease.metadata.owner_references });
    }
    match api::patch(client, api::NODE_LEASES_PATH, node, &patch).await {
        Err(error) if api::is_status(&error, 404) => {
            let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), LEASE_NAMESPACE);
            match leases.create(&Default::default(), &lease).await {
                // Created meanwhile by an earlier, slow attempt: it is renewed.
                Err(error) if api::is_status(&error, 409) => Ok(()),
                other => other.map(drop),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_and_owned_by_its_node() {
        let now =
            MicroTime(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("valid"));
        let lease =
            serde_json::to_value(lease_object("sim-node-0", "uid-0", &now)).expect("serializes");
        assert_eq!(lease["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(lease["metadata"]["ownerReferences"][0]["uid"], "uid-0");
        assert_eq!(lease["spec"]["holderIdentity"], "sim-node-0");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(lease["spec"]["renewTime"], "2023-11-14T22:13:20.000000Z");
    }
}
