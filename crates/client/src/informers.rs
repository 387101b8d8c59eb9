//! Shared informers: one watch per resource type for the whole process, a local store of the objects, and every change handed to each subscriber.
//!
//! Controllers and the scheduler react to changes and read the store, never
//! the API, while they decide; several of them watching pods still cost one
//! watch and one copy of each pod.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Objects an informer can watch: built-in, cluster-scoped or namespaced kinds.
pub trait Watchable:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Watchable for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// One change to a watched object, as a subscriber receives it.
#[derive(Debug)]
pub enum Change<K> {
    /// Added (`old` is `None`) or modified. After a watch had to list again,
    /// every listed object arrives as applied once more.
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    /// Removed; the last state seen.
    Deleted(Arc<K>),
}

impl<K> Change<K> {
    /// The object as it is now, or as it was last seen when deleted.
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Applied { new, .. } => new,
            Change::Deleted(old) => old,
        }
    }
}

/// The store and subscriptions of one resource type.
pub struct Informer<K: Watchable> {
    store: Store<K>,
    shared: Arc<Subscribers<K>>,
    synced: watch::Receiver<bool>,
}

impl<K: Watchable> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            shared: self.shared.clone(),
            synced: self.synced.clone(),
        }
    }
}

struct Subscribers<K> {
    /// Held while the store changes and the change is sent, so a new
    /// subscriber's replay of the store and the live changes never overlap.
    senders: Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>,
}

impl<K> Subscribers<K> {
    fn lock(&self) -> MutexGuard<'_, Vec<mpsc::UnboundedSender<Change<K>>>> {
        self.senders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn send_all<K>(
    senders: &mut Vec<mpsc::UnboundedSender<Change<K>>>,
    change: impl Fn() -> Change<K>,
) {
    senders.retain(|sender| sender.send(change()).is_ok());
}

impl<K: Watchable> Informer<K> {
    /// The objects as last seen (read-only; empty until the first list).
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Every change from now on, preceded by the objects already in the
    /// store as `Applied` with no old state.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change<K>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut senders = self.shared.lock();
        for object in self.store.state() {
            let _ = sender.send(Change::Applied {
                old: None,
                new: object,
            });
        }
        senders.push(sender);
        receiver
    }

    /// Waits until the first list is in the store.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|synced| *synced).await;
    }

    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }
}

/// The informers of one process, keyed by type; each watches from when the
/// informers start (or at once, when created after the start).
pub struct Informers {
    client: Client,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    informers: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    not_started: Vec<Box<dyn FnOnce() -> JoinHandle<()> + Send>>,
    synced: Vec<watch::Receiver<bool>>,
    tasks: Vec<JoinHandle<()>>,
    started: bool,
}

impl Informers {
    pub fn new(client: Client) -> Informers {
        Informers {
            client,
            registry: Mutex::new(Registry::default()),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The informer of `K` across all namespaces, created on first use.
    pub fn informer<K: Watchable>(&self) -> Informer<K> {
        let mut registry = self.registry();
        if let Some(informer) = registry
            .informers
            .get(&TypeId::of::<K>())
            .and_then(|existing| existing.downcast_ref::<Informer<K>>())
        {
            return informer.clone();
        }
        let (store, writer) = reflector::store::<K>();
        let (synced_sender, synced) = watch::channel(false);
        let informer = Informer {
            store,
            shared: Arc::new(Subscribers {
                senders: Mutex::new(Vec::new()),
            }),
            synced: synced.clone(),
        };
        let api: Api<K> = Api::all(self.client.clone());
        let shared = informer.shared.clone();
        let start = move || tokio::spawn(watch_into(api, writer, shared, synced_sender));
        if registry.started {
            let task = start();
            registry.tasks.push(task);
        } else {
            registry.not_started.push(Box::new(start));
        }
        registry.synced.push(synced);
        registry
            .informers
            .insert(TypeId::of::<K>(), Box::new(informer.clone()));
        informer
    }

    /// Starts every informer created so far; later ones start when created.
    pub fn start(&self) {
        let mut registry = self.registry();
        registry.started = true;
        let starts = std::mem::take(&mut registry.not_started);
        for start in starts {
            let task = start();
            registry.tasks.push(task);
        }
    }

    /// Waits until every informer created so far has listed once.
    pub async fn wait_synced(&self) {
        let receivers = self.registry().synced.clone();
        for mut synced in receivers {
            let _ = synced.wait_for(|synced| *synced).await;
        }
    }
}

impl Drop for Informers {
    fn drop(&mut self) {
        for task in &self.registry().tasks {
            task.abort();
        }
    }
}

async fn watch_into<K: Watchable>(
    api: Api<K>,
    mut writer: reflector::store::Writer<K>,
    shared: Arc<Subscribers<K>>,
    synced: watch::Sender<bool>,
) {
    let store = writer.as_reader();
    // Big pages: each page is one round trip, and the server streams them.
    let config = watcher::Config::default().page_size(5_000);
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut listed: Vec<ObjectRef<K>> = Vec::new();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying");
                continue;
            }
        };
        let mut senders = shared.lock();
        match &event {
            watcher::Event::Init => {
                listed.clear();
                writer.apply_watcher_event(&event);
            }
            watcher::Event::InitApply(object) => {
                listed.push(ObjectRef::from_obj(object));
                writer.apply_watcher_event(&event);
            }
            watcher::Event::InitDone => {
                let before: HashMap<ObjectRef<K>, Arc<K>> = store
                    .state()
                    .into_iter()
                    .map(|object| (ObjectRef::from_obj(object.as_ref()), object))
                    .collect();
                writer.apply_watcher_event(&event);
                let now: HashSet<&ObjectRef<K>> = listed.iter().collect();
                for (key, old) in &before {
                    if !now.contains(key) {
                        send_all(&mut senders, || Change::Deleted(old.clone()));
                    }
                }
                for key in listed.drain(..) {
                    if let Some(new) = store.get(&key) {
                        let old = before.get(&key).cloned();
                        send_all(&mut senders, || Change::Applied {
                            old: old.clone(),
                            new: new.clone(),
                        });
                    }
                }
                synced.send_replace(true);
            }
            watcher::Event::Apply(object) => {
                let key = ObjectRef::from_obj(object);
                let old = store.get(&key);
                writer.apply_watcher_event(&event);
                if let Some(new) = store.get(&key) {
                    send_all(&mut senders, || Change::Applied {
                        old: old.clone(),
                        new: new.clone(),
                    });
                }
            }
            watcher::Event::Delete(object) => {
                let key = ObjectRef::from_obj(object);
                let last = store.get(&key).unwrap_or_else(|| Arc::new(object.clone()));
                writer.apply_watcher_event(&event);
                send_all(&mut senders, || Change::Deleted(last.clone()));
            }
        }
    }
}
