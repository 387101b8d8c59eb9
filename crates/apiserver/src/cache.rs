//! The watch cache: every resource's current objects and recent changes in memory, fed by one storage watch, serving LIST and WATCH.
//!
//! One task follows a single storage watch over `/registry/` and applies each
//! change, in revision order, to the cache of the resource its key belongs
//! to. Because every write the server makes lands under that prefix and the
//! watch delivers every change exactly once in order, `applied` (the last
//! revision processed) says the cache equals the store at that revision.
//! A consistent LIST therefore reads the store's current revision and waits
//! until `applied` reaches it, as upstream's consistent reads from cache do.
//!
//! Watchers get changes through their own bounded queue. Fan-out never
//! waits: a watcher whose queue is full is cut off and told so, so one slow
//! client can never hold up writers or other watchers.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use api::resources::Resource;
use futures::StreamExt;
use storage::{DynStorage, Event, EventKind, KeyValue, ListRequest, Revision, StorageError};
use tokio::sync::{Notify, mpsc};

/// Changes kept per resource for watches that start from a recent revision;
/// older starting points are replayed from the store's history instead.
const HISTORY_PER_RESOURCE: usize = 1024;
/// Changes a watcher may have queued before it is cut off as too slow.
const WATCHER_QUEUE: usize = 4096;
/// How long a consistent read waits for the cache to reach the store's
/// revision before it reads the store directly.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);

/// Every resource's cache and the revision they have all reached.
pub struct WatchCache {
    storage: DynStorage,
    /// `/registry/<storage prefix>/` of each cached resource, longest first,
    /// so a key finds its resource by the first prefix it starts with.
    resources: Vec<(String, Arc<ResourceCache>)>,
    /// The last revision applied to every resource cache.
    applied: AtomicI64,
    /// Set once the first full load is done.
    loaded: AtomicBool,
    progressed: Notify,
}

/// One resource's objects (all namespaces) and its recent changes.
pub struct ResourceCache {
    state: RwLock<CacheState>,
}

/// A resource's objects by key. A persistent map: a snapshot is a cheap
/// clone that later writes never disturb, so lists page through it without
/// holding the lock or copying it.
type Objects = imbl::OrdMap<Arc<str>, Entry>;

#[derive(Default)]
struct CacheState {
    objects: Objects,
    /// The most recent changes, oldest first: every change to this resource
    /// after `history_floor` is in here.
    history: VecDeque<Arc<Event>>,
    history_floor: Revision,
    /// The revision of this resource's most recent change.
    last_change: Revision,
    watchers: Vec<WatcherSlot>,
}

/// A stored object without its key (the map holds the key).
#[derive(Clone)]
struct Entry {
    value: bytes::Bytes,
    create_revision: Revision,
    mod_revision: Revision,
    version: i64,
}

impl Entry {
    fn of(kv: &KeyValue) -> Entry {
        Entry {
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
        }
    }

    fn key_value(&self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        }
    }
}

struct WatcherSlot {
    prefix: String,
    queue: mpsc::Sender<Arc<Event>>,
    cut_off: Arc<AtomicBool>,
}

/// Where a cache watch starts.
pub enum WatchStart {
    /// At the current state, which is delivered first as `initial`.
    Now,
    /// After this revision: every later change is delivered.
    After(Revision),
}

/// A watch served from the cache.
pub struct CacheSubscription {
    /// The objects at `revision` (only for [`WatchStart::Now`]).
    pub initial: Vec<KeyValue>,
    /// The revision `initial` shows.
    pub revision: Revision,
    /// Changes already in the history that the watch must deliver first.
    pub backlog: VecDeque<Arc<Event>>,
    /// Later changes, in order.
    pub changes: mpsc::Receiver<Arc<Event>>,
    /// Set when the watcher fell so far behind that it was cut off.
    pub cut_off: Arc<AtomicBool>,
}

/// A snapshot of a collection at one revision.
pub struct CacheList {
    objects: Objects,
    prefix: String,
    start_after: Option<String>,
    pub revision: Revision,
}

