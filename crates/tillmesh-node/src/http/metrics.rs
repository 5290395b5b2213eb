//! `GET /metrics`: the node's figures in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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

/// Writes one metric with its help and type lines.
pub fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
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
    let mut out = String::new();
    let store = till.store();
    metric(
        &mut out,
        "tillmesh_documents",
        "gauge",
        "Documents held.",
        &[(String::new(), store.document_count() as u64)],
    );
    metric(
        &mut out,
        "tillmesh_documents_quarantined",
        "gauge",
        "Refused documents kept aside for inspection.",
        &[(String::new(), store.quarantined_count())],
    );
    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let answered: Vec<(String, u64)> = classes
        .iter()
        .zip(&requests.0)
        .map(|(class, count)| (format!("{{class=\"{class}\"}}"), count.load(Ordering::Relaxed)))
        .collect();
    metric(
        &mut out,
        "tillmesh_http_requests_total",
        "counter",
        "HTTP requests answered, by status class.",
        &answered,
    );
    if let Some(control) = till.sync_control() {
        let peers = control.peers.borrow().len() as u64;
        metric(&mut out, "tillmesh_peers", "gauge", "Admitted peers connected.", &[(String::new(), peers)]);
        let stats = &control.stats;
        for (name, help, counter) in [
            ("tillmesh_sync_frames_sent_total", "Sync frames sent.", &stats.frames_sent),
            ("tillmesh_sync_bytes_sent_total", "Bytes of sync frames sent.", &stats.bytes_sent),
            ("tillmesh_sync_frames_received_total", "Sync frames received.", &stats.frames_received),
            ("tillmesh_sync_bytes_received_total", "Bytes of sync frames received.", &stats.bytes_received),
            ("tillmesh_sync_requests_total", "Sync requests sent (round trips).", &stats.requests_sent),
            (
                "tillmesh_documents_refused_total",
                "Document messages from peers refused (not loadable or not valid), repeats included.",
                &stats.documents_refused,
            ),
        ] {
            metric(&mut out, name, "counter", help, &[(String::new(), counter.load(Ordering::Relaxed))]);
        }
    }
    let mut unsynced = Vec::new();
    for remote in store.remotes().map_err(crate::TillError::from)? {
        let counts = store.remote_counts(&remote).map_err(crate::TillError::from)?;
        for (status, value) in
            [("pending", counts.pending), ("modified", counts.modified), ("failed", counts.failed)]
        {
            unsynced.push((format!("{{remote=\"{remote}\",status=\"{status}\"}}"), value));
        }
    }
    metric(
        &mut out,
        "tillmesh_sync_unsynced_documents",
        "gauge",
        "Documents not yet synced, per remote.",
        &unsynced,
    );
    if let Some(extra) = extra_metrics {
        out.push_str(&extra.render().await);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
