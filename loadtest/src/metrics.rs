//! What the run measures: counters, latency histograms (HDR, microseconds) and errors by code,
//! shared by every client task.
//!
//! Histograms are sharded behind plain mutexes (held for one `record`, never across an
//! `.await`), so thousands of tasks record without a per-client histogram each.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

const SHARDS: usize = 16;
/// The largest latency recorded: one hour, in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds, sharded.
pub struct Latency {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(
                        Histogram::new_with_bounds(1, MAX_MICROS, 3)
                            .expect("valid histogram bounds"),
                    )
                })
                .collect(),
        }
    }
}

impl Latency {
    /// Records one latency; `who` picks the shard (e.g. the client's index).
    pub fn record(&self, who: usize, d: Duration) {
        let micros = u64::try_from(d.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        let mut h = self.shards[who % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        h.saturating_record(micros);
    }

    /// All shards merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds");
        for s in &self.shards {
            let h = s.lock().unwrap_or_else(|e| e.into_inner());
            // Same bounds: adding cannot fail.
            let _ = all.add(&*h);
        }
        all
    }

    /// Percentiles for the report.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary::of(&self.merged())
    }
}

/// p50/p95/p99/max of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// Every counter of a run.
#[derive(Default)]
pub struct Metrics {
    /// WebSockets authenticated and subscribed right now.
    pub connected: AtomicI64,
    /// The most held at once.
    pub connected_max: AtomicI64,
    /// Successful (re)connections.
    pub connects: AtomicU64,
    /// Submissions sent (first attempts).
    pub submits_sent: AtomicU64,
    /// Submissions retried with the same idempotency key.
    pub submit_retries: AtomicU64,
    /// Submissions acknowledged (`ok`), first answers only.
    pub acks: AtomicU64,
    /// Acknowledgements that replayed an earlier answer.
    pub replays: AtomicU64,
    /// Submissions verified (station submissions acknowledged as verified, plus approvals).
    pub verifications: AtomicU64,
    /// Approve requests sent.
    pub approve_batches: AtomicU64,
    /// `event` frames received on any topic.
    pub pushes: AtomicU64,
    /// `snapshot` frames received.
    pub snapshots: AtomicU64,
    /// Board events whose sequence number skipped.
    pub seq_gaps: AtomicU64,
    /// Acknowledgement latency: submit sent → `ok` received.
    pub ack_latency: Latency,
    /// Verify-to-push latency: the verifying request sent → a subscriber's pushed board shows
    /// the points.
    pub push_latency: Latency,
    /// Time to connect, authenticate and get every subscription's snapshot.
    pub connect_latency: Latency,
    /// connect-storm: the storm → this client connected, authenticated and subscribed again.
    pub reconnect_latency: Latency,
    /// Approve request → `ok`.
    pub approve_latency: Latency,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Counts an error under its code (server error codes, close codes as `close_<code>`,
    /// client-side failures such as `connect_failed` or `submit_timeout`).
    pub fn error(&self, code: impl Into<String>) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(code.into()).or_default() += 1;
    }

    /// The errors so far.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One more connection held.
    pub fn connection_up(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        let now = self.connected.fetch_add(1, Ordering::Relaxed) + 1;
        self.connected_max.fetch_max(now, Ordering::Relaxed);
    }

    /// One connection fewer.
    pub fn connection_down(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Adds to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_every_shard() {
        let l = Latency::default();
        for i in 0..100u64 {
            l.record(i as usize, Duration::from_millis(i + 1));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 1.0, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn errors_are_counted_by_code() {
        let m = Metrics::default();
        m.error("close_4003");
        m.error("close_4003");
        m.error("over_daily_cap");
        assert_eq!(m.errors()["close_4003"], 2);
    }
}