impl CacheList {
    /// The objects under the prefix after the starting key, in key order.
    pub fn items(&self) -> impl Iterator<Item = KeyValue> + '_ {
        let lower = match &self.start_after {
            Some(key) => Bound::Excluded(key.as_str()),
            None => Bound::Included(self.prefix.as_str()),
        };
        self.objects
            .range::<_, str>((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(self.prefix.as_str()))
            .map(|(key, entry)| entry.key_value(key))
    }

    /// The same objects as [`CacheList::items`], owning the snapshot.
    pub fn into_items(self) -> impl Iterator<Item = KeyValue> + Send {
        let mut after = self.start_after.clone();
        std::iter::from_fn(move || {
            let lower = match &after {
                Some(key) => Bound::Excluded(key.as_str()),
                None => Bound::Included(self.prefix.as_str()),
            };
            let (key, entry) = self
                .objects
                .range::<_, str>((lower, Bound::Unbounded))
                .next()?;
            if !key.starts_with(self.prefix.as_str()) {
                return None;
            }
            let kv = entry.key_value(key);
            after = Some(kv.key.clone());
            Some(kv)
        })
    }

    /// How many objects under the prefix sort after `key`.
    pub fn count_after(&self, key: &str) -> usize {
        self.objects
            .range::<_, str>((Bound::Excluded(key), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(self.prefix.as_str()))
            .count()
    }
}

impl WatchCache {
    /// A cache for every resource in the registry; [`WatchCache::run`] fills
    /// and follows it.
    pub fn new(storage: DynStorage) -> Arc<WatchCache> {
        let mut resources: Vec<(String, Arc<ResourceCache>)> = Vec::new();
        for resource in api::resources::RESOURCES {
            let prefix = format!("/registry/{}/", resource.storage_prefix);
            if resources.iter().all(|(known, _)| *known != prefix) {
                let cache = ResourceCache {
                    state: RwLock::new(CacheState::default()),
                };
                resources.push((prefix, Arc::new(cache)));
            }
        }
        resources.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Arc::new(WatchCache {
            storage,
            resources,
            applied: AtomicI64::new(0),
            loaded: AtomicBool::new(false),
            progressed: Notify::new(),
        })
    }

    /// True once the first full load is done.
    pub fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The revision every resource cache has reached.
    pub fn applied_revision(&self) -> Revision {
        self.applied.load(Ordering::Acquire)
    }

    fn resource_cache(&self, resource: &Resource) -> &ResourceCache {
        fn storage_prefix(known: &str) -> Option<&str> {
            known.strip_prefix("/registry/")?.strip_suffix('/')
        }
        self.resources
            .iter()
            .find(|(known, _)| storage_prefix(known) == Some(resource.storage_prefix))
            .map(|(_, cache)| cache.as_ref())
            .expect("every registered resource has a cache")
    }

    fn cache_of_key(&self, key: &str) -> Option<&ResourceCache> {
        self.resources
            .iter()
            .find(|(prefix, _)| key.starts_with(prefix.as_str()))
            .map(|(_, cache)| cache.as_ref())
    }

