//! Latencies in microseconds, summarised in milliseconds.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{Context, Result};

/// Highest latency told apart: one minute (above is clamped).
const HIGHEST_US: u64 = 60_000_000;

/// A latency histogram (microseconds, 3 significant digits).
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

/// The figures of the JSON line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn new() -> Result<Self> {
        Ok(Self {
            histogram: Histogram::new_with_bounds(1, HIGHEST_US, 3)
                .context("creating the latency histogram")?,
        })
    }

    /// Records one latency; zero counts as 1 µs and values past a minute as
    /// a minute.
    pub fn record_us(&mut self, micros: u64) {
        self.histogram.saturating_record(micros.max(1));
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn summary(&self) -> Summary {
        if self.histogram.is_empty() {
            return Summary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: self.histogram.len(),
            p50_ms: ms(self.histogram.value_at_quantile(0.50)),
            p99_ms: ms(self.histogram.value_at_quantile(0.99)),
            p999_ms: ms(self.histogram.value_at_quantile(0.999)),
            max_ms: ms(self.histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_in_milliseconds() {
        let mut l = Latency::new().unwrap();
        assert_eq!(l.summary(), Summary::default());
        for us in 1..=1000 {
            l.record_us(us * 10);
        }
        l.record_us(u64::MAX);
        let s = l.summary();
        assert_eq!(s.count, 1001);
        assert!((s.p50_ms - 5.0).abs() < 0.05, "{s:?}");
        assert!((s.p99_ms - 9.9).abs() < 0.05, "{s:?}");
        assert!((s.max_ms - 60_000.0).abs() < 60.0, "{s:?}");
    }
}
