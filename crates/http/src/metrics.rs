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
pub const ROUTES: [&str; 12] = [
    "conversations",
    "events",
    "events_stream",
    "conversation",
    "messages",
    "message",
    "healthz",
    "readyz",
    "metrics",
    "openapi",
    "docs",
    "other",
];

#[derive(Default)]
pub struct Metrics {
    /// (route, status) → count. Bounded: 12 routes × a few statuses.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: [Histogram; ROUTES.len()],
    database_errors: [AtomicU64; 2],
    /// One per worker: each has a pool of its own.
    pools: Mutex<Vec<ConversationService>>,
}

use pingback_application::{ConversationService, PoolStatus as PoolGauge};

#[derive(Clone, Copy)]
pub enum DatabaseError {
    Unavailable = 0,
    Internal = 1,
}

pub fn route_label(pattern: Option<&str>) -> &'static str {
    match pattern {
        Some("/api/v1/conversations") => "conversations",
        Some("/api/v1/events") => "events",
        Some("/api/v1/events/stream") => "events_stream",
        Some("/api/v1/conversations/{conversation_id}") => "conversation",
        Some("/api/v1/conversations/{conversation_id}/messages") => "messages",
        Some("/api/v1/conversations/{conversation_id}/messages/{message_id}") => "message",
        Some("/healthz") => "healthz",
        Some("/readyz") => "readyz",
        Some("/metrics") => "metrics",
        Some("/api/openapi.json") => "openapi",
        Some("/docs") => "docs",
        _ => "other",
    }
}

impl Metrics {
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

    /// Adds a worker's storage to the pool gauges (they report the sum).
    pub fn track_pool(&self, service: ConversationService) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.push(service);
        }
    }

    /// The pools of every worker, summed; `None` when no adapter reports a pool.
    pub fn pools(&self) -> Option<PoolGauge> {
        let pools = self.pools.lock().ok()?;
        pools
            .iter()
            .filter_map(ConversationService::pool_status)
            .fold(None, |sum, p| {
                let s: PoolGauge = sum.unwrap_or_default();
                Some(PoolGauge {
                    size: s.size + p.size,
                    available: s.available + p.available,
                    waiting: s.waiting + p.waiting,
                    max_size: s.max_size + p.max_size,
                })
            })
    }

    pub fn database_error(&self, kind: DatabaseError) {
        self.database_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format (0.0.4).
    pub fn render(&self, pool: Option<PoolGauge>) -> String {
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
        if let Some(pool) = pool {
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
        out
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
        let text = metrics.render(Some(PoolGauge {
            size: 2,
            available: 1,
            waiting: 0,
            max_size: 10,
        }));
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
    }
}
