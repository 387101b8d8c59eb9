//! ImageLocality: prefer nodes that already have the pod's images, weighted by size and by how widely the image is spread.

use k8s_openapi::api::core::v1::Pod;

use crate::snapshot::{NodeInfo, Snapshot};

use super::MAX_NODE_SCORE;

pub const NAME: &str = "ImageLocality";

const MB: i64 = 1024 * 1024;
/// Below this, image sizes count as nothing: small images pull quickly.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container, sizes above this count as this.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// The pod's images that some node has, resolved once per cycle.
pub struct ImageScorer {
    /// (image id, fraction of all nodes that have it), one per container.
    images: Vec<(u32, f64)>,
    num_containers: i64,
}

impl ImageScorer {
    /// `None` when no node has any of the pod's images: every node would
    /// score 0.
    pub fn new(pod: &Pod, snapshot: &Snapshot) -> Option<ImageScorer> {
        let spec = pod.spec.as_ref()?;
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter());
        let total_nodes = snapshot.num_nodes().max(1) as f64;
        let mut images = Vec::new();
        let mut num_containers = 0;
        for container in containers {
            num_containers += 1;
            let name = normalized_image_name(container.image.as_deref().unwrap_or(""));
            if let Some(id) = snapshot.image_id(&name) {
                let spread = f64::from(snapshot.image_node_count(id)) / total_nodes;
                if spread > 0.0 {
                    images.push((id, spread));
                }
            }
        }
        (!images.is_empty()).then_some(ImageScorer {
            images,
            num_containers,
        })
    }

    pub fn score(&self, node: &NodeInfo) -> i64 {
        let sum: i64 = self
            .images
            .iter()
            .filter_map(|(id, spread)| {
                node.image_size(*id)
                    .map(|size| (size as f64 * spread) as i64)
            })
            .sum();
        let max_threshold = MAX_CONTAINER_THRESHOLD * self.num_containers;
        let clamped = sum.clamp(MIN_THRESHOLD, max_threshold.max(MIN_THRESHOLD));
        if max_threshold <= MIN_THRESHOLD {
            return 0;
        }
        MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
    }
}

/// Upstream's `normalizedImageName`: an image without a tag gets ":latest".
fn normalized_image_name(name: &str) -> String {
    let colon = name.rfind(':').map_or(-1, |i| i as i64);
    let slash = name.rfind('/').map_or(-1, |i| i as i64);
    if colon <= slash {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::normalized_image_name;

    #[test]
    fn untagged_images_mean_latest() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(
            normalized_image_name("registry:5000/nginx"),
            "registry:5000/nginx:latest"
        );
        assert_eq!(normalized_image_name("nginx:1.27"), "nginx:1.27");
        assert_eq!(
            normalized_image_name("nginx@sha256:abc"),
            "nginx@sha256:abc"
        );
    }
}

#[cfg(test)]
mod scoring_tests {
    use crate::fixtures::{NodeBuilder, PodBuilder};
    use crate::testing::{scores, scoring_only, snapshot_of};

    const MB: i64 = 1024 * 1024;

    #[test]
    fn larger_and_more_widespread_images_score_higher() {
        let snapshot = snapshot_of(
            vec![
                NodeBuilder::new("n1")
                    .image(&["app:1.0", "app@sha256:abc"], 500 * MB)
                    .build(),
                NodeBuilder::new("n2").image(&["tiny:1"], 10 * MB).build(),
                NodeBuilder::new("n3").build(),
                NodeBuilder::new("n4").image(&["app:1.0"], 500 * MB).build(),
            ],
            vec![],
        );
        let framework = scoring_only(|w| w.image_locality = 1);
        // app:1.0 is on 2 of 4 nodes: 250MB counts; 100 * (250 - 23) / (1000 - 23) = 23.
        assert_eq!(
            scores(
                &framework,
                &snapshot,
                &PodBuilder::new("p").image("app:1.0").build()
            ),
            [23, 0, 0, 23]
        );
        // Below 23MB counts as nothing.
        assert_eq!(
            scores(
                &framework,
                &snapshot,
                &PodBuilder::new("p").image("tiny:1").build()
            ),
            [0, 0, 0, 0]
        );
        // An untagged image means :latest, which no node has.
        assert_eq!(
            scores(
                &framework,
                &snapshot,
                &PodBuilder::new("p").image("app").build()
            ),
            [0, 0, 0, 0]
        );
    }
}
