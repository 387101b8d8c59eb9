//! Watch: a stream of ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events with upstream's resourceVersion, selector and timeout semantics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use storage::{Event, EventKind, KeyValue, ListRequest, StorageError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::cache::WatchStart;
use crate::objects;
use crate::request::{Rendering, Target};
use crate::rest::{Filter, Rest, render_list, render_one};
use crate::status::{ApiError, from_storage};

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);
/// Upstream ends watches after a random 30–60 minutes unless asked otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// The response body of a watch: one JSON event per line.
pub type WatchBody = ReceiverStream<Result<Bytes, std::convert::Infallible>>;

fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    matches!(query.get(name).map(String::as_str), Some("true" | "1"))
}

/// Starts a watch; errors before the first event are ordinary responses.
pub async fn watch(
    rest: &Rest,
    target: &Target,
    query: &HashMap<String, String>,
    rendering: Rendering,
) -> Result<WatchBody, ApiError> {
    let resource = target.resource;
    let filter = Filter::from_query(resource, query)?;
    let timeout = match query.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(text) => Duration::from_secs(
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {text:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let bookmarks = flag(query, "allowWatchBookmarks");
    let send_initial = flag(query, "sendInitialEvents");
    let prefix = objects::collection_prefix(resource, target.namespace.as_deref());
    let only_name = target.name.clone();
    let requested = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let start = match requested {
        "" | "0" => Start::Now {
            consistent: requested.is_empty(),
        },
        text => {
            if send_initial {
                return Err(ApiError::bad_request(
                    "sendInitialEvents is only supported with resourceVersionMatch=NotOlderThan and an unset or \"0\" resourceVersion",
                ));
            }
            Start::After(
                text.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {text:?}"))
                })?,
            )
        }
    };
    let (initial, from, mut changes) = changes_from(rest, resource, &prefix, start).await?;
    let (out, body) = mpsc::channel(64);
    tokio::spawn(async move {
        let send = |event: Value| {
            let out = out.clone();
            async move {
                let mut line = serde_json::to_vec(&event).unwrap_or_default();
                line.push(b'\n');
                out.send(Ok(Bytes::from(line))).await.is_ok()
            }
        };
        let wanted = |object: &Value| {
            filter.matches(object)
                && only_name
                    .as_deref()
                    .is_none_or(|name| objects::meta_str(object, "name") == Some(name))
        };
        let render = |object: Value| -> Value {
            match rendering {
                Rendering::Table => render_list(
                    resource,
                    vec![object.clone()],
                    json!({"resourceVersion": objects::meta_str(&object, "resourceVersion").unwrap_or_default()}),
                    Rendering::Table,
                ),
                other => render_one(resource, object, other),
            }
        };
        let mut last_revision = from;
        for object in initial
            .iter()
            .filter_map(|kv| objects::decode_as(resource, kv))
        {
            if wanted(&object) && !send(json!({"type": "ADDED", "object": render(object)})).await {
                return;
            }
        }
        if send_initial && bookmarks {
            let bookmark = json!({"type": "BOOKMARK", "object": {
                "kind": resource.kind, "apiVersion": resource.api_version(),
                "metadata": {"resourceVersion": last_revision.to_string(),
                             "annotations": {"k8s.io/initial-events-end": "true"}}}});
            if !send(bookmark).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            let next = tokio::select! {
                _ = &mut deadline => return,
                _ = out.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let bookmark = json!({"type": "BOOKMARK", "object": {
                        "kind": resource.kind, "apiVersion": resource.api_version(),
                        "metadata": {"resourceVersion": last_revision.to_string()}}});
                    if !send(bookmark).await { return; }
                    continue;
                }
                next = changes.next() => next,
            };
            let event = match next {
                Next::Change(event) => event,
                Next::Failed(error) => {
                    let _ = send(error).await;
                    return;
                }
                Next::End => return,
            };
            if event.revision() <= last_revision {
                continue;
            }
            last_revision = event.revision();
            let previous = event
                .prev
                .as_ref()
                .and_then(|kv| objects::decode_as(resource, kv));
            let (kind, object) = match event.kind {
                EventKind::Delete => {
                    let Some(mut object) = previous else { continue };
                    if !wanted(&object) {
                        continue;
                    }
                    objects::set_resource_version(&mut object, event.revision());
                    ("DELETED", object)
                }
                EventKind::Put => {
                    let Some(object) = objects::decode_as(resource, &event.kv) else {
                        continue;
                    };
                    let was = previous.as_ref().is_some_and(&wanted);
                    match (was, wanted(&object)) {
                        (true, true) => ("MODIFIED", object),
                        (false, true) => ("ADDED", object),
                        // Leaving the selection reads as a deletion, as upstream.
                        (true, false) => ("DELETED", object),
                        (false, false) => continue,
                    }
                }
            };
            if !send(json!({"type": kind, "object": render(object)})).await {
                return;
            }
        }
    });
    Ok(ReceiverStream::new(body))
}

