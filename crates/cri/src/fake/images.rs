//! The fake's `ImageService`: a set of present images, pulls that add to it
//! (or fail as told), containerd's answers for absent and invalid names.

use async_trait::async_trait;

use super::{FakeRuntime, IMAGE_FILESYSTEM, Image, Method, State, reference};
use crate::api;
use crate::error::{CriError, ErrorCode};
use crate::service::ImageService;

impl State {
    /// The present image `wanted` names (a tag, a digest reference or an
    /// id, with or without `sha256:`).
    fn find_image(&self, wanted: &str) -> Option<usize> {
        if wanted.is_empty() {
            return None;
        }
        let by_id = self.images.iter().position(|image| {
            image.id == wanted || image.id.strip_prefix("sha256:") == Some(wanted)
        });
        by_id.or_else(|| {
            let name = reference::normalize(wanted).ok()?;
            self.images.iter().position(|image| {
                image.repo_tags.contains(&name) || image.repo_digests.contains(&name)
            })
        })
    }

    /// What a container made from `wanted` shows as its image (the
    /// normalized name, or the image's first tag when named by id) and its
    /// image ref (the id).
    pub(super) fn resolve_local_image(&self, wanted: &str) -> Option<(String, String)> {
        let image = &self.images[self.find_image(wanted)?];
        let name = match reference::normalize(wanted) {
            Ok(name) if image.repo_tags.contains(&name) || image.repo_digests.contains(&name) => {
                name
            }
            _ => image
                .repo_tags
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.clone()),
        };
        Some((name, image.id.clone()))
    }
}

impl Image {
    fn to_api(&self) -> api::Image {
        api::Image {
            id: self.id.clone(),
            repo_tags: self.repo_tags.clone(),
            repo_digests: self.repo_digests.clone(),
            size: self.size,
            ..Default::default()
        }
    }
}

#[async_trait]
impl ImageService for FakeRuntime {
    /// Unlike containerd 1.6, which ignores the filter, this honours it.
    async fn list_images(
        &self,
        filter: Option<api::ImageFilter>,
    ) -> Result<Vec<api::Image>, CriError> {
        let mut state = self.lock();
        state.begin(Method::ListImages, "", String::new())?;
        let wanted = filter
            .and_then(|filter| filter.image)
            .map(|image| image.image)
            .unwrap_or_default();
        if wanted.is_empty() {
            return Ok(state.images.iter().map(Image::to_api).collect());
        }
        Ok(state
            .find_image(&wanted)
            .map(|index| vec![state.images[index].to_api()])
            .unwrap_or_default())
    }

    async fn image_status(
        &self,
        image: api::ImageSpec,
        verbose: bool,
    ) -> Result<api::ImageStatusResponse, CriError> {
        let mut state = self.lock();
        state.begin(Method::ImageStatus, &image.image, String::new())?;
        let found = state
            .find_image(&image.image)
            .map(|index| state.images[index].to_api());
        let info = match (&found, verbose) {
            (Some(found), true) => {
                [("info".to_string(), format!("{{\"id\":\"{}\"}}", found.id))].into()
            }
            _ => Default::default(),
        };
        Ok(api::ImageStatusResponse { image: found, info })
    }

    async fn pull_image(
        &self,
        image: api::ImageSpec,
        _auth: Option<api::AuthConfig>,
        _sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let method = Method::PullImage;
        let mut state = self.lock();
        state.begin(method, &image.image, String::new())?;
        let name = reference::normalize(&image.image).map_err(|reason| {
            CriError::new(
                method.name(),
                ErrorCode::Unknown,
                format!(
                    "failed to parse image reference \"{}\": {reason}",
                    image.image
                ),
            )
        })?;
        if let Some(failure) = state.pull_failures.get(&name) {
            return Err(failure.clone());
        }
        Ok(state.add_image(&name))
    }

    async fn remove_image(&self, image: api::ImageSpec) -> Result<(), CriError> {
        let mut state = self.lock();
        state.begin(Method::RemoveImage, &image.image, String::new())?;
        // containerd removes every name of the image, and treats an absent
        // image as removed.
        if let Some(index) = state.find_image(&image.image) {
            state.images.remove(index);
        }
        Ok(())
    }

    async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse, CriError> {
        let mut state = self.lock();
        state.begin(Method::ImageFsInfo, "", String::new())?;
        let timestamp = state.now();
        let used_bytes = state.images.iter().map(|image| image.size).sum();
        Ok(api::ImageFsInfoResponse {
            image_filesystems: vec![api::FilesystemUsage {
                timestamp,
                fs_id: Some(api::FilesystemIdentifier {
                    mountpoint: IMAGE_FILESYSTEM.to_string(),
                }),
                used_bytes: Some(api::UInt64Value { value: used_bytes }),
                inodes_used: Some(api::UInt64Value {
                    value: state.images.len() as u64,
                }),
            }],
            container_filesystems: Vec::new(),
        })
    }
}
