//! The `etcd://` backend: a real etcd v3 cluster over gRPC, revisions mapped 1:1 to etcd's.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::endpoint::EtcdTls;
use crate::{
    Event, EventKind, KeyValue, ListRequest, ListResponse, Precondition, Revision, Storage,
    StorageError, WatchStream, WriteResult, check_value_size,
};

/// gRPC messages may carry a full 1.5 MiB value plus its envelope.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// A client of an etcd v3 cluster.
pub struct EtcdStore {
    client: Client,
    endpoint: String,
}

impl EtcdStore {
    /// Connects to `endpoints` (`host:port` or URLs) and proves the cluster
    /// answers within `timeout`.
    pub async fn connect(
        endpoints: &[String],
        tls: &EtcdTls,
        timeout: Duration,
    ) -> Result<Self, StorageError> {
        let endpoint = format!("etcd://{}", endpoints.join(","));
        let unavailable = |reason: String| StorageError::Unavailable {
            endpoint: endpoint.clone(),
            reason,
        };
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
        let scheme = if tls.is_configured() {
            options = options.with_tls(tls.client_config().map_err(&unavailable)?);
            "https"
        } else {
            "http"
        };
        let urls: Vec<String> = endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("{scheme}://{e}")
                }
            })
            .collect();
        let connecting = Client::connect(&urls, Some(options));
        let client = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| unavailable(format!("no answer within {timeout:?}")))?
            .map_err(|e| unavailable(one_line(&e.to_string())))?;
        let store = EtcdStore {
            client,
            endpoint: endpoint.clone(),
        };
        let mut maintenance = store.client.maintenance_client();
        tokio::time::timeout(timeout, maintenance.status())
            .await
            .map_err(|_| unavailable(format!("no answer within {timeout:?}")))?
            .map_err(|e| unavailable(one_line(&e.to_string())))?;
        Ok(store)
    }

    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn error(&self, requested: Revision, error: etcd_client::Error) -> StorageError {
        map_error(&self.endpoint, requested, error)
    }

    /// The key's current state, for reporting a failed precondition.
    async fn current(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        self.get(key, 0).await
    }
}

fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

fn map_error(endpoint: &str, requested: Revision, error: etcd_client::Error) -> StorageError {
    let message = one_line(&error.to_string());
    match &error {
        etcd_client::Error::GRpcStatus(status) => {
            let text = status.message();
            if text.contains("required revision has been compacted") {
                StorageError::Compacted {
                    requested,
                    compacted: 0,
                }
            } else if text.contains("required revision is a future revision") {
                StorageError::FutureRevision {
                    requested,
                    current: 0,
                }
            } else if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
            ) {
                StorageError::Unavailable {
                    endpoint: endpoint.to_string(),
                    reason: message,
                }
            } else {
                StorageError::Backend {
                    backend: "etcd",
                    message,
                }
            }
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            StorageError::Unavailable {
                endpoint: endpoint.to_string(),
                reason: message,
            }
        }
        _ => StorageError::Backend {
            backend: "etcd",
            message,
        },
    }
}

fn convert(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision())
}

/// The end of etcd's key range for a prefix: `\0` means "all keys".
fn etcd_range_end(prefix: &str) -> Vec<u8> {
    crate::prefix_end(prefix).unwrap_or_else(|| vec![0])
}

/// The result of a put that etcd committed at `revision`, whose previous
/// state it reported atomically.
fn put_result(key: &str, value: Bytes, revision: Revision, prev: Option<KeyValue>) -> WriteResult {
    WriteResult {
        revision,
        kv: KeyValue {
            key: key.to_string(),
            value,
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
        },
        prev,
    }
}

fn delete_result(key: &str, revision: Revision, prev: KeyValue) -> WriteResult {
    WriteResult {
        revision,
        kv: KeyValue {
            key: key.to_string(),
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
        },
        prev: Some(prev),
    }
}

