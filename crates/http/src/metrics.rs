//! Prometheus metrics, hand-rolled: a handful of counters and one histogram do not
//! justify a metrics framework in the hot path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency buckets in seconds (upper bounds).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// The routes we label by; anything else is `other` so labels stay bounded.
pub const ROUTES: [&str; 14] = [
    "conversations",
    "events",
    "events_stream",
    "conversation",
    "messages",
    "message",
    "webhooks",
    "webhook",
    "healthz",
    "readyz",
    "metrics",
    "openapi",
    "docs",
    "other",
];

#[derive(Default)]
pub struct Metrics {
    /// (route, status) → count. Bounded: 14 routes × a few statuses.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: [Histogram; ROUTES.len()],
    database_errors: [AtomicU64; 2],
    /// One per worker: each has a storage (a pool, read connections) of its own.
    storage: Mutex<Vec<Arc<dyn StorageMetrics>>>,
    /// Log lines dropped because the log writer was full, as the composition root
    /// counts them (none: 0).
    dropped_log_lines: Option<Counter>,
}

/// A counter read when `/metrics` is rendered.
pub type Counter = Arc<dyn Fn() -> u64 + Send + Sync>;

use std::sync::Arc;

use pingback_application::{PoolStatus, ReadConnectionsStatus, StorageGauges, StorageMetrics};

#[derive(Clone, Copy)]
pub enum DatabaseError {
    Unavailable = 0,
    Internal = 1,
}

/// A resource's label, given it when it is mounted: the envelope reads it from the
/// request after routing. (`HttpRequest::match_pattern` matched the path against the
/// routes a second time, regular expressions included, and allocated the pattern:
/// 2 % of a read's CPU.)
#[derive(Clone, Copy, Debug)]
pub struct RouteLabel(pub &'static str);

impl RouteLabel {
    #[must_use]
    pub fn of(pattern: &str) -> Self {
        Self(route_label(Some(pattern)))
    }
}

pub fn route_label(pattern: Option<&str>) -> &'static str {
    match pattern {
        Some("/api/v1/conversations") => "conversations",
        Some("/api/v1/events") => "events",
        Some("/api/v1/events/stream") => "events_stream",
        Some("/api/v1/conversations/{conversation_id}") => "conversation",
        Some("/api/v1/conversations/{conversation_id}/messages") => "messages",
        Some("/api/v1/conversations/{conversation_id}/messages/{message_id}") => "message",
        Some("/api/v1/webhooks") => "webhooks",
        Some("/api/v1/webhooks/{webhook_id}") => "webhook",
        Some("/healthz") => "healthz",
        Some("/readyz") => "readyz",
        Some("/metrics") => "metrics",
        Some("/api/openapi.json") => "openapi",
        Some("/docs") => "docs",
        _ => "other",
    }
}

impl Metrics {
    /// Reports `dropped` as `pingback_log_lines_dropped_total`.
    #[must_use]
    pub fn with_dropped_log_lines(self, dropped: Counter) -> Self {
        Self {
            dropped_log_lines: Some(dropped),
            ..self
        }
    }

    pub fn observe(&self, route: &'static str, status: u16, elapsed: Duration) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((route, status)).or_insert(0) += 1;
        }
        let index = ROUTES
            .iter()
            .position(|r| *r == route)
            .unwrap_or(ROUTES.len() - 1);
        let histogram = &self.latency[index];
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        histogram.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        histogram.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Adds a worker's storage to the storage gauges (they report the sum).
    pub fn track_storage(&self, storage: Arc<dyn StorageMetrics>) {
        if let Ok(mut tracked) = self.storage.lock() {
            tracked.push(storage);
        }
    }

    /// The storage gauges of every worker, summed; a part is `None` when no adapter
    /// reports it.
    pub fn storage_gauges(&self) -> StorageGauges {
        let Ok(tracked) = self.storage.lock() else {
            return StorageGauges::default();
        };
        tracked
            .iter()
            .map(|storage| storage.gauges())
            .fold(StorageGauges::default(), |sum, g| StorageGauges {
                pool: add(sum.pool, g.pool, |s, p| PoolStatus {
                    size: s.size + p.size,
                    available: s.available + p.available,
                    waiting: s.waiting + p.waiting,
                    max_size: s.max_size + p.max_size,
                }),
                read_connections: add(sum.read_connections, g.read_connections, |s, r| {
                    ReadConnectionsStatus {
                        open: s.open + r.open,
                        configured: s.configured + r.configured,
                    }
                }),
            })
    }

