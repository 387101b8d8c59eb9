//! Image garbage collection, as the kubelet's image manager does it: when the image filesystem is fuller than the high threshold, unused images (no container, running or dead, refers to them) are removed, least recently used first, until usage is under the low threshold; images younger than the minimum age and the sandbox image are never removed.

use std::collections::HashMap;
use std::time::Duration;

use cri::api;
use jiff::Timestamp;

use crate::sync::Runtime;

/// `--image-gc-high-threshold`, `--image-gc-low-threshold` (percent of the
/// image filesystem) and the kubelet's `imageMinimumGCAge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageGcPolicy {
    pub high_threshold_percent: u8,
    pub low_threshold_percent: u8,
    pub minimum_age: Duration,
    /// How often usage is checked (upstream: 5 min).
    pub period: Duration,
}

impl Default for ImageGcPolicy {
    fn default() -> ImageGcPolicy {
        ImageGcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            minimum_age: Duration::from_secs(120),
            period: Duration::from_secs(300),
        }
    }
}

/// What the collector knows of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: String,
    pub size_bytes: u64,
    pub in_use: bool,
    /// The sandbox image, or one the runtime pins.
    pub pinned: bool,
    pub first_detected: Timestamp,
    pub last_used: Timestamp,
}

/// The images to remove to free `bytes_to_free`, in order: unused,
/// unpinned, old enough, least recently used first (then oldest seen).
pub fn images_to_remove(
    images: &[ImageRecord],
    bytes_to_free: u64,
    now: Timestamp,
    minimum_age: Duration,
) -> Vec<String> {
    let mut candidates: Vec<&ImageRecord> = images
        .iter()
        .filter(|image| !image.in_use && !image.pinned)
        .filter(|image| now.duration_since(image.first_detected).unsigned_abs() >= minimum_age)
        .collect();
    candidates.sort_by_key(|image| (image.last_used, image.first_detected));
    let mut freed = 0;
    let mut chosen = Vec::new();
    for image in candidates {
        if freed >= bytes_to_free {
            break;
        }
        freed += image.size_bytes;
        chosen.push(image.id.clone());
    }
    chosen
}

/// How many bytes must go to bring the filesystem's usage from `high`
/// percent or more down to `low` percent, as upstream reckons it (usage is
/// what is not available); zero below `high`.
pub fn bytes_to_free(available: u64, capacity: u64, high: u8, low: u8) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let usage_percent = 100 - (available.min(capacity) * 100 / capacity);
    if usage_percent < u64::from(high) {
        return 0;
    }
    (capacity * u64::from(100 - low.min(100)) / 100).saturating_sub(available)
}

/// The collector's memory of when images were first seen and last used.
#[derive(Default)]
pub struct ImageTracker {
    seen: HashMap<String, (Timestamp, Timestamp)>,
}

impl ImageTracker {
    /// Updates the records from the runtime's images and containers.
    fn observe(
        &mut self,
        images: &[api::Image],
        containers: &[api::Container],
        sandbox_image: &str,
        now: Timestamp,
    ) -> Vec<ImageRecord> {
        let mut records = Vec::new();
        let mut present = Vec::new();
        for image in images {
            let in_use = containers.iter().any(|container| {
                container.image_ref == image.id
                    || container
                        .image
                        .as_ref()
                        .is_some_and(|spec| spec.image == image.id)
            });
            let entry = self.seen.entry(image.id.clone()).or_insert((now, now));
            if in_use {
                entry.1 = now;
            }
            let pinned = image.pinned
                || image
                    .repo_tags
                    .iter()
                    .chain(image.repo_digests.iter())
                    .any(|name| name == sandbox_image);
            records.push(ImageRecord {
                id: image.id.clone(),
                size_bytes: image.size,
                in_use,
                pinned,
                first_detected: entry.0,
                last_used: entry.1,
            });
            present.push(image.id.clone());
        }
        self.seen.retain(|id, _| present.contains(id));
        records
    }
}

/// Runs the collector every `policy.period`, forever.
pub async fn run(
    runtime: std::sync::Arc<dyn Runtime>,
    policy: ImageGcPolicy,
    sandbox_image: String,
) {
    let mut tracker = ImageTracker::default();
    loop {
        if let Err(error) =
            collect_once(runtime.as_ref(), &policy, &sandbox_image, &mut tracker).await
        {
            tracing::warn!(%error, "image garbage collection");
        }
        tokio::time::sleep(policy.period).await;
    }
}

