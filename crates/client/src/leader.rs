//! Leader election by a coordination.k8s.io/v1 Lease, with upstream's timings: only the holder of the Lease runs the component.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// Which Lease to hold, as whom, and upstream's default timings.
#[derive(Clone, Debug)]
pub struct LeaseLock {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseLock {
    /// A Lease in kube-system named like upstream's components' (e.g.
    /// `kube-scheduler`), held by `identity`, with 15 s / 10 s / 2 s.
    pub fn new(name: &str, identity: &str) -> LeaseLock {
        LeaseLock {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A process-unique identity: host name and a random suffix, as upstream's
/// `hostname_UUID`.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "krust".into());
    format!("{host}_{:016x}", rand::random::<u64>())
}

/// Runs `component` whenever this process holds the Lease: waits to
/// acquire it, runs the component while renewing, and when a renewal misses
/// the deadline drops the component and waits again. Returns when the
/// component itself returns.
pub async fn run_while_leader<F, Fut>(
    client: Client,
    lock: LeaseLock,
    mut component: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let leases: Api<Lease> = Api::namespaced(client, &lock.namespace);
    loop {
        loop {
            match try_acquire_or_renew(&leases, &lock).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => tracing::debug!(lease = %lock.name, %error, "lease not acquired"),
            }
            tokio::time::sleep(lock.retry_period).await;
        }
        tracing::info!(lease = %lock.name, identity = %lock.identity, "became leader");
        tokio::select! {
            result = component() => return result,
            () = keep_renewing(&leases, &lock) => {
                tracing::warn!(lease = %lock.name, "lost the lease; stopping until it is regained");
            }
        }
    }
}

/// Renews every retry period; returns once leadership is lost.
async fn keep_renewing(leases: &Api<Lease>, lock: &LeaseLock) {
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(lock.retry_period).await;
        match tokio::time::timeout(lock.renew_deadline, try_acquire_or_renew(leases, lock)).await {
            Ok(Ok(true)) => last_renewed = tokio::time::Instant::now(),
            // Someone else holds it now.
            Ok(Ok(false)) => return,
            Ok(Err(_)) | Err(_) => {}
        }
        if last_renewed.elapsed() > lock.renew_deadline {
            return;
        }
    }
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// Takes the Lease if it is free, expired or already ours; `false` when
/// another holder's Lease is still valid or a concurrent writer won.
pub async fn try_acquire_or_renew(leases: &Api<Lease>, lock: &LeaseLock) -> anyhow::Result<bool> {
    let duration_seconds = lock.lease_duration.as_secs().max(1) as i32;
    let Some(mut lease) = leases.get_opt(&lock.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(lock.name.clone()),
                namespace: Some(lock.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(lock.identity.clone()),
                lease_duration_seconds: Some(duration_seconds),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error.into()),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder != lock.identity {
        let valid_for = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        let expired = match &spec.renew_time {
            Some(renewed) => {
                let age = jiff::Timestamp::now().duration_since(renewed.0);
                age.as_secs_f64() > valid_for.as_secs_f64()
            }
            None => true,
        };
        if !holder.is_empty() && !expired {
            return Ok(false);
        }
        spec.holder_identity = Some(lock.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(duration_seconds);
    spec.renew_time = Some(now());
    match leases
        .replace(&lock.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error.into()),
    }
}
