//! The scheduler: kube-scheduler's default filter and score plugins over an in-memory snapshot of nodes and pods, preemption, and the loop that binds pods through the API.

mod counts;
pub mod fixtures;
pub mod framework;
pub mod labels;
pub mod perf;
pub mod plugins;
pub mod pod_info;
pub mod preemption;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod run;
pub mod snapshot;
pub mod status;
#[cfg(test)]
mod testing;

pub use framework::{Framework, PluginWeights, Profile, ScheduleResult};
pub use preemption::{Preemption, PreemptionPlan};
pub use snapshot::{ControllerKind, NodeInfo, Snapshot};
pub use status::{Code, FitError, Status};
