//! The garbage collector (ownerReferences graph, Background/Foreground/Orphan) and the namespace controller.

pub mod conditions;
pub mod discovery;
pub mod garbagecollector;
pub mod graph;
pub mod namespace;

pub use garbagecollector::{GarbageCollectorConfig, run as run_garbage_collector};
pub use namespace::{NamespaceConfig, run as run_namespaces};

/// Stops a queue's workers when the controller's future is dropped.
pub(crate) struct ShutDownOnDrop<T: Clone + Eq + std::hash::Hash + Send + 'static>(
    pub client::WorkQueue<T>,
);

impl<T: Clone + Eq + std::hash::Hash + Send + 'static> Drop for ShutDownOnDrop<T> {
    fn drop(&mut self) {
        self.0.shut_down();
    }
}
