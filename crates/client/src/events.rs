//! Recording Events about objects, as client-go's recorder does: core/v1 Events sent in the background, repeats of the same event counted on one object, and a per-object spam filter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use tokio::sync::{Semaphore, mpsc};

/// Upstream's EventSourceObjectSpamFilter: a burst of 25 events per object,
/// then one more every 5 minutes.
const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL_EVERY: Duration = Duration::from_secs(300);
/// How long a repeat still counts on the earlier event (client-go keeps
/// its correlation cache about this long).
const REPEAT_WINDOW: Duration = Duration::from_secs(600);
/// Remembered events and spam buckets; the oldest go beyond this.
const MEMORY: usize = 4096;
/// Event writes in flight at once.
const IN_FLIGHT: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

struct Record {
    reference: ObjectReference,
    type_: EventType,
    reason: String,
    message: String,
}

/// The identity of an event: the same object, type, reason and message.
type EventKey = (String, &'static str, String, String);

struct Sent {
    name: String,
    namespace: String,
    count: i32,
    first: jiff::Timestamp,
    at: Instant,
}

#[derive(Clone)]
pub struct EventRecorder {
    sender: mpsc::UnboundedSender<Record>,
}

impl EventRecorder {
    /// A recorder reporting as `component` (e.g. `deployment-controller`);
    /// its sender task lives as long as any clone of the recorder.
    pub fn new(client: Client, component: &str) -> EventRecorder {
        let (sender, receiver) = mpsc::unbounded_channel::<Record>();
        tokio::spawn(send_events(client, component.to_string(), receiver));
        EventRecorder { sender }
    }

    /// Records a Normal event about `object`.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, message: String) {
        self.publish(object.object_ref(&()), EventType::Normal, reason, message);
    }

    /// Records a Warning event about `object`.
    pub fn warning<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        message: String,
    ) {
        self.publish(object.object_ref(&()), EventType::Warning, reason, message);
    }

    /// Records an event about the object `reference` names.
    pub fn publish(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        let _ = self.sender.send(Record {
            reference,
            type_,
            reason: reason.into(),
            message,
        });
    }
}

fn object_key(reference: &ObjectReference) -> String {
    format!(
        "{}/{}/{}/{}",
        reference.kind.as_deref().unwrap_or_default(),
        reference.namespace.as_deref().unwrap_or_default(),
        reference.name.as_deref().unwrap_or_default(),
        reference.uid.as_deref().unwrap_or_default(),
    )
}

async fn send_events(
    client: Client,
    component: String,
    mut receiver: mpsc::UnboundedReceiver<Record>,
) {
    let mut buckets: HashMap<String, (f64, Instant)> = HashMap::new();
    let mut sent: HashMap<EventKey, Sent> = HashMap::new();
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(record) = receiver.recv().await {
        let now = Instant::now();
        let object = object_key(&record.reference);
        let (tokens, last) = buckets.entry(object.clone()).or_insert((SPAM_BURST, now));
        *tokens = (*tokens
            + now.duration_since(*last).as_secs_f64() / SPAM_REFILL_EVERY.as_secs_f64())
        .min(SPAM_BURST);
        *last = now;
        if *tokens < 1.0 {
            continue;
        }
        *tokens -= 1.0;
        if buckets.len() > MEMORY {
            buckets.retain(|_, (tokens, _)| *tokens < SPAM_BURST);
        }

        let key: EventKey = (
            object,
            record.type_.as_str(),
            record.reason.clone(),
            record.message.clone(),
        );
        let timestamp = jiff::Timestamp::now();
        let repeat = sent
            .get_mut(&key)
            .filter(|earlier| now.duration_since(earlier.at) < REPEAT_WINDOW)
            .map(|earlier| {
                earlier.count += 1;
                earlier.at = now;
                (
                    earlier.name.clone(),
                    earlier.namespace.clone(),
                    earlier.count,
                    earlier.first,
                )
            });
        let namespace = record
            .reference
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let (name, count, first) = match repeat {
            Some((name, _, count, first)) => (name, count, first),
            None => {
                let name = format!(
                    "{}.{:x}",
                    record.reference.name.as_deref().unwrap_or(&component),
                    timestamp.as_nanosecond()
                );
                if sent.len() >= MEMORY {
                    let oldest = sent
                        .iter()
                        .min_by_key(|(_, s)| s.at)
                        .map(|(k, _)| k.clone());
                    if let Some(oldest) = oldest {
                        sent.remove(&oldest);
                    }
                }
                sent.insert(
                    key,
                    Sent {
                        name: name.clone(),
                        namespace: namespace.clone(),
                        count: 1,
                        first: timestamp,
                        at: now,
                    },
                );
                (name, 1, timestamp)
            }
        };
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: record.reference,
            reason: Some(record.reason),
            message: Some(record.message),
            type_: Some(record.type_.as_str().into()),
            source: Some(EventSource {
                component: Some(component.clone()),
                host: None,
            }),
            first_timestamp: Some(Time(first)),
            last_timestamp: Some(Time(timestamp)),
            count: Some(count),
            reporting_component: Some(component.clone()),
            reporting_instance: Some(component.clone()),
            ..Event::default()
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        tokio::spawn(async move {
            write_event(&api, event).await;
            drop(permit);
        });
    }
}

/// Creates the event, or counts a repeat on the existing one (creating it
/// if it has gone meanwhile).
async fn write_event(api: &Api<Event>, event: Event) {
    let name = event.metadata.name.clone().unwrap_or_default();
    let result = if event.count.unwrap_or(1) > 1 {
        let patch = serde_json::json!({
            "count": event.count,
            "lastTimestamp": event.last_timestamp,
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 404 => {
                api.create(&PostParams::default(), &event).await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    } else {
        api.create(&PostParams::default(), &event).await.map(|_| ())
    };
    if let Err(error) = result {
        tracing::debug!(%error, event = %name, "event not recorded");
    }
}
