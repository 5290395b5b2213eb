//! `GET /metrics`: the node's figures in the Prometheus text format (0.0.4), encoded by
//! `prometheus-client` (which escapes help texts and label values). Every figure is read from a
//! counter when the request comes ([`Figures`]), then the library writes the text.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::Till;

/// HTTP requests answered, by status class (1xx … 5xx).
#[derive(Debug, Default)]
pub(super) struct RequestCounts([AtomicU64; 5]);

impl RequestCounts {
    fn count(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.0[class].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts every answered request.
pub(super) async fn count_requests(
    State(counts): State<std::sync::Arc<RequestCounts>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    counts.count(response.status());
    response
}

/// A sample's labels: name and value (any text: the encoding escapes it).
pub type Labels = Vec<(&'static str, String)>;

/// The figures of one `GET /metrics` answer, read from counters: metric families in the order
/// added, each with its help text and samples. Encoded by `prometheus-client` as a collector of
/// constant values, so what the text says is exactly what was read.
#[derive(Debug, Default)]
pub struct Figures {
    families: Vec<Family>,
}

#[derive(Debug)]
struct Family {
    /// The name without the `_total` a counter's samples get from the encoding.
    name: &'static str,
    help: &'static str,
    counter: bool,
    samples: Vec<(Labels, u64)>,
}

impl Figures {
    /// A counter named `name` (its samples are `<name>_total`), one sample per label set.
    pub fn counter(&mut self, name: &'static str, help: &'static str, samples: Vec<(Labels, u64)>) {
        self.families.push(Family { name, help, counter: true, samples });
    }

    /// A gauge named `name`, one sample per label set.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, samples: Vec<(Labels, u64)>) {
        self.families.push(Family { name, help, counter: false, samples });
    }

    /// Adds `other`'s families after these.
    pub fn extend(&mut self, other: Figures) {
        self.families.extend(other.families);
    }

    /// The Prometheus text (0.0.4) of the figures.
    pub fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        // Writing into a String does not fail, nor does encoding constant values.
        let _ = prometheus_text::encode(&mut text, &registry);
        text
    }
}

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.families {
            let metric_type = if family.counter { MetricType::Counter } else { MetricType::Gauge };
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, metric_type)?;
            for (labels, value) in &family.samples {
                let sample = metric.encode_family(labels)?;
                if family.counter {
                    ConstCounter::new(*value).encode(sample)?;
                } else {
                    ConstGauge::new(*value).encode(sample)?;
                }
            }
        }
        Ok(())
    }
}

/// One unlabelled sample.
pub fn single(value: u64) -> Vec<(Labels, u64)> {
    vec![(Vec::new(), value)]
}

/// What `GET /metrics` reads.
#[derive(Clone)]
pub(super) struct MetricsState {
    pub(super) till: Till,
    pub(super) requests: std::sync::Arc<RequestCounts>,
    pub(super) extra_metrics: Option<std::sync::Arc<dyn super::MetricsSource>>,
}

pub(super) async fn metrics(
    State(MetricsState { till, requests, extra_metrics }): State<MetricsState>,
) -> Result<Response, super::ApiError> {
    let mut figures = node_figures(&till, &requests)?;
    if let Some(extra) = extra_metrics {
        figures.extend(extra.figures().await);
    }
    Ok(([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], figures.encode()).into_response())
}

/// The node's own figures.
fn node_figures(till: &Till, requests: &RequestCounts) -> Result<Figures, crate::TillError> {
    let mut figures = Figures::default();
    let store = till.store();
    figures.gauge("tillmesh_documents", "Documents held.", single(store.document_count() as u64));
    figures.gauge(
        "tillmesh_documents_quarantined",
        "Refused documents kept aside for inspection.",
        single(store.quarantined_count()),
    );
    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let answered = classes
        .iter()
        .zip(&requests.0)
        .map(|(class, count)| (vec![("class", (*class).to_string())], count.load(Ordering::Relaxed)))
        .collect();
    figures.counter("tillmesh_http_requests", "HTTP requests answered, by status class.", answered);
    if let Some(control) = till.sync_control() {
        let peers = control.peers.borrow().len() as u64;
        figures.gauge("tillmesh_peers", "Admitted peers connected.", single(peers));
        let stats = &control.stats;
        for (name, help, counter) in [
            ("tillmesh_sync_frames_sent", "Sync frames sent.", &stats.frames_sent),
            ("tillmesh_sync_bytes_sent", "Bytes of sync frames sent.", &stats.bytes_sent),
            ("tillmesh_sync_frames_received", "Sync frames received.", &stats.frames_received),
            ("tillmesh_sync_bytes_received", "Bytes of sync frames received.", &stats.bytes_received),
            ("tillmesh_sync_requests", "Sync requests sent (round trips).", &stats.requests_sent),
            (
                "tillmesh_documents_refused",
                "Document messages from peers refused (not loadable or not valid), repeats included.",
                &stats.documents_refused,
            ),
        ] {
            figures.counter(name, help, single(counter.load(Ordering::Relaxed)));
        }
    }
    let mut unsynced = Vec::new();
    for remote in store.remotes()? {
        let counts = store.remote_counts(&remote)?;
        for (status, value) in
            [("pending", counts.pending), ("modified", counts.modified), ("failed", counts.failed)]
        {
            unsynced.push((vec![("remote", remote.clone()), ("status", status.to_string())], value));
        }
    }
    figures.gauge("tillmesh_sync_unsynced_documents", "Documents not yet synced, per remote.", unsynced);
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::{Figures, single};

    #[test]
    fn text_has_names_help_types_and_samples() {
        let mut figures = Figures::default();
        figures.gauge("tillmesh_documents", "Documents held.", single(2));
        figures.counter(
            "tillmesh_http_requests",
            "HTTP requests answered, by status class.",
            vec![(vec![("class", "2xx".to_string())], 5), (vec![("class", "5xx".to_string())], 0)],
        );
        figures.gauge(
            "tillmesh_sync_unsynced_documents",
            "Documents not yet synced, per remote.",
            Vec::new(),
        );
        assert_eq!(
            figures.encode(),
            "# HELP tillmesh_documents Documents held.\n\
             # TYPE tillmesh_documents gauge\n\
             tillmesh_documents 2\n\
             # HELP tillmesh_http_requests_total HTTP requests answered, by status class.\n\
             # TYPE tillmesh_http_requests_total counter\n\
             tillmesh_http_requests_total{class=\"2xx\"} 5\n\
             tillmesh_http_requests_total{class=\"5xx\"} 0\n\
             # HELP tillmesh_sync_unsynced_documents Documents not yet synced, per remote.\n\
             # TYPE tillmesh_sync_unsynced_documents gauge\n"
        );
    }

    /// A remote (or device) name is any text a peer or an operator chose: in a label value its
    /// quote, backslash and newline are escaped, so it cannot end the label or forge a sample.
    #[test]
    fn label_values_are_escaped() {
        let mut figures = Figures::default();
        let name = "till \"A\"\\\nforged_metric 1";
        figures.gauge(
            "tillmesh_sync_unsynced_documents",
            "Documents not yet synced, per remote.",
            vec![(vec![("remote", name.to_string()), ("status", "pending".to_string())], 3)],
        );
        let text = figures.encode();
        assert!(
            text.contains(
                "tillmesh_sync_unsynced_documents{remote=\"till \\\"A\\\"\\\\\\nforged_metric 1\",status=\"pending\"} 3\n"
            ),
            "{text}"
        );
        assert!(!text.lines().any(|line| line.starts_with("forged_metric")), "{text}");
    }
}
