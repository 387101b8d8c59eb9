//! Job, CronJob and TTL-after-finished controllers, as kube-controller-manager v1.32 runs them.

pub mod clock;
pub mod cron;
pub mod cronjob;
pub mod intervals;
pub mod job;
pub mod ttl;

pub use clock::{Clock, FakeClock, SystemClock};
pub use cronjob::run as run_cronjobs;
pub use job::{JobConfig, run as run_jobs};
pub use ttl::run as run_ttl_after_finished;