    pub fn database_error(&self, kind: DatabaseError) {
        self.database_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format (0.0.4).
    pub fn render(&self, storage: StorageGauges) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP pingback_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE pingback_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "pingback_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP pingback_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE pingback_http_request_duration_seconds histogram\n");
        for (route, histogram) in ROUTES.iter().zip(&self.latency) {
            for (bound, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
                let _ = writeln!(
                    out,
                    "pingback_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    bucket.load(Ordering::Relaxed)
                );
            }
            let count = histogram.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "pingback_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "pingback_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "pingback_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        out.push_str("# HELP pingback_database_errors_total Database errors seen by requests.\n");
        out.push_str("# TYPE pingback_database_errors_total counter\n");
        for (kind, counter) in ["unavailable", "internal"]
            .iter()
            .zip(&self.database_errors)
        {
            let _ = writeln!(
                out,
                "pingback_database_errors_total{{kind=\"{kind}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP pingback_log_lines_dropped_total Log lines dropped because the log writer was full.\n",
        );
        out.push_str("# TYPE pingback_log_lines_dropped_total counter\n");
        let dropped = self.dropped_log_lines.as_ref().map_or(0, |count| count());
        let _ = writeln!(out, "pingback_log_lines_dropped_total {dropped}");
        if let Some(pool) = storage.pool {
            for (name, help, value) in [
                ("size", "Open connections.", pool.size),
                ("available", "Idle connections.", pool.available),
                (
                    "waiting",
                    "Requests waiting for a connection.",
                    pool.waiting,
                ),
                ("max_size", "Pool capacity.", pool.max_size),
            ] {
                let _ = writeln!(
                    out,
                    "# HELP pingback_db_pool_{name} {help}\n# TYPE pingback_db_pool_{name} gauge\npingback_db_pool_{name} {value}"
                );
            }
        }
        if let Some(reads) = storage.read_connections {
            out.push_str(
                "# HELP pingback_db_read_connections Connections serving conversation reads and readiness checks: open now, and configured.\n",
            );
            out.push_str("# TYPE pingback_db_read_connections gauge\n");
            for (state, value) in [("open", reads.open), ("configured", reads.configured)] {
                let _ = writeln!(
                    out,
                    "pingback_db_read_connections{{state=\"{state}\"}} {value}"
                );
            }
        }
        out
    }
}

/// The sum of two optional gauges: `None` only when both are.
fn add<T: Copy>(sum: Option<T>, value: Option<T>, plus: impl Fn(T, T) -> T) -> Option<T> {
    match (sum, value) {
        (Some(s), Some(v)) => Some(plus(s, v)),
        (s, v) => s.or(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.observe("conversation", 200, Duration::from_micros(800));
        metrics.observe("conversation", 404, Duration::from_millis(30));
        metrics.database_error(DatabaseError::Unavailable);
        let text = metrics.render(StorageGauges {
            pool: Some(PoolStatus {
                size: 2,
                available: 1,
                waiting: 0,
                max_size: 10,
            }),
            read_connections: Some(ReadConnectionsStatus {
                open: 1,
                configured: 2,
            }),
        });
        assert!(
            text.contains("pingback_http_requests_total{route=\"conversation\",status=\"200\"} 1")
        );
        assert!(text.contains(
            "pingback_http_request_duration_seconds_bucket{route=\"conversation\",le=\"0.001\"} 1"
        ));
        assert!(text.contains(
            "pingback_http_request_duration_seconds_bucket{route=\"conversation\",le=\"0.05\"} 2"
        ));
        assert!(
            text.contains("pingback_http_request_duration_seconds_count{route=\"conversation\"} 2")
        );
        assert!(text.contains("pingback_database_errors_total{kind=\"unavailable\"} 1"));
        assert!(text.contains("pingback_db_pool_max_size 10"));
        assert!(text.contains("pingback_db_read_connections{state=\"open\"} 1"));
        assert!(text.contains("pingback_db_read_connections{state=\"configured\"} 2"));
    }

    #[test]
    fn reports_the_log_lines_dropped() {
        assert!(
            Metrics::default()
                .render(StorageGauges::default())
                .contains("\npingback_log_lines_dropped_total 0\n")
        );
        let metrics = Metrics::default().with_dropped_log_lines(Arc::new(|| 42));
        let text = metrics.render(StorageGauges::default());
        assert!(
            text.contains("# TYPE pingback_log_lines_dropped_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("\npingback_log_lines_dropped_total 42\n"),
            "{text}"
        );
    }

    struct Fixed(StorageGauges);

    impl StorageMetrics for Fixed {
        fn gauges(&self) -> StorageGauges {
            self.0
        }
    }

    #[test]
    fn sums_the_workers_storage_and_omits_what_no_adapter_reports() {
        let metrics = Metrics::default();
        assert!(
            !metrics
                .render(metrics.storage_gauges())
                .contains("pingback_db_")
        );
        let pool = PoolStatus {
            size: 1,
            available: 1,
            waiting: 0,
            max_size: 4,
        };
        let reads = ReadConnectionsStatus {
            open: 1,
            configured: 1,
        };
        for _ in 0..2 {
            metrics.track_storage(Arc::new(Fixed(StorageGauges {
                pool: Some(pool),
                read_connections: Some(reads),
            })));
        }
        let text = metrics.render(metrics.storage_gauges());
        assert!(text.contains("pingback_db_pool_max_size 8"), "{text}");
        assert!(
            text.contains("pingback_db_read_connections{state=\"configured\"} 2"),
            "{text}"
        );
    }
}
