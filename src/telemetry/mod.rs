//! Logs and metrics plumbing that every layer may use; it imports no layer above it
//! (only `config`, for the log format).

mod logs;
pub mod metrics;

pub use logs::init_logging;
pub use metrics::{
    method_label, metrics_handle, observe_script, observe_transaction, record_backend_up,
    record_http_request, record_pool, register_metrics, run_metrics_upkeep, Backend, Pool,
    PoolGauges,
};
