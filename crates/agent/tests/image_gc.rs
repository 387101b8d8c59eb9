//! Image garbage collection against a real (private) containerd: over the high threshold, unused images go and the sandbox image stays.

use std::time::Duration;

use agent::image_gc::{ImageGcPolicy, ImageTracker, collect_once};
use containerd::testing::PrivateContainerd;
use cri::ImageService;

fn has(images: &[cri::api::Image], name: &str) -> bool {
    images
        .iter()
        .any(|image| image.repo_tags.iter().any(|tag| tag == name))
}

#[tokio::test(flavor = "multi_thread")]
async fn unused_images_go_and_the_sandbox_image_stays() -> anyhow::Result<()> {
    let containerd = PrivateContainerd::start().await?;
    let client = cri::connect(&containerd.endpoint()).await?;
    let images = client.list_images(None).await?;
    assert!(has(&images, containerd::BUSYBOX_IMAGE), "{images:?}");
    assert!(has(&images, containerd::PAUSE_IMAGE), "{images:?}");

    // Under the threshold nothing goes.
    let relaxed = ImageGcPolicy {
        high_threshold_percent: 100,
        low_threshold_percent: 100,
        minimum_age: Duration::ZERO,
        period: Duration::from_secs(1),
    };
    let mut tracker = ImageTracker::default();
    collect_once(&client, &relaxed, containerd::PAUSE_IMAGE, &mut tracker).await?;
    assert!(has(
        &client.list_images(None).await?,
        containerd::BUSYBOX_IMAGE
    ));

    // Over it, busybox (no container uses it) goes; the pinned pause stays.
    let eager = ImageGcPolicy {
        high_threshold_percent: 0,
        low_threshold_percent: 0,
        ..relaxed
    };
    collect_once(&client, &eager, containerd::PAUSE_IMAGE, &mut tracker).await?;
    let left = client.list_images(None).await?;
    assert!(!has(&left, containerd::BUSYBOX_IMAGE), "{left:?}");
    assert!(has(&left, containerd::PAUSE_IMAGE), "{left:?}");
    containerd.shutdown().await;
    Ok(())
}
