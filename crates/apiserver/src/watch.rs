//! Watch: a stream of ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events with upstream's resourceVersion, selector and timeout semantics.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use storage::{EventKind, ListRequest, StorageError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

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
    let mut initial = Vec::new();
    let from = match requested {
        "" | "0" => {
            let page = rest
                .storage
                .list(ListRequest {
                    prefix: prefix.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|e| from_storage(e, resource.group, resource.plural, ""))?;
            initial = page.kvs.iter().filter_map(objects::decode).collect();
            page.revision + 1
        }
        text => {
            if send_initial {
                return Err(ApiError::bad_request(
                    "sendInitialEvents is only supported with resourceVersionMatch=NotOlderThan and an unset or \"0\" resourceVersion",
                ));
            }
            text.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {text:?}")))?
                + 1
        }
    };
    let (out, body) = mpsc::channel(64);
    let stream = rest.storage.watch(&prefix, from).await;
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
        let mut last_revision = from - 1;
        for object in initial {
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
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                let _ = send(error_event(error)).await;
                return;
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            let item = tokio::select! {
                _ = &mut deadline => return,
                _ = out.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let bookmark = json!({"type": "BOOKMARK", "object": {
                        "kind": resource.kind, "apiVersion": resource.api_version(),
                        "metadata": {"resourceVersion": last_revision.to_string()}}});
                    if !send(bookmark).await { return; }
                    continue;
                }
                item = stream.next() => item,
            };
            let event = match item {
                Some(Ok(event)) => event,
                Some(Err(error)) => {
                    let _ = send(error_event(error)).await;
                    return;
                }
                None => return,
            };
            last_revision = event.revision();
            let previous = event.prev.as_ref().and_then(objects::decode);
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
                    let Some(object) = objects::decode(&event.kv) else {
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