    /// Loads everything and follows the store for as long as the server
    /// runs; after a broken watch it reloads (cutting off every cache
    /// watcher, which resume from their last revision).
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(error) = self.load_and_follow().await {
                tracing::warn!(%error, "watch cache lost the storage watch; reloading");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    async fn load_and_follow(&self) -> Result<(), StorageError> {
        let everything = self
            .storage
            .list(ListRequest {
                prefix: "/registry/".into(),
                ..Default::default()
            })
            .await?;
        let revision = everything.revision;
        let mut loaded: Vec<Objects> = vec![Objects::new(); self.resources.len()];
        for kv in everything.kvs {
            if let Some(index) = self
                .resources
                .iter()
                .position(|(prefix, _)| kv.key.starts_with(prefix.as_str()))
            {
                let entry = Entry::of(&kv);
                loaded[index].insert(Arc::from(kv.key), entry);
            }
        }
        for ((_, cache), objects) in self.resources.iter().zip(loaded) {
            let mut state = cache.state.write().expect("cache lock");
            let last_change = objects.values().map(|e| e.mod_revision).max().unwrap_or(0);
            // Watchers of the previous load may have missed changes.
            for watcher in state.watchers.drain(..) {
                watcher.cut_off.store(true, Ordering::Release);
            }
            *state = CacheState {
                objects,
                history: VecDeque::new(),
                history_floor: revision,
                last_change,
                watchers: Vec::new(),
            };
        }
        self.applied.store(revision, Ordering::Release);
        self.loaded.store(true, Ordering::Release);
        self.progressed.notify_waiters();
        let mut changes = self.storage.watch("/registry/", revision + 1).await?;
        while let Some(change) = changes.next().await {
            self.apply(change?);
        }
        Err(StorageError::Unavailable {
            endpoint: self.storage.backend().into(),
            reason: "the storage watch ended".into(),
        })
    }

    /// Applies one change. `applied` moves while the resource's lock is
    /// held, so a reader holding that lock sees a state and a revision
    /// that agree.
    fn apply(&self, change: Event) {
        let revision = change.revision();
        let Some(cache) = self.cache_of_key(&change.kv.key) else {
            self.applied.store(revision, Ordering::Release);
            self.progressed.notify_waiters();
            return;
        };
        let change = Arc::new(change);
        let mut state = cache.state.write().expect("cache lock");
        match change.kind {
            EventKind::Put => {
                state
                    .objects
                    .insert(Arc::from(change.kv.key.as_str()), Entry::of(&change.kv));
            }
            EventKind::Delete => {
                state.objects.remove(change.kv.key.as_str());
            }
        }
        state.last_change = revision;
        if state.history.len() == HISTORY_PER_RESOURCE
            && let Some(oldest) = state.history.pop_front()
        {
            state.history_floor = oldest.revision();
        }
        state.history.push_back(change.clone());
        state.watchers.retain(|watcher| {
            if !change.kv.key.starts_with(&watcher.prefix) {
                return !watcher.queue.is_closed();
            }
            match watcher.queue.try_send(change.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    watcher.cut_off.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.applied.store(revision, Ordering::Release);
        drop(state);
        self.progressed.notify_waiters();
    }

    /// Waits until the cache has applied `revision`; false when it does
    /// not get there in time (the caller then reads the store).
    pub async fn wait_for(&self, revision: Revision) -> bool {
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        loop {
            let progressed = self.progressed.notified();
            if self.applied_revision() >= revision && self.is_ready() {
                return true;
            }
            if tokio::time::timeout_at(deadline, progressed).await.is_err() {
                return false;
            }
        }
    }

    /// The objects under `prefix` after `start_after` (a full key), at a
    /// revision no older than `min_revision` (0: whatever the cache holds).
    /// `None` when the cache cannot answer; the caller reads the store.
    pub async fn list(
        &self,
        resource: &Resource,
        prefix: &str,
        start_after: Option<&str>,
        min_revision: Revision,
    ) -> Option<CacheList> {
        self.snapshot(resource, prefix, start_after, min_revision)
            .await
            .map(|(list, _)| list)
    }

    /// The page after `start_after` of a list read at `revision`, if this
    /// resource has not changed since then (so its state now is its state
    /// at `revision`).
    pub async fn list_unchanged_since(
        &self,
        resource: &Resource,
        prefix: &str,
        start_after: &str,
        revision: Revision,
    ) -> Option<CacheList> {
        let (list, last_change) = self
            .snapshot(resource, prefix, Some(start_after), revision)
            .await?;
        (last_change <= revision).then_some(CacheList { revision, ..list })
    }

    /// A list and the revision of the resource's last change, read under
    /// one lock.
    async fn snapshot(
        &self,
        resource: &Resource,
        prefix: &str,
        start_after: Option<&str>,
        min_revision: Revision,
    ) -> Option<(CacheList, Revision)> {
        if !self.wait_for(min_revision).await {
            return None;
        }
        let cache = self.resource_cache(resource);
        let state = cache.state.read().expect("cache lock");
        let list = CacheList {
            objects: state.objects.clone(),
            prefix: prefix.to_string(),
            start_after: start_after.map(str::to_string),
            revision: self.applied_revision(),
        };
        Some((list, state.last_change))
    }

    /// Starts a watch of the keys under `prefix`. `None` when the cache
    /// cannot serve it (not loaded yet, or the start is older than the
    /// cached history); the caller watches the store instead.
    pub fn subscribe(
        &self,
        resource: &Resource,
        prefix: &str,
        start: WatchStart,
    ) -> Option<CacheSubscription> {
        if !self.is_ready() {
            return None;
        }
        let cache = self.resource_cache(resource);
        let mut state = cache.state.write().expect("cache lock");
        let revision = self.applied_revision();
        let (initial, backlog) = match start {
            WatchStart::Now => {
                let initial = state
                    .objects
                    .range::<_, str>((Bound::Included(prefix), Bound::Unbounded))
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .map(|(key, entry)| entry.key_value(key))
                    .collect();
                (initial, VecDeque::new())
            }
            WatchStart::After(after) => {
                if after < state.history_floor {
                    return None;
                }
                let backlog = state
                    .history
                    .iter()
                    .filter(|change| change.revision() > after && change.kv.key.starts_with(prefix))
                    .cloned()
                    .collect();
                (Vec::new(), backlog)
            }
        };
        let (queue, changes) = mpsc::channel(WATCHER_QUEUE);
        let cut_off = Arc::new(AtomicBool::new(false));
        state.watchers.push(WatcherSlot {
            prefix: prefix.to_string(),
            queue,
            cut_off: cut_off.clone(),
        });
        Some(CacheSubscription {
            initial,
            revision,
            backlog,
            changes,
            cut_off,
        })
    }

    /// How many watchers the cache is feeding (for tests and metrics).
    pub fn watcher_count(&self) -> usize {
        self.resources
            .iter()
            .map(|(_, cache)| cache.state.read().expect("cache lock").watchers.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::{MemoryStore, Precondition};

    fn configmaps() -> &'static Resource {
        api::resources::find("", "v1", "configmaps").expect("configmaps are built in")
    }

    async fn started(storage: &DynStorage) -> Arc<WatchCache> {
        let cache = WatchCache::new(storage.clone());
        tokio::spawn(cache.clone().run());
        let current = storage.current_revision().await.unwrap();
        assert!(cache.wait_for(current).await, "the cache loads");
        cache
    }

    async fn put(storage: &DynStorage, name: &str, value: &str) -> Revision {
        let key = format!("/registry/configmaps/default/{name}");
        let body = bytes::Bytes::from(format!("{{\"data\":{{\"v\":\"{value}\"}}}}"));
        storage
            .put(&key, body, Precondition::None)
            .await
            .expect("put")
            .revision
    }

    #[tokio::test]
    async fn a_consistent_list_shows_every_acknowledged_write() {
        let storage: DynStorage = Arc::new(MemoryStore::new());
        put(&storage, "before", "1").await;
        let cache = started(&storage).await;
        for i in 0..50 {
            put(&storage, &format!("cm-{i:02}"), "x").await;
        }
        storage
            .delete("/registry/configmaps/default/cm-07", Precondition::None)
            .await
            .unwrap();
        let current = storage.current_revision().await.unwrap();
        let list = cache
            .list(configmaps(), "/registry/configmaps/default/", None, current)
            .await
            .expect("the cache answers");
        assert_eq!(list.revision, current);
        assert_eq!(list.items().count(), 50, "before + 50 - 1");
        assert!(list.items().all(|kv| !kv.key.ends_with("cm-07")));
        let other_namespace = cache
            .list(configmaps(), "/registry/configmaps/other/", None, current)
            .await
            .unwrap();
        assert_eq!(other_namespace.items().count(), 0);
        let page = cache
            .list_unchanged_since(
                configmaps(),
                "/registry/configmaps/default/",
                "/registry/configmaps/default/cm-47",
                current,
            )
            .await
            .expect("unchanged since the first page");
        assert_eq!(page.items().count(), 2);
        let borrowed: Vec<KeyValue> = list.items().collect();
        let owned: Vec<KeyValue> = list.into_items().collect();
        assert_eq!(owned, borrowed, "both walks see the same snapshot");
        let later = put(&storage, "cm-99", "later").await;
        assert!(cache.wait_for(later).await);
        assert!(
            cache
                .list_unchanged_since(
                    configmaps(),
                    "/registry/configmaps/default/",
                    "/registry/configmaps/default/cm-47",
                    current,
                )
                .await
                .is_none(),
            "a changed collection is read from the store at the old revision"
        );
    }

    #[tokio::test]
    async fn a_watcher_that_stops_reading_is_cut_off_alone() {
        let storage: DynStorage = Arc::new(MemoryStore::new());
        let cache = started(&storage).await;
        let prefix = "/registry/configmaps/default/";
        let mut slow = cache
            .subscribe(configmaps(), prefix, WatchStart::Now)
            .unwrap();
        let mut reader = cache
            .subscribe(configmaps(), prefix, WatchStart::Now)
            .unwrap();
        let writes = WATCHER_QUEUE + 100;
        let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let reading = tokio::spawn({
            let read = read.clone();
            async move {
                while read.load(Ordering::Acquire) < writes {
                    reader.changes.recv().await.expect("the reader keeps up");
                    read.fetch_add(1, Ordering::AcqRel);
                }
                reader.cut_off.load(Ordering::Acquire)
            }
        });
        let mut last = 0;
        for i in 0..writes {
            last = put(&storage, &format!("cm-{}", i % 10), &i.to_string()).await;
            // However the tasks are scheduled, the reader stays well within
            // its queue while the other watcher never reads.
            while i + 1 - read.load(Ordering::Acquire) > WATCHER_QUEUE / 4 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let reader_cut_off = reading.await.unwrap();
        assert_eq!(
            (read.load(Ordering::Acquire), reader_cut_off),
            (writes, false)
        );
        assert!(cache.wait_for(last).await);
        assert!(
            slow.cut_off.load(Ordering::Acquire),
            "the slow watcher is cut off"
        );
        let mut queued = 0;
        while slow.changes.recv().await.is_some() {
            queued += 1;
        }
        assert_eq!(queued, WATCHER_QUEUE, "what was queued is still delivered");
    }

    #[tokio::test]
    async fn watches_from_recent_revisions_replay_history_and_older_ones_go_to_the_store() {
        let storage: DynStorage = Arc::new(MemoryStore::new());
        let loaded_at = put(&storage, "first", "1").await;
        let cache = started(&storage).await;
        let prefix = "/registry/configmaps/default/";
        assert!(
            cache
                .subscribe(configmaps(), prefix, WatchStart::After(loaded_at - 1))
                .is_none(),
            "a start before the cache's load is older than its history"
        );
        let second = put(&storage, "second", "2").await;
        let third = put(&storage, "third", "3").await;
        assert!(cache.wait_for(third).await);
        let subscription = cache
            .subscribe(configmaps(), prefix, WatchStart::After(second - 1))
            .unwrap();
        let replayed: Vec<Revision> = subscription.backlog.iter().map(|e| e.revision()).collect();
        assert_eq!(replayed, vec![second, third]);
        for i in 0..HISTORY_PER_RESOURCE {
            put(&storage, "churn", &i.to_string()).await;
        }
        let last = put(&storage, "churn", "last").await;
        assert!(cache.wait_for(last).await);
        assert!(
            cache
                .subscribe(configmaps(), prefix, WatchStart::After(third))
                .is_none(),
            "history keeps only the most recent changes"
        );
    }
}
