//! Logs and metrics plumbing shared by every entry point.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber once; later calls (tests build many apps in one
/// process) are no-ops.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _already_installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The process-wide Prometheus recorder. The `metrics` facade has one global recorder, so
/// every app built in this process renders the same registry.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness, an embedding
            // program); the handle then renders an empty registry rather than failing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Records how long one Lua script call took.
pub fn observe_script(script: &'static str, started: std::time::Instant) {
    metrics::histogram!("innkeeper_inventory_script_duration_seconds", "script" => script)
        .record(started.elapsed().as_secs_f64());
}

/// Records how long one Postgres transaction took.
pub fn observe_transaction(operation: &'static str, started: std::time::Instant) {
    metrics::histogram!("innkeeper_db_transaction_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}