/// One check: removes unused images if the image filesystem is over the
/// high threshold.
pub async fn collect_once(
    runtime: &dyn Runtime,
    policy: &ImageGcPolicy,
    sandbox_image: &str,
    tracker: &mut ImageTracker,
) -> anyhow::Result<()> {
    let images = runtime.list_images(None).await?;
    let containers = runtime.list_containers(None).await?;
    let now = Timestamp::now();
    let records = tracker.observe(&images, &containers, sandbox_image, now);
    let filesystems = runtime.image_fs_info().await?;
    let mut used = 0;
    let mut capacity = 0;
    for usage in &filesystems.image_filesystems {
        used += usage
            .used_bytes
            .as_ref()
            .map(|value| value.value)
            .unwrap_or(0);
        if let Some(mountpoint) = usage.fs_id.as_ref().map(|id| id.mountpoint.clone()) {
            capacity +=
                crate::host::filesystem_stats(std::path::Path::new(&mountpoint)).capacity_bytes;
        }
    }
    let needed = bytes_to_free(
        used,
        capacity,
        policy.high_threshold_percent,
        policy.low_threshold_percent,
    );
    if needed == 0 {
        return Ok(());
    }
    tracing::info!(
        used,
        capacity,
        needed,
        "image filesystem over the high threshold"
    );
    for id in images_to_remove(&records, needed, now, policy.minimum_age) {
        match runtime
            .remove_image(api::ImageSpec {
                image: id.clone(),
                ..api::ImageSpec::default()
            })
            .await
        {
            Ok(()) => tracing::info!(image = %id, "removed an unused image"),
            Err(error) => tracing::warn!(image = %id, %error, "removing an unused image"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        id: &str,
        size: u64,
        in_use: bool,
        pinned: bool,
        age_s: i64,
        used_s_ago: i64,
    ) -> ImageRecord {
        let now = Timestamp::from_second(10_000).unwrap();
        ImageRecord {
            id: id.into(),
            size_bytes: size,
            in_use,
            pinned,
            first_detected: now - jiff::SignedDuration::from_secs(age_s),
            last_used: now - jiff::SignedDuration::from_secs(used_s_ago),
        }
    }

    #[test]
    fn usage_over_the_high_threshold_frees_down_to_the_low_one() {
        // 84% used: below the threshold.
        assert_eq!(bytes_to_free(16, 100, 85, 80), 0);
        // 90% used: free down to 80%.
        assert_eq!(bytes_to_free(10, 100, 85, 80), 10);
        assert_eq!(bytes_to_free(5, 0, 85, 80), 0);
        // Thresholds of zero free everything that is used.
        assert_eq!(bytes_to_free(60, 100, 0, 0), 40);
    }

    #[test]
    fn the_least_recently_used_unused_old_enough_images_go_first() {
        let now = Timestamp::from_second(10_000).unwrap();
        let images = [
            record("in-use", 100, true, false, 1000, 0),
            record("pause", 100, false, true, 1000, 900),
            record("young", 100, false, false, 30, 30),
            record("recent", 100, false, false, 1000, 10),
            record("stale", 100, false, false, 1000, 500),
            record("stalest", 50, false, false, 1000, 800),
        ];
        let minimum = Duration::from_secs(120);
        assert_eq!(
            images_to_remove(&images, 120, now, minimum),
            ["stalest", "stale"]
        );
        assert_eq!(
            images_to_remove(&images, 10_000, now, minimum),
            ["stalest", "stale", "recent"]
        );
        assert!(images_to_remove(&images, 0, now, minimum).is_empty());
    }

    #[test]
    fn the_tracker_marks_use_and_the_sandbox_image() {
        let mut tracker = ImageTracker::default();
        let image = |id: &str, tag: &str| api::Image {
            id: id.into(),
            repo_tags: vec![tag.into()],
            size: 10,
            ..api::Image::default()
        };
        let images = [
            image("sha256:p", "registry.k8s.io/pause:3.10"),
            image("sha256:b", "busybox:latest"),
        ];
        let containers = [api::Container {
            image_ref: "sha256:b".into(),
            ..api::Container::default()
        }];
        let t0 = Timestamp::from_second(1_000).unwrap();
        let records = tracker.observe(&images, &containers, "registry.k8s.io/pause:3.10", t0);
        assert!(records[0].pinned && !records[0].in_use);
        assert!(records[1].in_use && !records[1].pinned);
        let t1 = Timestamp::from_second(2_000).unwrap();
        let records = tracker.observe(&images, &[], "registry.k8s.io/pause:3.10", t1);
        assert_eq!((records[1].first_detected, records[1].last_used), (t0, t0));
    }
}
