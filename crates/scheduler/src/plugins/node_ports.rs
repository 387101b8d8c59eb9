//! NodePorts: a pod's host ports must be free on the node, per protocol and address (0.0.0.0 conflicts with every address).

use crate::pod_info::HostPort;
use crate::snapshot::NodeInfo;
use crate::status::{Code, Status};

pub const NAME: &str = "NodePorts";
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub fn filter(node: &NodeInfo, wanted: &[HostPort]) -> Result<(), Status> {
    let used = node.used_ports();
    if wanted
        .iter()
        .any(|want| used.iter().any(|u| want.conflicts_with(u)))
    {
        return Err(Status::new(Code::Unschedulable, NAME, REASON));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{NodeBuilder, PodBuilder};
    use crate::testing::{feasible, schedule, snapshot_of};

    #[test]
    fn host_ports_conflict_by_protocol_address_and_port() {
        let nodes = || {
            vec![
                NodeBuilder::new("n1").build(),
                NodeBuilder::new("n2").build(),
            ]
        };
        let cases = [
            // (existing on n1, incoming, feasible nodes)
            (
                PodBuilder::new("e").host_port(80),
                PodBuilder::new("p").host_port(80),
                vec!["n2"],
            ),
            (
                PodBuilder::new("e").host_port(80),
                PodBuilder::new("p").host_port(81),
                vec!["n1", "n2"],
            ),
            (
                PodBuilder::new("e").host_port(80),
                PodBuilder::new("p").host_port_on(80, "", "UDP"),
                vec!["n1", "n2"],
            ),
            (
                PodBuilder::new("e").host_port_on(80, "10.0.0.1", "TCP"),
                PodBuilder::new("p").host_port_on(80, "10.0.0.2", "TCP"),
                vec!["n1", "n2"],
            ),
            (
                PodBuilder::new("e").host_port_on(80, "10.0.0.1", "TCP"),
                PodBuilder::new("p").host_port_on(80, "10.0.0.1", "TCP"),
                vec!["n2"],
            ),
            // 0.0.0.0 collides with every address, either way round.
            (
                PodBuilder::new("e").host_port_on(80, "10.0.0.1", "TCP"),
                PodBuilder::new("p").host_port(80),
                vec!["n2"],
            ),
            (
                PodBuilder::new("e").host_port(80),
                PodBuilder::new("p").host_port_on(80, "10.0.0.1", "TCP"),
                vec!["n2"],
            ),
        ];
        for (i, (existing, incoming, want)) in cases.into_iter().enumerate() {
            let snapshot = snapshot_of(nodes(), vec![existing.node("n1").build()]);
            assert_eq!(
                feasible(&snapshot, &incoming.build()),
                Ok(want.iter().map(|s| s.to_string()).collect()),
                "case {i}"
            );
        }
        let snapshot = snapshot_of(
            vec![NodeBuilder::new("n1").build()],
            vec![PodBuilder::new("e").host_port(80).node("n1").build()],
        );
        assert_eq!(
            schedule(&snapshot, &PodBuilder::new("p").host_port(80).build()),
            Err("0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.".into())
        );
    }
}
