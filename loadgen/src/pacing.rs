//! Open-loop pacing: write `k` is due at `start + k / rate`, whatever happened to the writes
//! before it. A slow server then shows up as latency (counted from the due time), not as a
//! lower rate, which is what a closed loop would hide ("coordinated omission").

use std::time::Duration;

/// When write `k` is due, relative to the start, at `rate` writes per second.
pub fn due(k: u64, rate: f64) -> Duration {
    Duration::from_nanos(((k as f64) * 1e9 / rate).round() as u64)
}

/// How many writes a run of `duration` at `rate` makes.
pub fn total(duration: Duration, rate: f64) -> u64 {
    (duration.as_secs_f64() * rate).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_spread_evenly() {
        assert_eq!(due(0, 500.0), Duration::ZERO);
        assert_eq!(due(1, 500.0), Duration::from_millis(2));
        assert_eq!(due(500, 500.0), Duration::from_secs(1));
        assert_eq!(due(3, 3.0), Duration::from_secs(1));
        // No drift over a long run: the 60,000th write at 1,000/s is due at 60 s exactly.
        assert_eq!(due(60_000, 1000.0), Duration::from_secs(60));
    }

    #[test]
    fn a_run_makes_rate_times_duration_writes() {
        assert_eq!(total(Duration::from_secs(10), 50.0), 500);
        assert_eq!(total(Duration::from_millis(2500), 2.0), 5);
        assert_eq!(total(Duration::from_secs(1), 0.5), 0);
    }
}