#[async_trait]
impl Storage for EtcdStore {
    async fn get(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>, StorageError> {
        let options = GetOptions::new().with_revision(revision);
        let response = self
            .kv()
            .get(key, Some(options))
            .await
            .map_err(|e| self.error(revision, e))?;
        Ok(response.kvs().first().map(convert))
    }

    async fn list(&self, request: ListRequest) -> Result<ListResponse, StorageError> {
        let start = match &request.start_after {
            Some(after) if after.as_str() >= request.prefix.as_str() => {
                let mut start = after.as_bytes().to_vec();
                start.push(0);
                start
            }
            _ => request.prefix.as_bytes().to_vec(),
        };
        let options = GetOptions::new()
            .with_range(etcd_range_end(&request.prefix))
            .with_revision(request.revision)
            .with_limit(request.limit as i64);
        let response = self
            .kv()
            .get(start, Some(options))
            .await
            .map_err(|e| self.error(request.revision, e))?;
        let revision = if request.revision == 0 {
            header_revision(response.header())
        } else {
            request.revision
        };
        Ok(ListResponse {
            kvs: response.kvs().iter().map(convert).collect(),
            more: response.more(),
            count: response.count(),
            revision,
        })
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<WriteResult, StorageError> {
        check_value_size(key, &value)?;
        let compare = match precondition {
            Precondition::None => {
                let options = PutOptions::new().with_prev_key();
                let response = self
                    .kv()
                    .put(key, value.to_vec(), Some(options))
                    .await
                    .map_err(|e| self.error(0, e))?;
                let revision = header_revision(response.header());
                return Ok(put_result(
                    key,
                    value,
                    revision,
                    response.prev_key().map(convert),
                ));
            }
            Precondition::Absent => Compare::create_revision(key, CompareOp::Equal, 0),
            Precondition::ModRevision(expected) => {
                Compare::mod_revision(key, CompareOp::Equal, expected)
            }
        };
        let put = TxnOp::put(key, value.to_vec(), Some(PutOptions::new().with_prev_key()));
        let txn = Txn::new()
            .when([compare])
            .and_then([put])
            .or_else([TxnOp::get(key, None)]);
        let response = self.kv().txn(txn).await.map_err(|e| self.error(0, e))?;
        let revision = header_revision(response.header());
        match response.op_responses().into_iter().next() {
            Some(TxnOpResponse::Put(put)) if response.succeeded() => Ok(put_result(
                key,
                value,
                revision,
                put.prev_key().map(convert),
            )),
            Some(TxnOpResponse::Get(get)) => Err(StorageError::precondition(
                key,
                get.kvs().first().map(convert),
            )),
            _ => Err(StorageError::Backend {
                backend: "etcd",
                message: format!("unexpected transaction response for key {key}"),
            }),
        }
    }

    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
    ) -> Result<WriteResult, StorageError> {
        let not_found = || StorageError::NotFound {
            key: key.to_string(),
        };
        let expected = match precondition {
            Precondition::None => {
                let options = DeleteOptions::new().with_prev_key();
                let response = self
                    .kv()
                    .delete(key, Some(options))
                    .await
                    .map_err(|e| self.error(0, e))?;
                let revision = header_revision(response.header());
                let prev = response
                    .prev_kvs()
                    .first()
                    .map(convert)
                    .ok_or_else(not_found)?;
                return Ok(delete_result(key, revision, prev));
            }
            // Deleting requires the key to exist, so "absent" can never hold.
            Precondition::Absent => {
                let current = self.current(key).await?.ok_or_else(not_found)?;
                return Err(StorageError::precondition(key, Some(current)));
            }
            Precondition::ModRevision(expected) => expected,
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self.kv().txn(txn).await.map_err(|e| self.error(0, e))?;
        let revision = header_revision(response.header());
        match response.op_responses().into_iter().next() {
            Some(TxnOpResponse::Delete(delete)) if response.succeeded() => {
                let prev = delete
                    .prev_kvs()
                    .first()
                    .map(convert)
                    .ok_or_else(not_found)?;
                Ok(delete_result(key, revision, prev))
            }
            Some(TxnOpResponse::Get(get)) => match get.kvs().first().map(convert) {
                None => Err(not_found()),
                current => Err(StorageError::precondition(key, current)),
            },
            _ => Err(StorageError::Backend {
                backend: "etcd",
                message: format!("unexpected transaction response for key {key}"),
            }),
        }
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StorageError> {
        let mut options = WatchOptions::new()
            .with_range(etcd_range_end(prefix))
            .with_prev_key();
        if from > 0 {
            options = options.with_start_revision(from);
        }
        let mut watch_client = self.client.watch_client();
        let mut stream = watch_client
            .watch(prefix, Some(options))
            .await
            .map_err(|e| self.error(from, e))?;
        let (out, receiver) = mpsc::channel(256);
        let endpoint = self.endpoint.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    _ = out.closed() => return,
                    message = stream.message() => message,
                };
                let response = match message {
                    Ok(Some(response)) => response,
                    Ok(None) => {
                        let _ = out
                            .send(Err(StorageError::Unavailable {
                                endpoint,
                                reason: "watch stream ended".into(),
                            }))
                            .await;
                        return;
                    }
                    Err(error) => {
                        let _ = out.send(Err(map_error(&endpoint, from, error))).await;
                        return;
                    }
                };
                if response.compact_revision() > 0 {
                    let _ = out
                        .send(Err(StorageError::Compacted {
                            requested: from,
                            compacted: response.compact_revision(),
                        }))
                        .await;
                    return;
                }
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    let converted = Event {
                        kind: match event.event_type() {
                            EventType::Put => EventKind::Put,
                            EventType::Delete => EventKind::Delete,
                        },
                        kv: convert(kv),
                        prev: event.prev_kv().map(convert),
                    };
                    if out.send(Ok(converted)).await.is_err() {
                        return;
                    }
                }
                if response.canceled() {
                    let _ = out
                        .send(Err(StorageError::Backend {
                            backend: "etcd",
                            message: format!("watch canceled: {}", response.cancel_reason()),
                        }))
                        .await;
                    return;
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(receiver)))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StorageError> {
        self.kv()
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
            .map_err(|e| self.error(revision, e))?;
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision, StorageError> {
        let response = self
            .kv()
            .get("\0", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| self.error(0, e))?;
        Ok(header_revision(response.header()))
    }

    async fn db_size(&self) -> Result<u64, StorageError> {
        let status = self
            .client
            .maintenance_client()
            .status()
            .await
            .map_err(|e| self.error(0, e))?;
        Ok(status.db_size().max(0) as u64)
    }

    fn backend(&self) -> &'static str {
        "etcd"
    }
}
