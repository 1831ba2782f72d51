//! Prometheus metrics, kept in process-wide atomics and rendered in the text exposition
//! format at `/metrics`. Counters only go up; gauges go both ways; histograms use fixed
//! buckets in seconds.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Upper bounds of the latency histograms, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A counter per label value.
#[derive(Default)]
pub struct LabeledCounter(Mutex<BTreeMap<&'static str, u64>>);

impl LabeledCounter {
    pub fn inc(&self, label: &'static str) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(label).or_default() += 1;
        }
    }

    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.0
            .lock()
            .map(|counts| counts.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }
}

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum of observations in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    /// SSH connections accepted.
    pub ssh_connections: AtomicU64,
    /// SSH connections open now.
    pub ssh_connections_open: AtomicI64,
    /// Authentication outcomes: `offered`, `proven`, `refused_connection`, `refused_key`.
    pub auth_outcomes: LabeledCounter,
    /// Connection decisions: `verified`, `failed_attempt`, `not_counted`.
    pub verifications: LabeledCounter,
    /// GraphQL subscriptions open now.
    pub subscriptions_open: AtomicI64,
    /// Webhook attempts by outcome: `success`, `failure`, `gone`, `error`.
    pub webhook_attempts: LabeledCounter,
    /// Time from the first authentication request to the connection's decision.
    pub ssh_decision_seconds: Histogram,
    /// Time to serve an HTTP request.
    pub http_request_seconds: Histogram,
    /// Time of one webhook request.
    pub webhook_attempt_seconds: Histogram,
}

impl Metrics {
    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        counter(
            &mut out,
            "keyproof_ssh_connections_total",
            "SSH connections accepted.",
            self.ssh_connections.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "keyproof_ssh_connections_open",
            "SSH connections open now.",
            self.ssh_connections_open.load(Ordering::Relaxed),
        );
        labeled(
            &mut out,
            "keyproof_ssh_auth_outcomes_total",
            "SSH authentication outcomes.",
            "outcome",
            &self.auth_outcomes,
        );
        labeled(
            &mut out,
            "keyproof_verifications_total",
            "Decisions of attributed SSH connections.",
            "result",
            &self.verifications,
        );
        gauge(
            &mut out,
            "keyproof_subscriptions_open",
            "GraphQL subscriptions open now.",
            self.subscriptions_open.load(Ordering::Relaxed),
        );
        labeled(
            &mut out,
            "keyproof_webhook_attempts_total",
            "Webhook delivery attempts.",
            "outcome",
            &self.webhook_attempts,
        );
        histogram(
            &mut out,
            "keyproof_ssh_decision_seconds",
            "Time from first authentication request to decision.",
            &self.ssh_decision_seconds,
        );
        histogram(
            &mut out,
            "keyproof_http_request_seconds",
            "Time to serve an HTTP request.",
            &self.http_request_seconds,
        );
        histogram(
            &mut out,
            "keyproof_webhook_attempt_seconds",
            "Time of one webhook request.",
            &self.webhook_attempt_seconds,
        );
        out
    }
}

/// Counts the decision of a connection that did not verify.
pub fn record_attempt(outcome: crate::domain::session::AttemptOutcome) {
    use crate::domain::session::AttemptOutcome;

    METRICS.verifications.inc(match outcome {
        AttemptOutcome::NotCounted => "not_counted",
        AttemptOutcome::Counted { .. } | AttemptOutcome::CountedAndFailed { .. } => {
            "failed_attempt"
        }
    });
}

/// Keeps a gauge raised while alive.
pub struct GaugeGuard(&'static AtomicI64);

impl GaugeGuard {
    pub fn raise(gauge: &'static AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

fn labeled(out: &mut String, name: &str, help: &str, label: &str, counter: &LabeledCounter) {
    header(out, name, help, "counter");
    for (value, count) in counter.snapshot() {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

fn histogram(out: &mut String, name: &str, help: &str, histogram: &Histogram) {
    header(out, name, help, "histogram");
    for (bucket, bound) in histogram.buckets.iter().zip(BUCKETS) {
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{bound}\"}} {}",
            bucket.load(Ordering::Relaxed)
        );
    }
    let count = histogram.count.load(Ordering::Relaxed);
    let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::default();

        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(20));
        let mut out = String::new();
        super::histogram(&mut out, "h", "help", &histogram);

        assert!(out.contains("h_bucket{le=\"0.001\"} 0\n"));
        assert!(out.contains("h_bucket{le=\"0.005\"} 1\n"));
        assert!(out.contains("h_bucket{le=\"10\"} 1\n"));
        assert!(out.contains("h_bucket{le=\"+Inf\"} 2\n"));
        assert!(out.contains("h_count 2\n"));
    }
}
