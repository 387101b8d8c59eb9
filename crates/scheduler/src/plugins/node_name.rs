//! NodeName: a pod that names its node (`spec.nodeName`) fits only that node.

use crate::snapshot::NodeInfo;
use crate::status::{Code, Status};

pub const NAME: &str = "NodeName";
pub const REASON: &str = "node(s) didn't match the requested node name";

pub fn filter(node: &NodeInfo, wanted: Option<&str>) -> Result<(), Status> {
    match wanted {
        Some(name) if name != node.name() => Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            NAME,
            REASON,
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{NodeBuilder, PodBuilder};
    use crate::testing::{feasible, schedule, snapshot_of};

    #[test]
    fn only_the_named_node_fits() {
        let snapshot = snapshot_of(
            vec![
                NodeBuilder::new("n1").build(),
                NodeBuilder::new("n2").build(),
            ],
            vec![],
        );
        let pod = PodBuilder::new("p").node("n2").build();
        assert_eq!(feasible(&snapshot, &pod), Ok(vec!["n2".to_string()]));
        let pod = PodBuilder::new("p").node("gone").build();
        assert_eq!(
            schedule(&snapshot, &pod),
            Err("0/2 nodes are available: 2 node(s) didn't match the requested node name.".into())
        );
    }
}
