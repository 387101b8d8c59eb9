//! The controllers' notion of time: a `Clock` to read and sleep on, the system clock, and a fake clock tests set and advance.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use tokio::sync::watch;

/// What the controllers ask of time. Delays are waited for on the clock
/// itself, so a fake clock's `advance` wakes exactly the timers it passes.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    /// Completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: Timestamp) -> BoxFuture<'static, ()>;
}

/// Wall-clock time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, deadline: Timestamp) -> BoxFuture<'static, ()> {
        let wait = duration_until(Timestamp::now(), deadline);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to.
#[derive(Clone)]
pub struct FakeClock {
    now: Arc<Mutex<Timestamp>>,
    ticks: watch::Sender<Timestamp>,
}

impl FakeClock {
    pub fn new(start: Timestamp) -> FakeClock {
        let (ticks, _) = watch::channel(start);
        FakeClock {
            now: Arc::new(Mutex::new(start)),
            ticks,
        }
    }

    pub fn set(&self, now: Timestamp) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = now;
        self.ticks.send_replace(now);
    }

    pub fn advance(&self, by: Duration) {
        let now = self.now();
        let by = jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX);
        self.set(now.saturating_add(by).unwrap_or(now));
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep_until(&self, deadline: Timestamp) -> BoxFuture<'static, ()> {
        let mut ticks = self.ticks.subscribe();
        Box::pin(async move {
            let _ = ticks.wait_for(|now| *now >= deadline).await;
        })
    }
}

/// `deadline - now`, or zero when the deadline has passed.
pub fn duration_until(now: Timestamp, deadline: Timestamp) -> Duration {
    Duration::try_from(deadline.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// Delayed requeues measured on a clock, at most one pending per key (the
/// earliest), so syncing often does not pile up sleeping timers.
#[derive(Clone)]
pub(crate) struct Timers {
    clock: Arc<dyn Clock>,
    queue: client::WorkQueue<String>,
    pending: Arc<Mutex<std::collections::HashMap<String, Timestamp>>>,
}

impl Timers {
    pub(crate) fn new(clock: Arc<dyn Clock>, queue: client::WorkQueue<String>) -> Timers {
        Timers {
            clock,
            queue,
            pending: Arc::default(),
        }
    }

    /// Queues `key` once `delay` has passed on the clock.
    pub(crate) fn requeue_after(&self, key: String, delay: Duration) {
        if delay.is_zero() {
            self.queue.add(key);
            return;
        }
        let now = self.clock.now();
        let delay = jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::MAX);
        let deadline = now.saturating_add(delay).unwrap_or(Timestamp::MAX);
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending
                .get(&key)
                .is_some_and(|earlier| *earlier <= deadline)
            {
                return;
            }
            pending.insert(key.clone(), deadline);
        }
        let sleep = self.clock.sleep_until(deadline);
        let (queue, pending) = (self.queue.clone(), self.pending.clone());
        tokio::spawn(async move {
            sleep.await;
            {
                let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
                if pending.get(&key) == Some(&deadline) {
                    pending.remove(&key);
                }
            }
            queue.add(key);
        });
    }
}

/// Shuts the queues down when the controller's future is dropped, so its
/// workers stop too.
pub(crate) struct ShutDownOnDrop(pub Vec<client::WorkQueue<String>>);

impl Drop for ShutDownOnDrop {
    fn drop(&mut self) {
        for queue in &self.0 {
            queue.shut_down();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fake_clock_wakes_sleepers_when_advanced_past_their_deadline() {
        let start: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let clock = FakeClock::new(start);
        let deadline = start + jiff::SignedDuration::from_secs(60);
        let sleeper = tokio::spawn(clock.sleep_until(deadline));
        clock.advance(Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(30));
        tokio::time::timeout(Duration::from_secs(1), sleeper)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(clock.now(), deadline);
    }
}
