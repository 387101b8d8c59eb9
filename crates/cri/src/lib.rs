//! The kubelet's CRI v1 client: a container runtime's `RuntimeService` and
//! `ImageService` (containerd's, over its unix socket) behind the
//! [`RuntimeService`] and [`ImageService`] traits, and an in-memory
//! [`fake::FakeRuntime`] for tests of code that drives them.
//!
//! Only this crate speaks gRPC; its users see CRI's message types
//! ([`api`]) and [`CriError`].
//!
//! ```no_run
//! use cri::{ImageService, RuntimeService};
//!
//! # async fn example() -> Result<(), cri::CriError> {
//! let runtime = cri::connect("unix:///run/containerd/containerd.sock").await?;
//! let version = runtime.version().await?;
//! println!("{} {}", version.runtime_name, version.runtime_version);
//! match runtime.pull_image(cri::image_spec("busybox"), None, None).await {
//!     Ok(image_ref) => println!("pulled {image_ref}"),
//!     Err(error) => println!("ErrImagePull ({:?}): {error}", error.pull_failure()),
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
pub mod fake;
mod service;

pub use k8s_cri::v1 as api;

pub use client::{
    CriClient, CriClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PULL_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, connect, connect_with_options,
};
pub use error::{CriError, ErrorCode, PullFailure};
pub use service::{ExecSyncOutput, ImageService, RuntimeService, image_spec};
