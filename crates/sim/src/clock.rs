//! One reading of both clocks: the monotonic one timers run on and the wall clock API timestamps use.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub instant: Instant,
    pub wall: Timestamp,
}

impl Clock {
    pub fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            wall: Timestamp::now(),
        }
    }

    /// The monotonic instant of a wall-clock time; times past map to now.
    pub fn instant_of(&self, at: Timestamp) -> Instant {
        let ahead = at.duration_since(self.wall);
        match std::time::Duration::try_from(ahead) {
            Ok(ahead) => self.instant + ahead,
            Err(_) => self.instant,
        }
    }

    /// Now as a `metav1.Time`, whole seconds as the API stores it, so a
    /// value written and read back compares equal.
    pub fn time(&self) -> Time {
        Time(Timestamp::from_second(self.wall.as_second()).unwrap_or(self.wall))
    }

    pub fn micro_time(&self) -> MicroTime {
        MicroTime(self.wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wall_times_map_onto_the_monotonic_clock() {
        let clock = Clock::now();
        let later = clock
            .wall
            .checked_add(Duration::from_secs(3))
            .expect("in range");
        assert_eq!(
            clock.instant_of(later) - clock.instant,
            Duration::from_secs(3)
        );
        let earlier = clock
            .wall
            .checked_sub(Duration::from_secs(3))
            .expect("in range");
        assert_eq!(clock.instant_of(earlier), clock.instant);
        assert_eq!(clock.time().0.subsec_nanosecond(), 0);
    }
}
