//! Recording Events about objects, as the components' EventRecorder: sent in the background, aggregated into series, and rate-limited per object like upstream's spam filter.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use tokio::sync::mpsc;

/// Upstream's EventSourceObjectSpamFilter: a burst of 25 events per object,
/// then one more every 5 minutes.
const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL_EVERY: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct EventRecorder {
    sender: mpsc::UnboundedSender<(ObjectReference, Event)>,
}

impl EventRecorder {
    /// A recorder reporting as `controller` (e.g. `deployment-controller`);
    /// its sender task lives as long as any clone of the recorder.
    pub fn new(client: Client, controller: &str) -> EventRecorder {
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: controller.into(),
                instance: None,
            },
        );
        let (sender, mut receiver) = mpsc::unbounded_channel::<(ObjectReference, Event)>();
        tokio::spawn(async move {
            let mut buckets: HashMap<String, (f64, Instant)> = HashMap::new();
            while let Some((reference, event)) = receiver.recv().await {
                let key = format!(
                    "{}/{}/{}/{}",
                    reference.kind.as_deref().unwrap_or_default(),
                    reference.namespace.as_deref().unwrap_or_default(),
                    reference.name.as_deref().unwrap_or_default(),
                    reference.uid.as_deref().unwrap_or_default(),
                );
                let now = Instant::now();
                let (tokens, last) = buckets.entry(key).or_insert((SPAM_BURST, now));
                *tokens = (*tokens
                    + now.duration_since(*last).as_secs_f64() / SPAM_REFILL_EVERY.as_secs_f64())
                .min(SPAM_BURST);
                *last = now;
                if *tokens < 1.0 {
                    continue;
                }
                *tokens -= 1.0;
                if let Err(error) = recorder.publish(&event, &reference).await {
                    tracing::debug!(%error, reason = %event.reason, "event not recorded");
                }
                if buckets.len() > 10_000 {
                    buckets.retain(|_, (tokens, _)| *tokens < SPAM_BURST);
                }
            }
        });
        EventRecorder { sender }
    }

    /// Records a Normal event about `object`.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, note: String) {
        self.publish(object.object_ref(&()), EventType::Normal, reason, note);
    }

    /// Records a Warning event about `object`.
    pub fn warning<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, note: String) {
        self.publish(object.object_ref(&()), EventType::Warning, reason, note);
    }

    /// Records an event about the object `reference` names.
    pub fn publish(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        let _ = self.sender.send((reference, event));
    }
}
