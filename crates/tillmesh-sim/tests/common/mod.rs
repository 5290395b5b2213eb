//! What the seed tests share: run many seeds, report every failing one at once.

use tillmesh_sim::{Report, SimConfig, run};

/// Runs every configuration and returns the reports; panics naming every failing seed, its
/// error and the configuration that replays it.
pub(crate) fn run_all(configs: impl IntoIterator<Item = SimConfig>) -> Vec<Report> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for config in configs {
        match run(&config) {
            Ok(report) => reports.push(report),
            Err(error) => failures.push(format!(
                "seed {}: {}\n  replay with tillmesh_sim::run(&{config:?})",
                config.seed,
                with_causes(&error)
            )),
        }
    }
    assert!(failures.is_empty(), "{} seeds failed:\n{}", failures.len(), failures.join("\n"));
    reports
}

/// An error with its chain of causes, on one line.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
