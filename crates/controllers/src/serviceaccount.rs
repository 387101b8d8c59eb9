//! The ServiceAccount controller: a `default` ServiceAccount in every namespace, recreated if deleted.

use std::sync::Arc;

use client::{Change, Informers, WorkQueue};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::reflector::ObjectRef;

/// The accounts upstream's controller keeps in every namespace.
const ACCOUNTS: [&str; 1] = ["default"];

pub async fn run(
    client: kube::Client,
    informers: Arc<Informers>,
    workers: usize,
) -> anyhow::Result<()> {
    let namespaces = informers.informer::<Namespace>();
    let accounts = informers.informer::<ServiceAccount>();
    let queue: WorkQueue<String> = WorkQueue::new();

    let mut namespace_changes = namespaces.subscribe();
    let enqueue = queue.clone();
    tokio::spawn(async move {
        while let Some(change) = namespace_changes.recv().await {
            if let Change::Applied { new, .. } = change
                && let Some(name) = &new.metadata.name
            {
                enqueue.add(name.clone());
            }
        }
    });
    let mut account_changes = accounts.subscribe();
    let enqueue = queue.clone();
    tokio::spawn(async move {
        while let Some(change) = account_changes.recv().await {
            if let Change::Deleted(gone) = change
                && let Some(namespace) = &gone.metadata.namespace
            {
                enqueue.add(namespace.clone());
            }
        }
    });

    namespaces.wait_synced().await;
    accounts.wait_synced().await;
    client::workqueue::run_workers(queue, workers, move |namespace: String| {
        let client = client.clone();
        let namespaces = namespaces.clone();
        let accounts = accounts.clone();
        async move {
            let Some(found) = namespaces.store().get(&ObjectRef::new(&namespace)) else {
                return Ok(None);
            };
            // A terminating namespace refuses new content.
            if found.metadata.deletion_timestamp.is_some() {
                return Ok(None);
            }
            for name in ACCOUNTS {
                if accounts
                    .store()
                    .get(&ObjectRef::new(name).within(&namespace))
                    .is_some()
                {
                    continue;
                }
                let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
                let account = ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        ..ObjectMeta::default()
                    },
                    ..ServiceAccount::default()
                };
                match api.create(&PostParams::default(), &account).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status))
                        if status.code == 409 || status.reason == "Forbidden" => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(None)
        }
    })
    .await;
    Ok(())
}
