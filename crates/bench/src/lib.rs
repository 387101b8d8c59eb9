//! krust's benchmarks. Each prints one `bench=NAME key=value ...` line per measured configuration.

pub mod api;
pub mod controllers;
pub mod pods;
pub mod scheduler;
pub mod server;
pub mod storage;

/// Latency percentiles over a set of samples in microseconds.
pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Percentiles {
    pub fn of(samples: &mut [u32]) -> Percentiles {
        samples.sort_unstable();
        let at = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index] as f64 / 1000.0
        };
        Percentiles {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let p = Percentiles::of(&mut samples);
        assert_eq!((p.p50_ms, p.p99_ms), (50.0, 99.0));
        assert_eq!(Percentiles::of(&mut []).p99_ms, 0.0);
    }
}