/// Where a watch starts.
enum Start {
    /// At the current state, sent first as ADDED events; `consistent` (an
    /// unset resourceVersion) means the state must be the store's latest.
    Now { consistent: bool },
    /// After this revision.
    After(i64),
}

/// The changes a watch delivers: from the watch cache when it can serve
/// the start, otherwise straight from the store (which replays history).
enum Changes {
    Cache(crate::cache::CacheSubscription),
    Store(storage::WatchStream),
}

enum Next {
    Change(Arc<Event>),
    /// The watch cannot go on; this ERROR event says why.
    Failed(Value),
    End,
}

impl Changes {
    async fn next(&mut self) -> Next {
        match self {
            Changes::Cache(subscription) => {
                if let Some(change) = subscription.backlog.pop_front() {
                    return Next::Change(change);
                }
                match subscription.changes.recv().await {
                    Some(change) => Next::Change(change),
                    None if subscription.cut_off.load(Ordering::Acquire) => {
                        Next::Failed(too_slow_event())
                    }
                    None => Next::End,
                }
            }
            Changes::Store(stream) => match stream.next().await {
                Some(Ok(change)) => Next::Change(Arc::new(change)),
                Some(Err(error)) => Next::Failed(error_event(error)),
                None => Next::End,
            },
        }
    }
}

/// The objects a watch starts with (for [`Start::Now`]), the revision after
/// which its changes begin, and those changes.
async fn changes_from(
    rest: &Rest,
    resource: &'static api::resources::Resource,
    prefix: &str,
    start: Start,
) -> Result<(Vec<KeyValue>, i64, Changes), ApiError> {
    let storage_error = |e| from_storage(e, resource.group, resource.plural, "");
    match start {
        Start::Now { consistent } => {
            let ready = if consistent {
                let current = rest
                    .storage
                    .current_revision()
                    .await
                    .map_err(storage_error)?;
                rest.cache.wait_for(current).await
            } else {
                rest.cache.is_ready()
            };
            if ready
                && let Some(mut subscription) =
                    rest.cache.subscribe(resource, prefix, WatchStart::Now)
            {
                let initial = std::mem::take(&mut subscription.initial);
                return Ok((initial, subscription.revision, Changes::Cache(subscription)));
            }
            let page = rest
                .storage
                .list(ListRequest {
                    prefix: prefix.to_string(),
                    ..Default::default()
                })
                .await
                .map_err(storage_error)?;
            let stream = rest
                .storage
                .watch(prefix, page.revision + 1)
                .await
                .map_err(storage_error)?;
            Ok((page.kvs, page.revision, Changes::Store(stream)))
        }
        Start::After(revision) => {
            if let Some(subscription) =
                rest.cache
                    .subscribe(resource, prefix, WatchStart::After(revision))
            {
                return Ok((Vec::new(), revision, Changes::Cache(subscription)));
            }
            // A store watch reports a compacted start as its first item, so
            // the client still gets the 410 as an ERROR event.
            let stream = match rest.storage.watch(prefix, revision + 1).await {
                Ok(stream) => stream,
                Err(error) => futures::stream::once(async move { Err(error) }).boxed(),
            };
            Ok((Vec::new(), revision, Changes::Store(stream)))
        }
    }
}

/// Sent to a watcher the cache cut off for falling behind: client-go backs
/// off on 429 and watches again from its last resourceVersion.
fn too_slow_event() -> Value {
    let status = ApiError::too_many_requests(
        "the watcher fell too far behind and was closed; watch again from the last resourceVersion received",
    );
    json!({"type": "ERROR", "object": status.status_json()})
}

fn error_event(error: StorageError) -> Value {
    let status = match error {
        StorageError::Compacted {
            requested,
            compacted,
        } => ApiError::gone(format!(
            "too old resource version: {} ({compacted})",
            requested - 1
        )),
        other => ApiError::internal(other.to_string()),
    };
    json!({"type": "ERROR", "object": status.status_json()})
}
